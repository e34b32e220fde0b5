// alertbridge console: line numbers for the template editor, and the error line marked in them.
// No inline script anywhere (the Content-Security-Policy forbids it); htmx does the requests.
(function () {
  "use strict";

  function errorLine() {
    var marked = document.querySelector("#preview [data-error-line]") || document.querySelector(".code[data-error-line]");
    var n = marked ? parseInt(marked.getAttribute("data-error-line"), 10) : NaN;
    return isNaN(n) ? null : n;
  }

  function paint(code) {
    var textarea = code.querySelector("textarea");
    var gutter = code.querySelector(".gutter");
    var count = textarea.value.split("\n").length;
    var bad = errorLine();
    gutter.textContent = "";
    for (var i = 1; i <= count; i++) {
      var line = document.createElement("span");
      line.textContent = String(i);
      if (i === bad) line.className = "err";
      gutter.appendChild(line);
      gutter.appendChild(document.createTextNode("\n"));
    }
    gutter.scrollTop = textarea.scrollTop;
  }

  function setup() {
    document.querySelectorAll(".code").forEach(function (code) {
      var textarea = code.querySelector("textarea");
      var gutter = code.querySelector(".gutter");
      textarea.addEventListener("input", function () { paint(code); });
      textarea.addEventListener("scroll", function () { gutter.scrollTop = textarea.scrollTop; });
      textarea.addEventListener("keydown", function (event) {  // Tab indents instead of leaving the editor
        if (event.key !== "Tab" || event.shiftKey || event.ctrlKey || event.metaKey) return;
        event.preventDefault();
        textarea.setRangeText("  ", textarea.selectionStart, textarea.selectionEnd, "end");
        textarea.dispatchEvent(new Event("input", { bubbles: true }));
      });
      paint(code);
    });
    // Typing a payload selects "paste a payload".
    var payload = document.getElementById("payload");
    if (payload) {
      payload.addEventListener("input", function () {
        var paste = document.querySelector('input[name="inbound_id"][value=""]');
        if (paste && !paste.checked) paste.checked = true;
        var view = document.getElementById("payload-view");
        if (view) view.textContent = payload.value;
      });
    }
  }

  document.addEventListener("DOMContentLoaded", setup);
  document.addEventListener("htmx:afterSettle", function () {
    document.querySelectorAll(".code").forEach(paint);
  });
})();
