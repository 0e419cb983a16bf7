// Starts Swagger UI on /docs (kept out of the page so the CSP needs no inline script).
const root = document.getElementById("swagger-ui");
window.ui = window.SwaggerUIBundle({
  url: root.dataset.url,
  dom_id: "#swagger-ui",
  validatorUrl: null,
});
