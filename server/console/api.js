// Talking to the server: the API key (kept in this tab's sessionStorage),
// errors as { status, code, message, path }, and the cached schema.

const KEY = 'footprint.key';

export const key = () => sessionStorage.getItem(KEY) || '';
export function setKey(k) {
  if (k) sessionStorage.setItem(KEY, k);
  else sessionStorage.removeItem(KEY);
  schemaP = null;
}

export class ApiError extends Error {
  constructor(status, code, message, path) {
    super(message);
    this.status = status;
    this.code = code;
    this.path = path || '';
  }
}

let onAuth = () => {};
// Called with the error of any 401/403 answer.
export function whenUnauthorized(f) { onAuth = f; }

export async function api(method, path, body) {
  const headers = {};
  if (key()) headers.Authorization = 'Bearer ' + key();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'network', 'the server did not answer (' + e.message + ')', '');
  }
  const text = await r.text();
  let j = null;
  try { j = JSON.parse(text); } catch { /* shown below as text */ }
  if (!r.ok) {
    const e = (j && j.error) || {};
    const err = new ApiError(r.status, e.code || 'http_' + r.status, e.message || text || r.statusText, e.path);
    if (r.status === 401 || r.status === 403) onAuth(err);
    throw err;
  }
  if (j === null) throw new ApiError(r.status, 'bad_reply', 'the server answered something that is not JSON', '');
  return j;
}

export const query = (q) => api('POST', '/v1/query', q);
export const stats = () => api('GET', '/v1/stats');
export const profiles = (users) => api('GET', '/v1/profiles?' + users.map((u) => 'user=' + encodeURIComponent(u)).join('&'));
export const live = (limit) => api('GET', `/v1/live?limit=${limit}`);

let schemaP = null;
export function schema() {
  if (!schemaP) schemaP = api('GET', '/v1/schema').catch((e) => { schemaP = null; throw e; });
  return schemaP;
}

// Event names, most frequent first.
export async function eventNames() {
  const s = await schema();
  return Object.entries(s.events || {}).sort((a, b) => b[1] - a[1]).map(([n]) => n);
}

export async function propNames() {
  const s = await schema();
  return Object.keys(s.properties || {}).sort();
}

// Profile property names, the most common first.
export async function userPropNames() {
  const s = await schema();
  return Object.entries(s.profile_properties || {}).sort((a, b) => b[1] - a[1]).map(([n]) => n);
}

// The same query as a shell command. The key is never written out: the
// command reads it from $FOOTPRINT_KEY.
export function curl(q) {
  const auth = key() ? ` -H "Authorization: Bearer $FOOTPRINT_KEY"` : '';
  const body = JSON.stringify(q).replace(/'/g, `'\\''`);
  return `curl -s ${location.origin}/v1/query${auth} -d '${body}'`;
}
