// After the admin's logout with single sign-on: on to the provider's end-session endpoint
// (RP-initiated logout). A navigation, not a form: the admin's Content-Security-Policy lets
// forms post only to Release Gate.
document.addEventListener("DOMContentLoaded", () => {
  const link = document.getElementById("provider-logout");
  if (link) window.location.assign(link.href);
});
