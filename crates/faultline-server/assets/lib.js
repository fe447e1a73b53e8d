// Shared helpers of the faultline UI. Everything shown is built with DOM
// calls (text nodes and attributes), never by parsing HTML: log text,
// messages, attributes and file names cannot become markup.

/** Creates an element. `props`: class, attrs (object), on* handlers,
 *  dataset, and plain properties; children: nodes, strings, arrays, null. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  applyProps(el, props);
  append(el, children);
  return el;
}

const SVGNS = 'http://www.w3.org/2000/svg';

/** Creates an SVG element; `attrs` are set as attributes. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function applyProps(el, props) {
  if (!props) return;
  for (const [k, v] of Object.entries(props)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'attrs') for (const [a, av] of Object.entries(v)) { if (av !== null && av !== undefined && av !== false) el.setAttribute(a, String(av)); }
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el[k] = v;
  }
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || '';

/** An API error with the server's `error` and `detail`. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.detail ? `${body.error}: ${body.detail}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Calls the JSON API. `params` become the query string (arrays repeat,
 *  empty values are left out). A 401 sends the browser to the login page. */
export async function api(path, { method = 'GET', body, params } = {}) {
  let url = path;
  if (params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      for (const one of Array.isArray(v) ? v : [v]) {
        if (one !== undefined && one !== null && one !== '') q.append(k, one);
      }
    }
    const qs = q.toString();
    if (qs) url += (url.includes('?') ? '&' : '?') + qs;
  }
  const headers = { 'Accept': 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401 && !path.startsWith('/api/v1/session') && !path.startsWith('/api/v1/setup')) {
    location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
    throw new ApiError(401, { error: 'unauthorized', detail: 'log in again' });
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = { error: 'bad response', detail: text.slice(0, 200) }; }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'critical'];

export function levelBadge(level) {
  return h('span', { class: `lvl lvl-${level}` }, level);
}

export function statusBadge(status) {
  return h('span', { class: `status status-${status}` }, status);
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local date and time, to the millisecond. */
export function fmtTime(t) {
  if (!t) return '—';
  const d = new Date(t);
  if (isNaN(d)) return String(t);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** "5 min ago", with the exact time as a tooltip. */
export function ago(t) {
  if (!t) return h('span', { class: 'muted' }, 'never');
  const d = new Date(t);
  const secs = Math.max(0, (Date.now() - d.getTime()) / 1000);
  let text;
  if (secs < 60) text = `${Math.floor(secs)} s ago`;
  else if (secs < 3600) text = `${Math.floor(secs / 60)} min ago`;
  else if (secs < 86400) text = `${Math.floor(secs / 3600)} h ago`;
  else text = `${Math.floor(secs / 86400)} d ago`;
  return h('time', { attrs: { datetime: d.toISOString(), title: fmtTime(t) } }, text);
}

export function fmtNum(n) {
  return Number(n || 0).toLocaleString('en-US');
}

/** The project the UI looks at: `?project=`, else the last chosen one. */
export function currentProject() {
  return new URLSearchParams(location.search).get('project') || localStorage.getItem('faultline.project') || '';
}

export function setProject(p) {
  localStorage.setItem('faultline.project', p);
}

/** Shows a notice in the corner; it stays while hovered or focused, and
 *  has a close button. */
export function toast(content, ms = 20000) {
  const box = document.getElementById('toasts');
  const t = h('div', { class: 'toast' },
    h('button', { type: 'button', class: 'link close', attrs: { 'aria-label': 'Dismiss' }, onclick: () => t.remove() }, '×'),
    content);
  box.append(t);
  const expire = () => { if (!t.matches(':hover, :focus-within')) t.remove(); else setTimeout(expire, 2000); };
  setTimeout(expire, ms);
  while (box.children.length > 5) box.firstElementChild.remove();
  return t;
}

/** An inline error message. */
export function errorBox(e) {
  return h('div', { class: 'error-box', attrs: { role: 'alert' } }, e instanceof Error ? e.message : String(e));
}

/** Copies text, with a fallback for non-secure contexts. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_) {
    const ta = h('textarea', { value: text });
    document.body.append(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    return ok;
  }
}

/** A select element with `options` ([value, label] or value). */
export function select(name, options, value, props = {}) {
  return h('select', { name, ...props }, options.map((o) => {
    const [v, label] = Array.isArray(o) ? o : [o, o];
    return h('option', { value: v, selected: v === value }, label);
  }));
}

/** Keeps page state in the URL's query string. */
export function setQuery(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const qs = q.toString();
  history.replaceState(null, '', location.pathname + (qs ? '?' + qs : ''));
}
