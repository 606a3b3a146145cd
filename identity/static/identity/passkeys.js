// The admin's side of the WebAuthn ceremonies (docs/identity.md): register a passkey on the
// Second factor page, and sign a decision on the decision page. The server gives the options
// (JSON, base64url fields) and checks the result; this file only passes them to the browser's
// navigator.credentials and back. A file of its own: the Content-Security-Policy allows no
// inline script.
(() => {
  "use strict";
  const b64 = (buffer) =>
    btoa(String.fromCharCode(...new Uint8Array(buffer))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const unb64 = (text) =>
    Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4)), (c) =>
      c.charCodeAt(0),
    );
  const csrf = () => (document.cookie.split("; ").find((c) => c.startsWith("csrftoken=")) || "=").split("=")[1];
  const post = async (url, data) => {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(data),
    });
    return { status: response.status, body: await response.json().catch(() => ({})) };
  };
  const show = (element, text) => {
    if (element) element.textContent = text;
  };

  async function register(button) {
    const status = document.getElementById("passkey-status");
    const name = (document.getElementById("passkey-name") || {}).value || "passkey";
    const options = await post(button.dataset.optionsUrl, {});
    if (options.status !== 200) return show(status, options.body.message || "Passkeys are unavailable.");
    const publicKey = options.body.publicKey;
    publicKey.challenge = unb64(publicKey.challenge);
    publicKey.user.id = unb64(publicKey.user.id);
    publicKey.excludeCredentials = (publicKey.excludeCredentials || []).map((c) => ({ ...c, id: unb64(c.id) }));
    let credential;
    try {
      credential = await navigator.credentials.create({ publicKey });
    } catch (error) {
      return show(status, `No passkey was created: ${error.message}`);
    }
    const registered = await post(button.dataset.registerUrl, {
      name,
      credential: {
        id: credential.id,
        rawId: b64(credential.rawId),
        type: credential.type,
        response: {
          clientDataJSON: b64(credential.response.clientDataJSON),
          attestationObject: b64(credential.response.attestationObject),
        },
      },
    });
    if (registered.status !== 201) return show(status, registered.body.message || "The passkey was refused.");
    window.location.reload();
  }

  async function sign(form) {
    const status = document.getElementById("passkey-status");
    const field = (name) => form.querySelector(`[name="${name}"]`).value;
    const challenge = await post(form.dataset.challengeUrl, {
      decision: form.dataset.decision,
      reason: field("reason"),
      revision: Number(field("revision")),
      content_hash: field("content_hash"),
    });
    if (challenge.status === 409 && challenge.body.code === "content_changed") {
      // The server answers the same without recording anything, and shows what changed.
      return form.submit();
    }
    if (challenge.status !== 200) return show(status, challenge.body.message || "The decision cannot be signed.");
    const publicKey = challenge.body.publicKey;
    publicKey.challenge = unb64(publicKey.challenge);
    publicKey.allowCredentials = (publicKey.allowCredentials || []).map((c) => ({ ...c, id: unb64(c.id) }));
    let credential;
    try {
      credential = await navigator.credentials.get({ publicKey });
    } catch (error) {
      return show(status, `Not signed, nothing recorded: ${error.message}`);
    }
    form.querySelector('[name="assertion"]').value = JSON.stringify({
      id: credential.id,
      rawId: b64(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: b64(credential.response.clientDataJSON),
        authenticatorData: b64(credential.response.authenticatorData),
        signature: b64(credential.response.signature),
        userHandle: credential.response.userHandle ? b64(credential.response.userHandle) : null,
      },
    });
    form.submit();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("passkey-register");
    if (button) button.addEventListener("click", () => register(button));
    const form = document.getElementById("decision-form");
    if (form && form.dataset.challengeUrl) {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        sign(form);
      });
    }
  });
})();
