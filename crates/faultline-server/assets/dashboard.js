// Dashboard of a project: activity charts, issue counts, top issues,
// services, and live notices of new issues and regressions.
import { api, h, replace, ago, fmtNum, levelBadge, errorBox } from './lib.js';
import { stackedBars, legend, hourLabel, dayLabel } from './chart.js';

function card(id, n, label) {
  return h('div', { class: 'card', id }, h('div', { class: 'n' }, fmtNum(n)), h('div', { class: 'label' }, label));
}

function issueList(issues, empty, extra) {
  if (!issues.length) return h('p', { class: 'muted' }, empty);
  return h('ol', {}, issues.map((i) => h('li', {},
    h('a', { href: `/issues/${i.id}` }, i.title), ' ',
    h('span', { class: 'muted' }, extra(i)))));
}

export async function mount(main, { project }) {
  if (!project) {
    main.append(h('h1', {}, 'Dashboard'), h('p', {}, 'No project yet. ', h('a', { href: '/settings#tokens' }, 'Create an ingest token'), ' to start sending logs.'));
    return;
  }
  const banners = h('div', { id: 'notices', attrs: { 'aria-live': 'polite' } });
  const body = h('div', { id: 'dashboard-body' }, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('h1', {}, 'Dashboard · ', project), banners, body);

  async function load() {
    try {
      const enc = encodeURIComponent(project);
      const [ov, byCount, byTrend, newest, regressed] = await Promise.all([
        api(`/api/v1/projects/${enc}/overview`),
        api('/api/v1/issues', { params: { project, status: 'unresolved', sort: 'count', limit: 5 } }),
        api('/api/v1/issues', { params: { project, status: 'unresolved', sort: 'trend', limit: 5 } }),
        api('/api/v1/issues', { params: { project, sort: 'first_seen', limit: 10 } }),
        api('/api/v1/issues', { params: { project, status: 'unresolved', sort: 'last_seen', limit: 100 } }),
      ]);
      const dayAgo = Date.now() - 86400e3;
      const fresh = newest.issues.filter((i) => new Date(i.first_seen).getTime() >= dayAgo);
      const reg = regressed.issues.filter((i) => i.regressed).slice(0, 10);
      replace(body,
        h('div', { class: 'card-row' },
          card('count-unresolved', ov.issues.unresolved, 'unresolved issues'),
          card('count-new', ov.issues.new_since, 'new in 24 h'),
          card('count-regressed', ov.issues.regressed, 'regressed')),
        h('div', { class: 'grid2' },
          h('section', { class: 'panel' }, h('h2', {}, 'Events per hour, last 24 h (UTC)'),
            stackedBars(ov.hourly, { title: 'Log entries per hour by level, last 24 hours', label: hourLabel }), legend()),
          h('section', { class: 'panel' }, h('h2', {}, 'Events per day, last 30 days (UTC)'),
            stackedBars(ov.daily, { title: 'Log entries per day by level, last 30 days', label: dayLabel }), legend())),
        h('div', { class: 'grid2' },
          h('section', { class: 'panel', id: 'top-count' }, h('h2', {}, 'Top issues by count'),
            issueList(byCount.issues, 'No unresolved issues.', (i) => `${fmtNum(i.count)} events`)),
          h('section', { class: 'panel', id: 'top-trend' }, h('h2', {}, 'Trending (24 h vs the day before)'),
            issueList(byTrend.issues.filter((i) => i.trend > 0), 'Nothing is growing.', (i) => `+${fmtNum(i.trend)}`)),
          h('section', { class: 'panel', id: 'new-issues' }, h('h2', {}, 'New issues (24 h)'),
            issueList(fresh, 'No new issues in the last 24 hours.', (i) => i.service)),
          h('section', { class: 'panel', id: 'regressed-issues' }, h('h2', {}, 'Regressed'),
            issueList(reg, 'No regressions.', (i) => i.service))),
        h('section', { class: 'panel', id: 'services' }, h('h2', {}, 'Services'),
          ov.services.length ? h('table', {},
            h('thead', {}, h('tr', {}, h('th', {}, 'Service'), h('th', {}, 'Last seen'), h('th', { class: 'num' }, 'Entries (24 h)'), h('th', { class: 'num' }, 'Errors (24 h)'), h('th', { class: 'num' }, 'Error rate'))),
            h('tbody', {}, ov.services.map((s) => h('tr', {},
              h('td', {}, h('a', { href: `/logs?service=${encodeURIComponent(s.name)}` }, s.name)),
              h('td', {}, ago(s.last_seen)),
              h('td', { class: 'num' }, fmtNum(s.entries_24h)),
              h('td', { class: 'num' }, fmtNum(s.errors_24h)),
              h('td', { class: 'num' }, (s.error_rate_24h * 100).toFixed(1) + ' %'))))) : h('p', { class: 'muted' }, 'No services yet.')));
    } catch (e) {
      replace(body, errorBox(e));
    }
  }

  let reload = null;
  document.addEventListener('faultline:issue', (ev) => {
    const n = ev.detail;
    banners.prepend(h('div', { class: 'banner', dataset: { kind: n.kind } },
      h('strong', {}, n.kind === 'new' ? 'New issue: ' : 'Regression: '),
      h('a', { href: `/issues/${n.issue_id}` }, n.title), ' ', levelBadge(n.level), ' ',
      h('span', { class: 'muted' }, n.service)));
    while (banners.children.length > 5) banners.lastChild.remove();
    // Coalesce a burst of notices into one refresh.
    clearTimeout(reload);
    reload = setTimeout(load, 1000);
  });
  await load();
}
