// Issue detail: status actions, counts, histograms, the event with its
// stack trace, context, environment, attributes and attachments, event
// navigation and the status history.
import { api, h, replace, ago, fmtTime, fmtNum, levelBadge, statusBadge, errorBox } from './lib.js';
import { bars, hourLabel, dayLabel } from './chart.js';

const HOUR = 3600e3, DAY = 24 * HOUR;

/** Dense buckets from sparse [[t, n]] points. */
function dense(points, width, n) {
  const now = Date.now();
  const start = Math.floor(now / width) * width - (n - 1) * width;
  const counts = new Map(points.map(([t, c]) => [Math.floor(new Date(t).getTime() / width) * width, c]));
  return Array.from({ length: n }, (_, i) => [new Date(start + i * width).toISOString(), counts.get(start + i * width) || 0]);
}

function kvTable(obj, caption) {
  const keys = Object.keys(obj || {});
  if (!keys.length) return null;
  return h('table', { class: 'kv' }, h('caption', { class: 'sr' }, caption),
    h('tbody', {}, keys.sort().map((k) => h('tr', {}, h('th', { attrs: { scope: 'row' } }, k), h('td', { class: 'mono' }, String(obj[k]))))));
}

function frames(list) {
  if (!list || !list.length) return null;
  const out = h('ol', { class: 'frames', attrs: { 'aria-label': 'Stack frames, outermost first' } });
  const text = (fr) => `${fr.module || ''}${fr.function ? (fr.module ? '.' : '') + fr.function : ''}${fr.file ? `  (${fr.file}${fr.line ? ':' + fr.line : ''})` : ''}`;
  let group = [];
  const flush = () => {
    if (!group.length) return;
    out.append(h('li', {}, h('details', {}, h('summary', {}, `${group.length} library frame(s)`),
      h('ol', { class: 'frames' }, group.map((fr) => h('li', {}, text(fr)))))));
    group = [];
  };
  for (const fr of list) {
    if (fr.in_app) { flush(); out.append(h('li', { class: 'in-app' }, text(fr))); } else group.push(fr);
  }
  flush();
  return out;
}

function isText(a) {
  return /^text\//.test(a.content_type) || /\.(log|txt|out|err)$/i.test(a.name);
}

function attachments(issueId, ev) {
  const list = ev.attachments || [];
  if (!list.length) return null;
  return h('ul', { id: 'attachments' }, list.map((a) => {
    const href = `/api/v1/issues/${issueId}/events/${ev.id}/attachments/${a.sha256}`;
    const preview = h('div');
    return h('li', {},
      h('a', { href, download: a.name }, a.name), ' ', h('span', { class: 'muted' }, `${a.content_type}, ${fmtNum(a.size)} bytes`), ' ',
      isText(a) ? h('button', { type: 'button', class: 'link', onclick: async (e) => {
        e.target.disabled = true;
        try {
          const res = await fetch(href, { credentials: 'same-origin' });
          const text = await res.text();
          const max = 200000;
          replace(preview, h('pre', { class: 'attachment-preview' }, text.length > max ? text.slice(-max) : text),
            text.length > max ? h('p', { class: 'muted' }, `Showing the last ${fmtNum(max)} characters.`) : null);
        } catch (ex) { replace(preview, errorBox(ex)); }
      } }, 'preview') : null,
      preview);
  }));
}

/** The logs page showing the service's lines up to just after the event. */
function logsUntil(ev) {
  const d = new Date(new Date(ev.timestamp).getTime() + 1000);
  const p = (n) => String(n).padStart(2, '0');
  const local = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  const q = new URLSearchParams({ project: ev.project, service: ev.service, range: 'custom', until: local });
  return `/logs?${q}`;
}

function eventView(issueId, ev) {
  const ctx = ev.context || {};
  const hasCtx = (ctx.before && ctx.before.length) || (ctx.after && ctx.after.length);
  return h('div', { id: 'event', dataset: { event: ev.id } },
    h('p', {}, levelBadge(ev.level), ' ', fmtTime(ev.timestamp), ' · ', ev.service, ev.host ? ` · ${ev.host}` : '', ev.user ? ` · ${ev.user}` : '',
      ev.count > 1 ? h('span', { class: 'badge' }, ` ×${ev.count}`) : null,
      [' · ', h('a', { href: logsUntil(ev), id: 'event-logs' }, 'log lines before it')]),
    h('h3', {}, 'Message'), h('pre', { id: 'event-message' }, ev.message),
    ev.frames && ev.frames.length ? [h('h3', {}, 'Stack trace', ev.exception_type ? ` · ${ev.exception_type}` : ''), frames(ev.frames)] : null,
    hasCtx ? [h('h3', {}, 'Context'), h('pre', { class: 'ctx', id: 'event-context' },
      (ctx.before || []).map((l) => l + '\n'), h('span', { class: 'hit' }, ev.message.split('\n')[0]), (ctx.after || []).map((l) => '\n' + l))] : null,
    Object.keys(ev.environment || {}).length ? [h('h3', {}, 'Environment'), kvTable(ev.environment, 'Environment')] : null,
    (ev.tags && ev.tags.length) || Object.keys(ev.attributes || {}).length ? [h('h3', {}, 'Tags and attributes'),
      ev.tags && ev.tags.length ? h('p', {}, ev.tags.map((t) => [h('span', { class: 'badge' }, t), ' '])) : null,
      kvTable(ev.attributes, 'Attributes')] : null,
    ev.attachments && ev.attachments.length ? [h('h3', {}, 'Attachments'), attachments(issueId, ev)] : null);
}

