// One click, one request. A POST form that is already on its way ignores further submits (a double click,
// Enter pressed twice), so "Create project" or "Register app" cannot create two. Nothing is disabled: a
// disabled submit button would drop its own name=value (Allow/Deny) from what the form sends. The lock
// ends when the page is shown again (Back restores it from the back/forward cache) or after 20 seconds, so
// a person who pressed Stop can send the form again. The server keeps its own guards; this only spares
// people the duplicates a double click makes.
(function () {
  "use strict";
  var SENDING = "data-sending";
  var HOLD_MS = 20000;
  var sends = 0;

  function release(form) {
    form.removeAttribute(SENDING);
    form.removeAttribute("aria-busy");
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") return;
    if (form.hasAttribute(SENDING)) {
      event.preventDefault();
      return;
    }
    if (event.defaultPrevented) return; // a script of the page sends it itself (the guest upload page)
    var send = String(++sends);
    form.setAttribute(SENDING, send);
    form.setAttribute("aria-busy", "true");
    window.setTimeout(function () {
      if (form.getAttribute(SENDING) === send) release(form); // not a later send's lock
    }, HOLD_MS);
  });

  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[" + SENDING + "]").forEach(release);
  });
})();
