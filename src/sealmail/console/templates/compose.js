// Large files on the compose page (CSP script-src 'self'): each chosen file is sent as the
// raw body of one request, which the server seals a chunk at a time as it arrives; the
// form then carries the file's id, and the message a secure link to it.
(function () {
  "use strict";
  var input = document.getElementById("c-large");
  if (!input) return;
  var form = input.form;
  var list = document.getElementById("c-large-list");
  var status = document.getElementById("c-large-status");
  var send = form.querySelector("button[type=submit]");
  var token = form.querySelector("input[name=csrf]").value;
  function upload(file) {
    var name = encodeURIComponent(file.name).replace(/['()*]/g, function (c) {
      return "%" + c.charCodeAt(0).toString(16).toUpperCase();
    });
    return fetch(input.getAttribute("data-upload"), {
      method: "POST", credentials: "same-origin", body: file,
      headers: {
        "Content-Type": "application/octet-stream", "X-CSRF-Token": token,
        "Content-Disposition": "attachment; filename*=UTF-8''" + name,
        "X-File-Content-Type": file.type || "application/octet-stream"
      }
    }).then(function (r) {
      if (!r.ok) throw new Error(file.name + " was not uploaded (" + r.status + ").");
      return r.json();
    }).then(function (info) {
      var hidden = document.createElement("input");
      hidden.type = "hidden"; hidden.name = "large_files"; hidden.value = info.id;
      form.appendChild(hidden);
      var item = document.createElement("li");
      item.textContent = file.name + " (" + Math.max(1, Math.round(info.size / 1024)) + " KB): goes as a secure link";
      list.appendChild(item);
    });
  }
  input.addEventListener("change", function () {
    var files = Array.prototype.slice.call(input.files);
    if (!files.length) return;
    send.disabled = true;
    status.textContent = "Uploading " + files.length + (files.length > 1 ? " files…" : " file…");
    files.reduce(function (chain, f) {
      return chain.then(function () { return upload(f); });
    }, Promise.resolve()).then(function () {
      status.textContent = "Uploaded. Recipients download them from the secure portal.";
    }).catch(function (e) {
      status.textContent = e.message;
    }).then(function () {
      send.disabled = false;
      input.value = "";
    });
  });
})();