export async function mount(main) {
  const id = location.pathname.split('/').pop();
  const head = h('div');
  const err = h('div');
  const eventBox = h('section', { class: 'panel' });
  const historyBox = h('section', { class: 'panel' });
  main.append(head, err, eventBox, historyBox);
  const newer = []; // events visited, for "newer"
  let current = null, latestId = null, oldestId = null;

  async function act(body) {
    err.replaceChildren();
    try { await api(`/api/v1/issues/${id}`, { method: 'PATCH', body }); await load(); } catch (e) { err.replaceChildren(errorBox(e)); }
  }

  function showEvent(ev) {
    current = ev;
    const nav = h('div', { class: 'toolbar' },
      h('button', { type: 'button', id: 'event-newer', disabled: !newer.length || ev.id === latestId, onclick: () => showEvent(newer.pop()) }, '← Newer'),
      h('button', { type: 'button', id: 'event-older', disabled: ev.id === oldestId, onclick: async () => {
        try {
          const { events } = await api(`/api/v1/issues/${id}/events`, { params: { before: current.id, limit: 1 } });
          if (events.length) { newer.push(current); showEvent(events[0]); }
        } catch (e) { err.replaceChildren(errorBox(e)); }
      } }, 'Older →'),
      h('span', { class: 'muted' }, ev.id === latestId ? 'latest event' : ev.id === oldestId ? 'first event' : `event #${ev.id}`));
    replace(eventBox, h('h2', {}, 'Event'), nav, eventView(id, ev));
  }

  async function load() {
    let d;
    try { d = await api(`/api/v1/issues/${id}`); } catch (e) { replace(head, h('h1', {}, 'Issue'), errorBox(e)); return; }
    const i = d.issue;
    document.title = `${i.title} · faultline`;
    const st = i.status;
    replace(head,
      h('p', {}, h('a', { href: `/issues?project=${encodeURIComponent(i.project)}` }, '← Issues')),
      h('h1', { id: 'issue-title' }, i.title),
      h('p', { class: 'mono muted', id: 'issue-culprit' }, [i.culprit, i.exception_type].filter(Boolean).join(' · ') || ''),
      h('div', { class: 'toolbar' },
        h('span', { id: 'issue-status' }, statusBadge(st)), i.regressed ? h('span', { class: 'badge regressed', id: 'issue-regressed' }, 'regressed') : null,
        st !== 'resolved' ? h('button', { type: 'button', class: 'primary', id: 'resolve', onclick: () => act({ status: 'resolved' }) }, 'Resolve') : null,
        st !== 'unresolved' ? h('button', { type: 'button', id: 'reopen', onclick: () => act({ status: 'unresolved' }) }, 'Reopen') : null,
        st !== 'ignored' ? [
          h('button', { type: 'button', id: 'ignore', onclick: () => act({ status: 'ignored' }) }, 'Ignore'),
          h('button', { type: 'button', id: 'ignore-100', onclick: () => act({ status: 'ignored', ignore: { count: 100 } }) }, 'Ignore until 100 more'),
          h('button', { type: 'button', id: 'ignore-24h', onclick: () => act({ status: 'ignored', ignore: { until: '24h' } }) }, 'Ignore for 24 h'),
        ] : null,
        d.ticket ? h('a', { href: d.ticket.url || '#', id: 'ticket', rel: 'noreferrer' }, `${d.ticket.tracker} ticket ${d.ticket.id}`) : null),
      h('div', { class: 'card-row' },
        h('div', { class: 'card' }, h('div', { class: 'n', id: 'issue-count' }, fmtNum(i.count)), h('div', { class: 'label' }, 'events')),
        h('div', { class: 'card' }, h('div', { class: 'n' }, fmtNum(i.count_24h)), h('div', { class: 'label' }, 'in 24 h')),
        h('div', { class: 'card' }, h('div', {}, ago(i.first_seen)), h('div', { class: 'label' }, 'first seen')),
        h('div', { class: 'card' }, h('div', {}, ago(i.last_seen)), h('div', { class: 'label' }, 'last seen')),
        h('div', { class: 'card' }, h('div', { class: 'n' }, fmtNum(i.hosts)), h('div', { class: 'label' }, 'hosts')),
        h('div', { class: 'card' }, h('div', {}, levelBadge(i.level), ' ', i.service), h('div', { class: 'label' }, 'level · service'))),
      h('div', { class: 'grid2' },
        h('section', { class: 'panel' }, h('h2', {}, 'Last 24 hours (UTC hours)'), bars(dense(d.histogram.hourly, HOUR, 24), { title: 'Events per hour, last 24 hours', label: hourLabel })),
        h('section', { class: 'panel' }, h('h2', {}, 'Last 30 days (UTC days)'), bars(dense(d.histogram.daily, DAY, 30), { title: 'Events per day, last 30 days', label: dayLabel }))));
    latestId = d.latest_event ? d.latest_event.id : null;
    oldestId = d.oldest_event ? d.oldest_event.id : null;
    newer.length = 0;
    if (d.latest_event) showEvent(d.latest_event); else replace(eventBox, h('h2', {}, 'Event'), h('p', { class: 'muted' }, 'No event kept (older than the event retention).'));
    replace(historyBox, h('h2', {}, 'History'), d.history.length ? h('ol', { class: 'history', id: 'history' }, d.history.map((c) => h('li', {},
      h('time', {}, fmtTime(c.at)), ' · ', h('strong', {}, c.action), ` ${c.from} → ${c.to}`, c.actor ? ` by ${c.actor}` : '', c.detail ? h('span', { class: 'muted' }, ` (${c.detail})`) : null))) : h('p', { class: 'muted' }, 'No status changes yet.'));
  }
  await load();
  // A regression of this issue shows at once.
  document.addEventListener('faultline:issue', (ev) => { if (String(ev.detail.issue_id) === id) load(); });
}
