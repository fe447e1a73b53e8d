// Page bootstrap: navigation, project picker, the new-issue notification
// stream, keyboard shortcuts, then the page's own module.
import { api, h, toast, currentProject, setProject, replace, errorBox } from './lib.js';

const page = document.body.dataset.page;
const main = document.getElementById('main');
const DOT_KEY = 'faultline.dot';

const PAGES = {
  login: './login.js', setup: './login.js', dashboard: './dashboard.js', logs: './logs.js',
  issues: './issues.js', issue: './issue.js', settings: './settings.js',
};

function markNav() {
  const current = page === 'issue' ? 'issues' : page;
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === current) a.setAttribute('aria-current', 'page');
  }
}

function showDot(on) {
  document.getElementById('nav-dot').hidden = !on;
  if (on) sessionStorage.setItem(DOT_KEY, '1'); else sessionStorage.removeItem(DOT_KEY);
}

const NOTICES = 'faultline.notices';
let notices = null;

/** Shows a new-issue or regression notice of `project` (all when empty). */
function deliver(n, project) {
  if (project && n.project !== project) return;
  document.dispatchEvent(new CustomEvent('faultline:issue', { detail: n }));
  const what = n.kind === 'new' ? 'New issue' : 'Regression';
  toast([h('strong', {}, what + ': '), h('a', { href: `/issues/${n.issue_id}` }, n.title), h('div', { class: 'muted' }, `${n.project} / ${n.service}`)]);
  if (page !== 'dashboard') showDot(true);
}

/** Opens the notification stream of `project` ('' for all) and hands each
 * notice to `onNotice`; EventSource reconnects by itself. */
function openStream(project, onNotice) {
  const url = '/api/v1/issues/live' + (project ? '?project=' + encodeURIComponent(project) : '');
  const es = new EventSource(url);
  notices = es;
  es.addEventListener('issue', (ev) => onNotice(JSON.parse(ev.data)));
  // EventSource retries network errors itself; after a refused or failed
  // response it gives up, so start over.
  es.addEventListener('error', () => {
    if (es.readyState === EventSource.CLOSED && notices === es) setTimeout(() => { if (notices === es) openStream(project, onNotice); }, 3000);
  });
  return es;
}

function closeStream() {
  if (notices) { const es = notices; notices = null; es.close(); }
}

/**
 * Listens for new issues and regressions. A stream holds one of the six
 * connections a browser opens to a host, so the tabs of this browser share
 * one: the tab that holds the Web Lock `faultline.notices` opens it for
 * every project and passes each notice on through a BroadcastChannel; when
 * that tab goes, the next one takes the lock and the stream (notices sent
 * in between are missed; the dashboard has them). Without those APIs
 * each visible tab opens its own.
 */
function listenForIssues(project) {
  closeStream();
  if (!navigator.locks || !window.BroadcastChannel) {
    // No Web Locks (they need HTTPS or localhost): a stream per visible
    // tab; a hidden tab lets its connection go and listens again when shown.
    const sync = () => {
      if (document.hidden) closeStream();
      else if (!notices) openStream(project, (n) => deliver(n, project));
    };
    document.addEventListener('visibilitychange', sync);
    window.addEventListener('pagehide', () => {
      document.removeEventListener('visibilitychange', sync);
      closeStream();
    }, { once: true });
    sync();
    return;
  }
  const channel = new BroadcastChannel(NOTICES);
  channel.onmessage = (ev) => deliver(ev.data, project);
  const gone = new Promise((resolve) => window.addEventListener('pagehide', resolve, { once: true }));
  gone.then(() => channel.close());
  navigator.locks.request(NOTICES, { signal: abortOn(gone) }, () => {
    openStream('', (n) => { channel.postMessage(n); deliver(n, project); });
    // Held until the page goes (closed, navigated away, or into the
    // back-forward cache): then the next tab opens the stream.
    return gone.then(closeStream);
  }).catch(() => {});
}

/** An AbortSignal that fires when `promise` settles. */
function abortOn(promise) {
  const c = new AbortController();
  promise.then(() => c.abort());
  return c.signal;
}

async function setupSession() {
  document.getElementById('nav').hidden = false;
  document.getElementById('session').hidden = false;
  document.getElementById('who').textContent = document.body.dataset.user;
  document.getElementById('logout').addEventListener('click', async () => {
    try { await api('/api/v1/session', { method: 'DELETE' }); } finally { location.assign('/login'); }
  });
  markNav();
  if (page === 'dashboard') showDot(false); else if (sessionStorage.getItem(DOT_KEY)) showDot(true);

  const sel = document.getElementById('project-select');
  const { projects } = await api('/api/v1/projects');
  let project = currentProject();
  if (!projects.some((p) => p.name === project)) project = projects[0]?.name || '';
  if (project) setProject(project);
  replace(sel, projects.length ? projects.map((p) => h('option', { value: p.name, selected: p.name === project }, p.name)) : h('option', { value: '' }, 'no projects yet'));
  sel.addEventListener('change', () => {
    setProject(sel.value);
    const q = new URLSearchParams(location.search);
    q.set('project', sel.value);
    location.assign(location.pathname + '?' + q.toString());
  });
  listenForIssues(project);
  // Back from the back-forward cache: listen again (leaving let go).
  window.addEventListener('pageshow', (e) => { if (e.persisted) listenForIssues(project); });
  return { project, projects: projects.map((p) => p.name) };
}

// "/" focuses the page's search field (unless typing somewhere already).
document.addEventListener('keydown', (e) => {
  if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement || t.isContentEditable) return;
  const search = document.querySelector('[data-search]');
  if (search) { e.preventDefault(); search.focus(); search.select?.(); }
});

async function start() {
  try {
    const ctx = page === 'login' || page === 'setup' ? { page } : await setupSession();
    ctx.page = page;
    const mod = await import(PAGES[page]);
    main.replaceChildren();
    await mod.mount(main, ctx);
  } catch (e) {
    replace(main, errorBox(e));
    throw e;
  }
}

start();
