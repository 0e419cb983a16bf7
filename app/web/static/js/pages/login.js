import { api, boot, showFormError, clearFormError } from "../app.js";

boot();
const form = document.getElementById("login-form");
form.addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFormError(form);
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await api("/api/auth/session", {
      method: "POST",
      body: { email: form.email.value, password: form.password.value },
      retry: false,
    });
    location.assign(document.body.dataset.next || "/bots");
  } catch (err) {
    showFormError(form, err);
    button.disabled = false;
  }
});
