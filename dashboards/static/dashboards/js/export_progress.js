/* Polls the export's status JSON and moves the progress bar; shows the expiring download link. */
(function () {
  "use strict";
  var box = document.getElementById("export-progress");
  if (!box) {
    return;
  }
  var url = box.getAttribute("data-status-url");
  var bar = document.getElementById("export-bar");
  var percent = document.getElementById("export-percent");
  var state = document.getElementById("export-state");
  var ready = document.getElementById("export-ready");
  var link = document.getElementById("export-download");
  var expiry = document.getElementById("export-expiry");
  var error = document.getElementById("export-error");
  var delay = 500;

  function show(body) {
    var value = Math.max(0, Math.min(100, body.percent || 0));
    bar.value = value;
    bar.textContent = value + "%";
    percent.textContent = value + "%";
    state.textContent = "Status: " + body.status + (body.rows_total ? " (" + body.rows_done + " of " + body.rows_total + " rows)" : "");
    if (body.status === "done" && body.download_url) {
      link.href = body.download_url;
      var minutes = Math.round((body.link_expires_seconds || 0) / 60);
      expiry.textContent = "(link valid for " + minutes + " minutes; only you can use it)";
      ready.hidden = false;
      box.setAttribute("data-export-state", "done");
      return true;
    }
    if (body.status === "failed") {
      error.textContent = body.error || "The export failed.";
      error.hidden = false;
      box.setAttribute("data-export-state", "failed");
      return true;
    }
    return false;
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (body) {
        if (!show(body)) {
          delay = Math.min(delay * 1.5, 5000);
          window.setTimeout(poll, delay);
        }
      })
      .catch(function () {
        delay = Math.min(delay * 2, 10000);
        window.setTimeout(poll, delay);
      });
  }

  poll();
})();
