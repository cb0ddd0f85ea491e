// Thin client of the sitewatch REST API: session cookies plus the CSRF header on writes.

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)sitewatch_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

let onUnauthorised = () => {};
export function setUnauthorisedHandler(fn) {
  onUnauthorised = fn;
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const raw = body instanceof Blob; // a file: sent as it is (evidence uploads)
  if (body !== undefined) headers["Content-Type"] = raw ? "application/octet-stream" : "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined || raw ? body : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (resp.status === 204) return null;
  let data = null;
  const type = resp.headers.get("content-type") || "";
  if (type.includes("json")) data = await resp.json();
  if (!resp.ok) {
    if (resp.status === 401 && !path.startsWith("/api/auth/login")) onUnauthorised();
    let detail = data && data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
    throw new ApiError(resp.status, detail);
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
export const patch = (path, body) => api("PATCH", path, body);
export const del = (path) => api("DELETE", path);
export const upload = (file) => api("POST", `/api/evidence?name=${encodeURIComponent(file.name)}`, file);
