// Logs: filters, history with cursor pagination, and live mode over a
// WebSocket with pause/resume, a connection indicator that recovers by
// itself, and a capped DOM so 1,000 lines/s stay smooth.
import { api, h, fmtTime, select, setQuery, LEVELS, errorBox } from './lib.js';

/** Rows kept in the list; older rows leave the DOM (history can reload them). */
export const MAX_ROWS = 1000;
/** Entries held while paused before only counting them. */
const MAX_BUFFER = 5000;
const PAGE = 100;

/** Microseconds of an API timestamp ("…T…:ss.uuuuuuZ"). */
function micros(ts) {
  return Date.parse(ts.slice(0, 19) + 'Z') * 1000 + parseInt(ts.slice(20, 26) || '0', 10);
}
const cursorOf = (e) => `${micros(e.timestamp)}_${e.id}`;

export async function mount(main, { project }) {
  const url = new URLSearchParams(location.search);
  const f = {
    service: url.get('service') || '', level: url.get('level') || '', tag: url.get('tag') || '',
    q: url.get('q') || '', range: url.get('range') || '', since: url.get('since') || '', until: url.get('until') || '',
  };
  let live = url.get('live') !== 'off';

  const { services } = await api('/api/v1/services', { params: { project } });
  const serviceSel = select('service', [['', 'all services'], ...services.map((s) => s.name)], f.service, { id: 'f-service' });
  const levelSel = select('level', [['', 'any level'], ...LEVELS.map((l) => [l, `${l} and above`])], f.level, { id: 'f-level' });
  const tagIn = h('input', { name: 'tag', id: 'f-tag', value: f.tag, placeholder: 'tag', size: 10 });
  const qIn = h('input', { name: 'q', id: 'f-q', type: 'search', value: f.q, placeholder: 'search text  ( / )', size: 28, dataset: { search: '' } });
  const rangeSel = select('range', [['', 'any time'], ['15m', 'last 15 min'], ['1h', 'last hour'], ['6h', 'last 6 h'], ['24h', 'last 24 h'], ['7d', 'last 7 days'], ['30d', 'last 30 days'], ['custom', 'custom…']], f.range, { id: 'f-range' });
  const sinceIn = h('input', { name: 'since', id: 'f-since', type: 'datetime-local', step: 1, value: f.since });
  const untilIn = h('input', { name: 'until', id: 'f-until', type: 'datetime-local', step: 1, value: f.until });
  const custom = h('span', { class: 'filters', hidden: f.range !== 'custom' },
    h('label', {}, 'From', sinceIn), h('label', {}, 'To', untilIn));
  rangeSel.addEventListener('change', () => { custom.hidden = rangeSel.value !== 'custom'; });

  const form = h('form', { class: 'filters', id: 'log-filters', attrs: { role: 'search' } },
    h('label', {}, 'Service', serviceSel), h('label', {}, 'Level', levelSel), h('label', {}, 'Tag', tagIn),
    h('label', {}, 'Search', qIn), h('label', {}, 'Time', rangeSel), custom,
    h('button', { type: 'submit', class: 'primary' }, 'Apply'));

  const conn = h('span', { class: 'conn', id: 'conn', dataset: { state: 'off' }, attrs: { role: 'status', 'aria-live': 'polite' } }, 'not live');
  const liveBtn = h('button', { type: 'button', id: 'live-toggle', attrs: { 'aria-pressed': String(live) } }, 'Live');
  const pauseBtn = h('button', { type: 'button', id: 'pause', attrs: { 'aria-pressed': 'false' } }, 'Pause');
  const counter = h('span', { class: 'muted', id: 'buffered' });
  const list = h('ul', { class: 'loglines', id: 'loglines', attrs: { 'aria-label': 'Log lines, newest first' } });
  const olderBtn = h('button', { type: 'button', id: 'older' }, 'Load older');
  const status = h('span', { class: 'muted', id: 'history-status' });
  const err = h('div');
  main.append(h('h1', {}, 'Logs · ', project || 'no project'), form,
    h('div', { class: 'toolbar' }, liveBtn, pauseBtn, conn, counter), err, list,
    h('div', { class: 'pager' }, olderBtn, status));

  // ---- rows
  const shown = new Set();
  let olderCursor = null;
  let newestMicros = 0;
  const pendingLinks = new Map(); // log id -> [row, attempts]

  function issueLink(row, issueId) {
    const cell = row.querySelector('.issue');
    if (cell && !cell.firstChild) cell.append(h('a', { href: `/issues/${issueId}`, class: 'issue-link' }, `issue #${issueId}`));
  }

  // One prototype row, cloned per line (much cheaper than building each):
  // a button that shows the raw entry, and beside it the issue link.
  // Lines are one tab stop (the list); arrow keys move between them.
  const proto = h('li', { class: 'row' },
    h('button', { type: 'button', class: 'line', tabIndex: -1, attrs: { 'aria-expanded': 'false' } },
      h('span', { class: 'ts' }), h('span', { class: 'lvl' }), h('span', { class: 'svc' }),
      h('span', { class: 'msg' })),
    h('span', { class: 'issue' }));

  function row(e) {
    const li = proto.cloneNode(true);
    li.dataset.id = e.id;
    li.dataset.level = e.level;
    const [ts, lvl, svc, msg] = li.firstChild.children;
    ts.textContent = fmtTime(e.timestamp);
    lvl.textContent = e.level;
    lvl.className = `lvl lvl-${e.level}`;
    svc.textContent = e.service;
    svc.title = e.service;
    msg.textContent = e.message;
    li._entry = e;
    const t = micros(e.timestamp);
    if (t > newestMicros) newestMicros = t;
    if (e.issue_id) issueLink(li, e.issue_id);
    else if (LEVELS.indexOf(e.level) >= 4) pendingLinks.set(e.id, [li, 0]);
    return li;
  }

  /** Shows or hides a line's raw entry (one handler for the whole list). */
  function toggleRaw(line) {
    const li = line.parentElement;
    const raw = li.querySelector('.raw');
    if (raw) raw.remove(); else li.append(h('pre', { class: 'raw' }, JSON.stringify(li._entry, null, 2)));
    line.setAttribute('aria-expanded', String(!raw));
  }
  list.tabIndex = 0;
  list.addEventListener('click', (ev) => {
    const line = ev.target.closest('.line');
    if (line) toggleRaw(line);
  });
  list.addEventListener('focus', () => list.querySelector('.line')?.focus());
  list.addEventListener('keydown', (ev) => {
    const line = ev.target.closest?.('.line');
    if (!line) return;
    const li = line.parentElement;
    const go = {
      ArrowDown: () => li.nextElementSibling, ArrowUp: () => li.previousElementSibling,
      Home: () => list.firstElementChild, End: () => list.lastElementChild,
    }[ev.key];
    if (!go) return;
    ev.preventDefault();
    let next = go();
    while (next && !next.querySelector('.line')) next = ev.key === 'ArrowUp' ? next.previousElementSibling : next.nextElementSibling;
    next?.querySelector('.line').focus();
  });

  function notice(text) {
    return h('li', { class: 'notice-line' }, text);
  }

  function trim() {
    let last = null;
    while (list.children.length > MAX_ROWS) {
      const li = list.lastElementChild;
      li.remove();
      if (li._entry) { shown.delete(li._entry.id); pendingLinks.delete(li._entry.id); last = li; }
    }
    if (last) {
      // History continues after the oldest row still shown.
      let keep = list.lastElementChild;
      while (keep && !keep._entry) keep = keep.previousElementSibling;
      if (keep) olderCursor = cursorOf(keep._entry);
      olderBtn.disabled = false;
      status.textContent = '';
    }
  }

  function addNewest(entries) {
    const frag = document.createDocumentFragment();
    // `entries` are oldest first; the list is newest first.
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i];
      if (e.id !== undefined) {
        if (shown.has(e.id)) continue;
        shown.add(e.id);
        frag.append(row(e));
      } else frag.append(e);
    }
    list.prepend(frag);
    trim();
  }

  // ---- history
  function params() {
    const p = { project, service: f.service, level: f.level, tag: f.tag, q: f.q };
    if (f.range === 'custom') {
      if (f.since) p.since = new Date(f.since).toISOString();
      if (f.until) p.until = new Date(f.until).toISOString();
    } else if (f.range) p.since = f.range;
    return p;
  }

  async function loadOlder(first) {
    olderBtn.disabled = true;
    status.textContent = 'Loading…';
    try {
      const page = await api('/api/v1/logs', { params: { ...params(), limit: PAGE, cursor: first ? undefined : olderCursor } });
      const frag = document.createDocumentFragment();
      for (const e of page.entries) {
        if (shown.has(e.id)) continue;
        shown.add(e.id);
        frag.append(row(e));
      }
      list.append(frag);
      olderCursor = page.next_cursor;
      olderBtn.disabled = !olderCursor;
      status.textContent = olderCursor ? '' : (list.children.length ? 'Beginning of the results.' : 'No log lines match.');
      err.replaceChildren();
    } catch (e) {
      err.replaceChildren(errorBox(e));
      olderBtn.disabled = false;
      status.textContent = '';
    }
  }
  olderBtn.addEventListener('click', () => {
    // Reading history: hold live lines so they do not push it away.
    if (wantLive && !paused) togglePause();
    loadOlder(false);
  });

  // ---- live
  let ws = null, paused = false, buffer = [], overflow = 0, attempts = 0, retryTimer = null;
  let queue = [], scheduled = false, wantLive = false;

  function setConn(state, text) { conn.dataset.state = state; conn.textContent = text; }
  function updateCounter() {
    counter.textContent = paused ? `${(buffer.length + overflow).toLocaleString('en-US')} new lines while paused` : '';
    pauseBtn.textContent = paused ? `Resume (${(buffer.length + overflow).toLocaleString('en-US')})` : 'Pause';
  }

  // Time spent rendering live lines (ms per frame), for the browser tests.
  const renderTimes = window.__faultlineRenderMs = [];
  function flush() {
    const t0 = performance.now();
    scheduled = false;
    const batch = queue;
    queue = [];
    addNewest(batch);
    if (renderTimes.length < 10000) renderTimes.push(performance.now() - t0);
  }
  function enqueue(item) {
    if (paused) {
      if (buffer.length < MAX_BUFFER) buffer.push(item); else overflow++;
      updateCounter();
      return;
    }
    queue.push(item);
    if (!scheduled) { scheduled = true; requestAnimationFrame(flush); }
  }

  function liveUrl() {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries({ project, service: f.service, level: f.level, tag: f.tag, q: f.q })) if (v) p.set(k, v);
    return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/logs/live?${p}`;
  }

  // Lines committed while the socket was not open (before the first open,
  // or during an outage): everything from a minute before the newest line
  // shown, minus what is shown. The gap is added as one block.
  async function fillGap() {
    if (!newestMicros) return;
    try {
      const since = new Date(newestMicros / 1000 - 60000).toISOString();
      const page = await api('/api/v1/logs', { params: { ...params(), since, limit: 1000 } });
      const missing = page.entries.filter((e) => !shown.has(e.id)).reverse();
      if (missing.length) {
        for (const e of missing) enqueue(e);
        const more = page.next_cursor ? ' More may be missing: pause and use the history.' : '';
        enqueue(notice(`${missing.length} line(s) from while the connection was not open were added here.${more}`));
      }
    } catch (_) { /* the next reconnect tries again */ }
  }

  function connect() {
    clearTimeout(retryTimer);
    if (!wantLive) return;
    setConn(attempts ? 'reconnecting' : 'connecting', attempts ? `reconnecting (attempt ${attempts + 1})…` : 'connecting…');
    const sock = new WebSocket(liveUrl());
    ws = sock;
    sock.onopen = () => {
      attempts = 0;
      setConn('live', 'live');
      fillGap();
    };
    sock.onmessage = (m) => {
      const item = JSON.parse(m.data);
      if (item.dropped !== undefined) enqueue(notice(`The server dropped ${item.dropped} line(s) because this view fell behind.`));
      else enqueue(item);
    };
    sock.onclose = () => {
      if (ws !== sock || !wantLive) return;
      ws = null;
      attempts++;
      const delay = Math.min(10000, 500 * 2 ** Math.min(attempts, 5));
      if (attempts > 3) setConn('disconnected', `disconnected, retrying in ${Math.round(delay / 1000)} s`);
      else setConn('reconnecting', 'reconnecting…');
      retryTimer = setTimeout(connect, delay);
    };
  }

  function stopLive() {
    wantLive = false;
    clearTimeout(retryTimer);
    if (ws) { const s = ws; ws = null; s.close(); }
    setConn('off', f.range === 'custom' && f.until ? 'not live (fixed time range)' : 'not live');
  }

  function startLive() {
    if (!live || (f.range === 'custom' && f.until)) { stopLive(); return; }
    wantLive = true;
    attempts = 0;
    connect();
  }

  liveBtn.addEventListener('click', () => {
    live = !live;
    liveBtn.setAttribute('aria-pressed', String(live));
    sync();
    if (live) startLive(); else stopLive();
  });
  pauseBtn.addEventListener('click', () => togglePause());
  function togglePause() {
    paused = !paused;
    if (!paused) {
      const held = buffer, lost = overflow;
      buffer = []; overflow = 0;
      if (lost) held.push(notice(`${lost} more line(s) arrived while paused; they are in the history.`));
      addNewest(held);
    }
    pauseBtn.setAttribute('aria-pressed', String(paused));
    updateCounter();
  }

  // Issue links for error lines seen live: their events are recorded a
  // moment after the line is committed.
  let linking = false;
  setInterval(async () => {
    if (!pendingLinks.size || linking) return;
    linking = true;
    const ids = [...pendingLinks.keys()].slice(0, 500);
    try {
      const { links } = await api('/api/v1/issue-links', { params: { log_ids: ids.join(',') } });
      for (const id of ids) {
        const pending = pendingLinks.get(id);
        if (!pending) continue; // trimmed or filtered away meanwhile
        const [li, n] = pending;
        if (links[id]) { issueLink(li, links[id]); pendingLinks.delete(id); } else if (n >= 5) pendingLinks.delete(id); else pendingLinks.set(id, [li, n + 1]);
      }
    } catch (_) { /* retried on the next tick */ } finally { linking = false; }
  }, 1500);

  function sync() {
    setQuery({ ...f, project, live: live ? '' : 'off' });
  }

  async function apply() {
    Object.assign(f, {
      service: serviceSel.value, level: levelSel.value, tag: tagIn.value.trim(), q: qIn.value.trim(),
      range: rangeSel.value, since: sinceIn.value, until: untilIn.value,
    });
    sync();
    stopLive();
    list.replaceChildren();
    shown.clear();
    pendingLinks.clear();
    buffer = []; overflow = 0; updateCounter();
    await loadOlder(true);
    startLive();
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
  window.addEventListener('pagehide', () => stopLive());
  window.addEventListener('pageshow', (e) => { if (e.persisted) startLive(); });
  await apply();
}
