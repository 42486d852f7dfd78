// The page's own script. It is a file, not an inline <script>, because the site's Content-Security-Policy
// allows scripts only from itself and from Apertur (where the SDK comes from).
(function () {
  "use strict";
  var app = document.getElementById("app");
  var status = document.getElementById("status");
  var errorBox = document.getElementById("error");

  function showError(err) {
    status.textContent = "";
    errorBox.textContent = "Connection failed: " + err.code + ": " + err.message;
    errorBox.hidden = false;
  }

  // Send the code to this site's server, which exchanges it with the client secret and keeps the tokens.
  function sendToBackend(code) {
    status.textContent = "Connecting…";
    fetch("/api/apertur/connect", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: code }),
    })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw body.error || { code: "server_error", message: "HTTP " + response.status };
          status.textContent = "Connected to " + body.project.name + " (" + body.project.plan + ").";
          window.location.reload(); // the server now renders the connected project
        });
      })
      .catch(function (err) {
        showError({ code: err.code || "network_error", message: err.message || String(err) });
      });
  }

  if (typeof AptrConnect === "undefined") {
    showError({ code: "sdk_unavailable", message: "The aptr-connect SDK could not be loaded from Apertur." });
    return;
  }
  try {
    // baseUrl defaults to the origin this SDK was loaded from: Apertur.
    AptrConnect.init({ publicKey: app.dataset.publicKey });
  } catch (err) {
    showError(err);
    return;
  }

  function connect(uxMode) {
    errorBox.hidden = true;
    // Called directly in the click handler: the popup must open inside the user's gesture.
    AptrConnect.authorize({
      scopes: ["upload:create", "project:read"],
      redirectUri: app.dataset.redirectUri,
      // The server made this value; in redirect mode it checks it on /callback (the SDK checks it in popup mode).
      state: app.dataset.state,
      uxMode: uxMode,
      onSuccess: function (result) {
        sendToBackend(result.code);
      },
      onError: showError,
    });
  }

  document.getElementById("connect-btn").addEventListener("click", function () {
    connect("popup");
  });
  document.getElementById("connect-redirect").addEventListener("click", function () {
    connect("redirect");
  });
})();
