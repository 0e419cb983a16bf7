import { api, boot, showFormError, clearFormError } from "../app.js";

boot();
const form = document.getElementById("signup-form");
form.addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFormError(form);
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  const creds = { email: form.email.value, password: form.password.value };
  try {
    await api("/api/auth/register", { method: "POST", body: creds, retry: false });
    await api("/api/auth/session", { method: "POST", body: creds, retry: false });
    location.assign("/bots");
  } catch (err) {
    showFormError(form, err);
    button.disabled = false;
  }
});
