// Calls to the gateway's public API with the key typed into the console. The key lives in this tab's
// sessionStorage only: closing the tab forgets it, other sites and tabs never see it.
const KEY = 'mediagate.key';
const ADMIN_KEY = 'mediagate.adminKey';

export const keys = {
  get: () => sessionStorage.getItem(KEY) || '',
  set: (value) => value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY),
  admin: () => sessionStorage.getItem(ADMIN_KEY) || '',
  setAdmin: (value) => value ? sessionStorage.setItem(ADMIN_KEY, value) : sessionStorage.removeItem(ADMIN_KEY),
};

/** An error answer from the gateway: the OpenAI error object, the status and the request id. */
export class ApiError extends Error {
  constructor(status, error, requestId) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || null;
    this.param = error.param || null;
    this.type = error.type || null;
    this.requestId = requestId;
  }
}

/** What to tell a person about an error, in words: the gateway's message plus what to do about it. */
export function explainError(err) {
  if (!(err instanceof ApiError)) return `The gateway could not be reached: ${err.message}`;
  const hints = {
    401: 'The gateway refused the key. Enter a valid gateway key at the top of the page (it is sent as Authorization: Bearer).',
    403: 'This key is not allowed to do that (its scopes or models are limited).',
    402: 'This key\'s budget would be crossed by this request.',
    429: 'Rate limited: wait a moment and try again.',
  };
  const hint = hints[err.status] ? ` ${hints[err.status]}` : '';
  const param = err.param ? ` (field: ${err.param})` : '';
  return `${err.status} ${err.code || ''}: ${err.message}${param}.${hint}`.replace(/\.\./g, '.');
}

function headers(admin, extra = {}) {
  const key = admin ? (keys.admin() || keys.get()) : keys.get();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : { ...extra };
}

async function answer(res) {
  const requestId = res.headers.get('x-request-id');
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!res.ok) {
    throw new ApiError(res.status, (body && body.error) || { message: text.slice(0, 200) || res.statusText }, requestId);
  }
  return body;
}

/** GET or POST JSON; `admin` sends the admin key when one is set. */
export async function api(path, { method = 'GET', body, admin = false, signal } = {}) {
  const init = { method, headers: headers(admin), signal };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  return answer(await fetch(path, init));
}

/** POST multipart (edits, video references). */
export async function postForm(path, form, { signal } = {}) {
  return answer(await fetch(path, { method: 'POST', headers: headers(false), body: form, signal }));
}

/** A file behind the key (a video's content) as a blob: URL a <video> can play. */
export async function blobUrl(path) {
  const res = await fetch(path, { headers: headers(false) });
  if (!res.ok) await answer(res);
  return URL.createObjectURL(await res.blob());
}

export function money(amount, currency = 'USD') {
  if (amount === null || amount === undefined) return 'n/a';
  const digits = amount !== 0 && Math.abs(amount) < 0.01 ? 4 : 3;
  return `${currency === 'USD' ? '$' : currency + ' '}${Number(amount).toFixed(digits)}`;
}

/** A small element helper: el('p', {class: 'x'}, 'text', child). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else if (k === 'style') node.style.cssText = v;   // CSSOM: allowed by the page's CSP, unlike a style attribute
    else if (v === true) node.setAttribute(k, '');
    else node.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}
