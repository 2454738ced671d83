// Talks to /api with the token (when one is configured) as "Authorization: Bearer"; the token lives in sessionStorage
// only (never a cookie, so no request can be forged from another site), and is asked for once per tab.
const KEY = 'schedsync.token';
let askForToken = null; // set by app.js: () => Promise<void>, resolves once a token was given

export function token() { return sessionStorage.getItem(KEY); }
export function setToken(value) { value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY); }
export function onTokenNeeded(handler) { askForToken = handler; }

export class ApiError extends Error {
  constructor(status, problem, headers) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem ?? {};
    this.headers = headers;
  }
  /** errors.<field> of a validation problem, by field name (the part before any dot). */
  fieldErrors() {
    const result = {};
    for (const [key, messages] of Object.entries(this.problem.errors ?? {})) {
      const field = key.replace(/^fields\./, '').split(/[.[]/)[0];
      (result[field] ??= []).push(...messages);
    }
    return result;
  }
}

/** Sends a request; answers { data, etag, headers } or throws ApiError (401 first asks for the token, then retries). */
export async function api(method, path, { body, ifMatch } = {}) {
  for (;;) {
    const headers = { Accept: 'application/json' };
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (ifMatch !== undefined) headers['If-Match'] = `"${ifMatch}"`;
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'omit', cache: 'no-store' });
    if (response.status === 401 && askForToken) {
      await askForToken(t ? 'The token was refused; enter the right one.' : null);
      continue;
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = { title: text }; }
    if (!response.ok) throw new ApiError(response.status, data, response.headers);
    return { data, etag: response.headers.get('ETag'), headers: response.headers };
  }
}
