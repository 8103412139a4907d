// The WebAuthn ceremonies of the console (the only script it serves; CSP script-src 'self').
// A form marked data-passkey="create" or "get" carries the server's options as JSON; this
// asks the browser's authenticator, puts the answer in the form's "credential" field and
// submits the form, which the server verifies (challenge, origin, RP ID, signature, counter).
(function () {
  "use strict";
  function toBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function toB64u(buf) {
    var bytes = new Uint8Array(buf), s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function ids(list) {
    (list || []).forEach(function (c) { c.id = toBuf(c.id); });
  }
  function encode(cred) {
    var r = cred.response, out = {
      id: cred.id, rawId: toB64u(cred.rawId), type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults(),
      response: { clientDataJSON: toB64u(r.clientDataJSON) }
    };
    if (cred.authenticatorAttachment) out.authenticatorAttachment = cred.authenticatorAttachment;
    if (r.attestationObject) {
      out.response.attestationObject = toB64u(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = toB64u(r.authenticatorData);
      out.response.signature = toB64u(r.signature);
      if (r.userHandle) out.response.userHandle = toB64u(r.userHandle);
    }
    return out;
  }
  async function ceremony(form) {
    var o = JSON.parse(form.getAttribute("data-options"));
    o.challenge = toBuf(o.challenge);
    if (form.getAttribute("data-passkey") === "create") {
      o.user.id = toBuf(o.user.id);
      ids(o.excludeCredentials);
      return navigator.credentials.create({ publicKey: o });
    }
    ids(o.allowCredentials);
    return navigator.credentials.get({ publicKey: o });
  }
  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    var status = form.querySelector("[data-passkey-status]");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!window.PublicKeyCredential) {
        status.textContent = "This browser cannot use passkeys.";
        return;
      }
      status.textContent = "Waiting for your passkey…";
      ceremony(form).then(function (cred) {
        form.querySelector("input[name=credential]").value = JSON.stringify(encode(cred));
        form.submit();
      }, function (err) {
        status.textContent = "The passkey did not answer (" + err.name + "). Try again.";
      });
    });
  });
})();
