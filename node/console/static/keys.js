// The Keys page's "Copy" button for a new key's secret: the page works without it (the
// secret is selectable text); it appears only where the browser offers the clipboard.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  if (!navigator.clipboard) {
    return;
  }
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    const said = button.parentElement.querySelector(".copied");
    if (!source || !said) {
      continue;
    }
    button.hidden = false;
    button.addEventListener("click", () => {
      navigator.clipboard.writeText(source.textContent).then(
        () => { said.textContent = "Copied."; },
        () => { said.textContent = "The browser refused: select the secret and copy it."; },
      );
    });
  }
});
