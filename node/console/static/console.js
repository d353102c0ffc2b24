// Every page: a button with data-confirm asks before its form is sent (deleting a bucket,
// an object, a rule). Without JavaScript the form is sent as it is.
"use strict";
(function () {
  document.querySelectorAll("button[data-confirm]").forEach(function (button) {
    button.form.addEventListener("submit", function (event) {
      if (event.submitter === button && !window.confirm(button.dataset.confirm)) {
        event.preventDefault();
      }
    });
  });
})();
