// Issues list: filters, sort, sparklines, bulk resolve/ignore/reopen.
import { api, h, replace, ago, fmtNum, levelBadge, statusBadge, select, setQuery, LEVELS, errorBox } from './lib.js';
import { sparkline } from './chart.js';

const LIMIT = 50;

export async function mount(main, { project }) {
  const url = new URLSearchParams(location.search);
  const f = {
    status: url.has('status') ? url.get('status') : 'unresolved', service: url.get('service') || '',
    level: url.get('level') || '', q: url.get('q') || '', sort: url.get('sort') || 'last_seen',
    page: Number(url.get('page') || 1),
  };
  const { services } = await api('/api/v1/services', { params: { project } });
  const statusSel = select('status', [['', 'any status'], 'unresolved', 'resolved', 'ignored'], f.status, { id: 'f-status' });
  const serviceSel = select('service', [['', 'all services'], ...services.map((s) => s.name)], f.service, { id: 'f-service' });
  const levelSel = select('level', [['', 'any level'], ...LEVELS.map((l) => [l, `${l} and above`])], f.level, { id: 'f-level' });
  const qIn = h('input', { name: 'q', type: 'search', id: 'f-q', value: f.q, placeholder: 'search titles  ( / )', dataset: { search: '' } });
  const sortSel = select('sort', [['last_seen', 'last seen'], ['first_seen', 'first seen'], ['count', 'events'], ['trend', 'trend']], f.sort, { id: 'f-sort' });
  const form = h('form', { class: 'filters', id: 'issue-filters', attrs: { role: 'search' } },
    h('label', {}, 'Status', statusSel), h('label', {}, 'Service', serviceSel), h('label', {}, 'Level', levelSel),
    h('label', {}, 'Search', qIn), h('label', {}, 'Sort by', sortSel), h('button', { type: 'submit', class: 'primary' }, 'Apply'));

  const selectAll = h('input', { type: 'checkbox', id: 'select-all', attrs: { 'aria-label': 'Select all issues on this page' } });
  const bulk = (label, id, body) => h('button', { type: 'button', id, disabled: true, onclick: () => bulkUpdate(body, label) }, label);
  const bulkButtons = [
    bulk('Resolve', 'bulk-resolve', { status: 'resolved' }),
    bulk('Ignore', 'bulk-ignore', { status: 'ignored' }),
    bulk('Reopen', 'bulk-reopen', { status: 'unresolved' }),
  ];
  const selectedInfo = h('span', { class: 'muted', id: 'selected-count' });
  const tableBox = h('div', { id: 'issues-table' });
  const pager = h('div', { class: 'pager' });
  const err = h('div');
  main.append(h('h1', {}, 'Issues · ', project || 'no project'), form,
    h('div', { class: 'toolbar' }, selectAll, h('label', { class: 'inline', attrs: { for: 'select-all' } }, 'all'), ...bulkButtons, selectedInfo),
    err, tableBox, pager);

  const boxes = () => [...tableBox.querySelectorAll('input[data-issue]')];
  function selectionChanged() {
    const n = boxes().filter((b) => b.checked).length;
    for (const b of bulkButtons) b.disabled = n === 0;
    selectedInfo.textContent = n ? `${n} selected` : '';
  }
  selectAll.addEventListener('change', () => { for (const b of boxes()) b.checked = selectAll.checked; selectionChanged(); });

  async function bulkUpdate(body, label) {
    const ids = boxes().filter((b) => b.checked).map((b) => b.dataset.issue);
    err.replaceChildren();
    const results = await Promise.allSettled(ids.map((id) => api(`/api/v1/issues/${id}`, { method: 'PATCH', body })));
    const failed = results.filter((r) => r.status === 'rejected');
    if (failed.length) err.replaceChildren(errorBox(`${label}: ${failed.length} of ${ids.length} failed (${failed[0].reason.message})`));
    selectAll.checked = false;
    await load();
  }

  async function load() {
    setQuery({ ...f, project, page: f.page > 1 ? f.page : '' });
    try {
      const res = await api('/api/v1/issues', { params: { project, status: f.status, service: f.service, level: f.level, q: f.q, sort: f.sort, page: f.page, limit: LIMIT, sparkline: '24h' } });
      if (!res.issues.length) {
        replace(tableBox, h('p', { class: 'muted', id: 'no-issues' }, 'No issues match.'));
      } else {
        replace(tableBox, h('table', {},
          h('thead', {}, h('tr', {}, h('th', {}, h('span', { class: 'sr' }, 'Select')), h('th', {}, 'Issue'), h('th', {}, 'Level'), h('th', {}, 'Status'),
            h('th', {}, '24 h'), h('th', { class: 'num' }, 'Events'), h('th', {}, 'Last seen'), h('th', {}, 'First seen'))),
          h('tbody', {}, res.issues.map((i) => h('tr', { dataset: { issue: i.id } },
            h('td', {}, h('input', { type: 'checkbox', dataset: { issue: i.id }, onchange: selectionChanged, attrs: { 'aria-label': `Select ${i.title}` } })),
            h('td', {}, h('a', { href: `/issues/${i.id}`, class: 'issue-title' }, i.title),
              i.regressed ? [' ', h('span', { class: 'badge regressed' }, 'regressed')] : null,
              h('div', { class: 'muted mono' }, [i.service, i.culprit].filter(Boolean).join(' · '))),
            h('td', {}, levelBadge(i.level)), h('td', {}, statusBadge(i.status)),
            h('td', {}, sparkline(i.sparkline || [], `${fmtNum((i.sparkline || []).reduce((a, b) => a + b, 0))} events in the last 24 hours`)),
            h('td', { class: 'num' }, fmtNum(i.count)), h('td', {}, ago(i.last_seen)), h('td', {}, ago(i.first_seen)))))));
      }
      const pages = Math.max(1, Math.ceil(res.total / LIMIT));
      if (f.page > pages) { f.page = pages; return load(); }
      replace(pager,
        h('button', { type: 'button', disabled: f.page <= 1, onclick: () => { f.page--; load(); } }, '← Newer'),
        h('span', { class: 'muted' }, `page ${f.page} of ${pages} · ${fmtNum(res.total)} issues`),
        h('button', { type: 'button', disabled: f.page >= pages, onclick: () => { f.page++; load(); } }, 'Older →'));
      selectionChanged();
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
  }
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    Object.assign(f, { status: statusSel.value, service: serviceSel.value, level: levelSel.value, q: qIn.value.trim(), sort: sortSel.value, page: 1 });
    load();
  });
  await load();
}
