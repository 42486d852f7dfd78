// Hands the authorization result to the page that opened this popup. The target origin is the one
// Apertur validated against the app's allowed domains: the browser delivers the message only if the
// opener really is on that origin.
(function () {
  var data = JSON.parse(document.getElementById("aptr-result").textContent);
  var origin = document.getElementById("aptr-target").getAttribute("data-origin");
  if (window.opener && origin) {
    window.opener.postMessage(data, origin);
  }
  window.close();
})();
