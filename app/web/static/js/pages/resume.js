import { renewSession, signInAgain } from "../app.js";

// The access cookie expired or was revoked: renew once, or sign in again.
renewSession().then((ok) => (ok ? location.reload() : signInAgain()));
