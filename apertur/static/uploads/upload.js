// Guest upload page: one request per file, each with its own progress bar, three at a time.
(function () {
  var form = document.getElementById("upload-form");
  if (!form) return;
  var list = document.getElementById("upload-list");
  var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10);
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;

  function row(file) {
    var li = document.createElement("li");
    li.setAttribute("aria-atomic", "true"); // the list is a live region: a new status is read with its file's name
    var name = document.createElement("span");
    name.className = "name";
    name.textContent = file.name;
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Progress of " + file.name);
    var status = document.createElement("span");
    status.className = "status";
    status.textContent = "Waiting";
    li.append(name, bar, status);
    list.appendChild(li);
    return { li: li, bar: bar, status: status };
  }

  function send(file, ui, note) {
    return new Promise(function (resolve) {
      if (file.size > maxBytes) {
        // Its size and the limit, in the server's words (MB of 1,048,576 bytes; the limit in whole MB).
        ui.status.textContent = file.name + " is " + (file.size / 1048576).toFixed(1) + " MB; this link accepts " +
          "photos up to " + Math.floor(maxBytes / 1048576) + " MB.";
        ui.li.className = "failed";
        return resolve();
      }
      var data = new FormData();
      data.append("file", file);
      data.append("note", note);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-CSRFToken", csrf);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) ui.bar.value = Math.round((e.loaded / e.total) * 100);
        // Once: the row is read again each time its text is replaced, and progress events come many a second.
        if (ui.status.textContent !== "Uploading") ui.status.textContent = "Uploading";
      };
      xhr.onload = function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status === 201) {
          ui.bar.value = 100;
          ui.status.textContent = "Uploaded";
          ui.li.className = "done";
        } else {
          ui.bar.value = 0; // the bytes went, the photo was not kept: not a full bar beside the error
          // Not our JSON (a proxy's error page): the field is emptied once all are done, so say what to do.
          ui.status.textContent = (body.error && body.error.message) ||
            "Not uploaded (error " + xhr.status + "). Choose it again to retry.";
          ui.li.className = "failed";
        }
        resolve();
      };
      xhr.onerror = function () {
        ui.bar.value = 0;
        // The connection dropped: the photo may or may not have been kept before it did.
        ui.status.textContent = "Network error: this photo may not have arrived. Choose it again to retry.";
        ui.li.className = "failed";
        resolve();
      };
      xhr.send(data);
    });
  }

  var button = form.querySelector("button[type=submit]");
  var sending = false;

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    // A second click (or Enter in the note) while the photos go up would send every one of them again.
    if (sending) return;
    sending = true;
    button.disabled = true;
    var files = Array.prototype.slice.call(form.querySelector("input[type=file]").files);
    var note = form.querySelector("input[name=note]").value;
    var queue = files.map(function (f) { return { file: f, ui: row(f) }; });
    function next() {
      var item = queue.shift();
      return item ? send(item.file, item.ui, note).then(next) : Promise.resolve();
    }
    Promise.all([next(), next(), next()]).then(function () {
      form.reset();
      sending = false;
      button.disabled = false;
    });
  });
})();
