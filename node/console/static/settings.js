// The bucket settings page: the JSON editors (policy, CORS) say as one types whether the
// text is JSON, and where it is not (line and column), before anything is sent. The server
// checks again, and S3 decides what the document means.
"use strict";

(function () {
  var NUMBER = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
  var HEX4 = /^[0-9a-fA-F]{4}$/;

  // The first syntax error of ``text`` as {position, message}, or null. JSON.parse says
  // whether the text is JSON; this scanner says where it is not, as browsers differ there.
  function findJsonError(text) {
    var at = 0;
    function fail(message) { throw { position: at, message: message }; }
    function space() { while (at < text.length && " \t\n\r".indexOf(text[at]) >= 0) { at++; } }
    function value() {
      space();
      var c = text[at];
      if (c === "{") { return members(); }
      if (c === "[") { return elements(); }
      if (c === '"') { return string(); }
      if (c === "-" || (c >= "0" && c <= "9")) { return number(); }
      var words = ["true", "false", "null"];
      for (var i = 0; i < words.length; i++) {
        if (text.startsWith(words[i], at)) { at += words[i].length; return; }
      }
      fail(at >= text.length ? "the text ends where a value was expected"
                             : "unexpected " + JSON.stringify(c) + " where a value was expected");
    }
    function members() {
      at++; space();
      if (text[at] === "}") { at++; return; }
      for (;;) {
        space();
        if (text[at] !== '"') { fail("expected a property name in double quotes"); }
        string(); space();
        if (text[at] !== ":") { fail("expected ':' after the property name"); }
        at++; value(); space();
        if (text[at] === ",") { at++; continue; }
        if (text[at] === "}") { at++; return; }
        fail("expected ',' or '}' after a property value");
      }
    }
    function elements() {
      at++; space();
      if (text[at] === "]") { at++; return; }
      for (;;) {
        value(); space();
        if (text[at] === ",") { at++; continue; }
        if (text[at] === "]") { at++; return; }
        fail("expected ',' or ']' after a list element");
      }
    }
    function string() {
      at++;
      while (at < text.length) {
        var c = text[at];
        if (c === '"') { at++; return; }
        if (c === "\\") {
          var next = text[at + 1];
          if (next !== undefined && '"\\/bfnrt'.indexOf(next) >= 0) { at += 2; continue; }
          if (next === "u" && HEX4.test(text.substr(at + 2, 4))) { at += 6; continue; }
          fail("a bad escape in a string");
        }
        if (c < " ") { fail("a line break or control character inside a string"); }
        at++;
      }
      fail("a string is not closed (a missing '\"')");
    }
    function number() {
      NUMBER.lastIndex = at;
      var found = NUMBER.exec(text);
      if (!found) { fail("a malformed number"); }
      at += found[0].length;
    }
    try {
      value(); space();
      if (at < text.length) { fail("unexpected text after the end of the JSON"); }
      return null;
    } catch (error) {
      if (error && typeof error.position === "number") { return error; }
      return null; // too deeply nested to scan: JSON.parse's own message is shown instead
    }
  }

  function lineAndColumn(text, position) {
    var before = text.slice(0, position);
    var line = before.split("\n").length;
    return { line: line, column: position - before.lastIndexOf("\n") };
  }

  // "" when ``text`` is JSON (or empty), else what is wrong and where.
  function jsonProblem(text) {
    if (text.trim() === "") { return ""; }
    try {
      JSON.parse(text);
      return "";
    } catch (parseError) {
      var found = findJsonError(text);
      if (found === null) { return String(parseError.message); }
      var where = lineAndColumn(text, found.position);
      return found.message + " (line " + where.line + ", column " + where.column + ")";
    }
  }

  function watch(editor) {
    var status = document.getElementById(editor.dataset.jsonStatus);
    function check() {
      var problem = jsonProblem(editor.value);
      status.textContent = problem ? "Not valid JSON: " + problem
                                   : (editor.value.trim() ? "Valid JSON." : "");
      status.classList.toggle("bad", problem !== "");
      editor.setAttribute("aria-invalid", problem ? "true" : "false");
      return problem;
    }
    editor.addEventListener("input", check);
    editor.form.addEventListener("submit", function (event) {
      if (check()) {  // nothing to send S3 yet: the line and column are shown
        event.preventDefault();
        editor.focus();
      }
    });
    check();
  }

  function formatButton(button) {
    button.addEventListener("click", function () {
      var editor = document.getElementById(button.dataset.editor);
      if (jsonProblem(editor.value) || !editor.value.trim()) { return; }
      editor.value = JSON.stringify(JSON.parse(editor.value), null, 2);
      editor.dispatchEvent(new Event("input"));
    });
  }

  document.querySelectorAll("textarea.json-editor").forEach(watch);
  document.querySelectorAll("button.json-format").forEach(formatButton);
})();
