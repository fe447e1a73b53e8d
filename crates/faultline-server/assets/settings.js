// Settings: projects and services, ingest tokens, users, alert channels and
// rules, deliveries (dead-letter queue), retention, setup snippets.
import { api, h, replace, ago, fmtTime, fmtNum, select, copyText, errorBox, LEVELS } from './lib.js';

const TABS = [
  ['projects', 'Projects'], ['tokens', 'Tokens'], ['users', 'Users'], ['alerts', 'Alerts'],
  ['deliveries', 'Deliveries'], ['retention', 'Retention'], ['setup', 'Setup'],
];

function section(title, ...children) {
  return h('section', { class: 'panel' }, h('h2', {}, title), ...children);
}

function formOf(fields, submitLabel, onSubmit, id) {
  const err = h('div');
  const form = h('form', { class: 'filters', id }, fields, h('button', { type: 'submit', class: 'primary' }, submitLabel), err);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.replaceChildren();
    try { await onSubmit(Object.fromEntries(new FormData(form)), form); } catch (ex) { err.replaceChildren(errorBox(ex)); }
  });
  return form;
}

const input = (label, name, props = {}) => h('label', {}, label, h('input', { name, id: `s-${name}`, ...props }));

/** A secret shown once, with a copy button. */
function secretBox(label, secret) {
  const status = h('span', { class: 'muted', attrs: { role: 'status' } });
  return h('div', { class: 'secret', id: 'new-secret' },
    h('strong', {}, label), h('code', { id: 'new-token' }, secret),
    h('button', { type: 'button', id: 'copy-token', onclick: async () => { status.textContent = (await copyText(secret)) ? 'Copied.' : 'Copy failed: select the text.'; } }, 'Copy'),
    status, h('span', { class: 'muted' }, 'It is shown only now; faultline keeps only its hash.'));
}

async function projectsTab(box, ctx) {
  const { projects } = await api('/api/v1/projects');
  const { services } = await api('/api/v1/services');
  replace(box,
    section('Projects',
      h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Project'), h('th', {}, 'Services'), h('th', {}, 'Created'))),
        h('tbody', {}, projects.map((p) => h('tr', {}, h('td', {}, p.name),
          h('td', {}, services.filter((s) => s.project === p.name).map((s) => s.name).join(', ') || h('span', { class: 'muted' }, 'none')),
          h('td', {}, ago(p.created_at)))))),
      h('h3', {}, 'New project'),
      formOf([input('Name', 'name', { required: true })], 'Create project', async (d) => {
        await api('/api/v1/projects', { method: 'POST', body: { name: d.name.trim() } });
        await projectsTab(box, ctx);
      }, 'project-form'),
      h('h3', {}, 'New service'),
      formOf([h('label', {}, 'Project', select('project', projects.map((p) => p.name), ctx.project)), input('Service', 'service', { required: true })], 'Add service', async (d) => {
        await api(`/api/v1/projects/${encodeURIComponent(d.project)}/services`, { method: 'POST', body: { name: d.service.trim() } });
        await projectsTab(box, ctx);
      }, 'service-form')));
}

async function tokensTab(box, ctx, created) {
  const { tokens } = await api('/api/v1/tokens');
  const { projects } = await api('/api/v1/projects');
  const rows = tokens.map((t) => h('tr', { dataset: { token: t.id } },
    h('td', { class: 'mono' }, t.prefix + '…'), h('td', {}, t.kind), h('td', {}, [t.project, t.service].filter(Boolean).join(' / ') || '—'),
    h('td', {}, ago(t.created_at)), h('td', {}, t.last_used ? ago(t.last_used) : h('span', { class: 'muted' }, 'never')),
    h('td', {}, t.revoked_at ? h('span', { class: 'muted' }, `revoked ${fmtTime(t.revoked_at)}`) : h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!confirm(`Revoke token ${t.prefix}…? Senders using it get 401 from now on.`)) return;
      await api(`/api/v1/tokens/${t.id}`, { method: 'DELETE' });
      await tokensTab(box, ctx);
    } }, 'Revoke'))));
  replace(box,
    section('New ingest token',
      h('p', { class: 'muted' }, 'An ingest token may only send logs of its one service. The project and service are created when needed.'),
      formOf([h('label', {}, 'Project', h('input', { name: 'project', id: 's-token-project', required: true, value: ctx.project || '', attrs: { list: 'project-names' } })),
        h('datalist', { id: 'project-names' }, projects.map((p) => h('option', { value: p.name }))),
        input('Service', 'service', { required: true, id: 's-token-service' })], 'Create token', async (d) => {
        const res = await api('/api/v1/tokens', { method: 'POST', body: { kind: 'ingest', project: d.project.trim(), service: d.service.trim() } });
        await tokensTab(box, ctx, res);
      }, 'token-form'),
      created ? [secretBox(`Token for ${created.info.project} / ${created.info.service}:`, created.token), setupSnippets(created.info.project, created.info.service, created.token)] : null),
    section('Tokens',
      h('table', { id: 'tokens' }, h('thead', {}, h('tr', {}, h('th', {}, 'Token'), h('th', {}, 'Kind'), h('th', {}, 'Project / service'), h('th', {}, 'Created'), h('th', {}, 'Last used'), h('th', {}, ''))),
        h('tbody', {}, rows))));
}

async function usersTab(box, ctx) {
  const { users } = await api('/api/v1/users');
  replace(box,
    section('Users',
      h('p', { class: 'muted' }, 'Every user is an administrator of this faultline.'),
      h('table', { id: 'users' }, h('thead', {}, h('tr', {}, h('th', {}, 'User'), h('th', {}, 'Created'), h('th', {}, 'Last login'), h('th', {}, ''))),
        h('tbody', {}, users.map((u) => h('tr', {}, h('td', {}, u.username), h('td', {}, ago(u.created_at)), h('td', {}, ago(u.last_login)),
          h('td', {},
            h('button', { type: 'button', onclick: async () => {
              const pw = prompt(`New password for ${u.username} (at least 8 characters)`);
              if (!pw) return;
              try { await api(`/api/v1/users/${u.id}/password`, { method: 'PUT', body: { password: pw } }); alert('Password changed.'); } catch (e) { alert(e.message); }
            } }, 'Change password'), ' ',
            h('button', { type: 'button', class: 'danger', onclick: async () => {
              if (!confirm(`Delete user ${u.username}?`)) return;
              try { await api(`/api/v1/users/${u.id}`, { method: 'DELETE' }); await usersTab(box, ctx); } catch (e) { alert(e.message); }
            } }, 'Delete'))))))),
    section('New user',
      formOf([input('Username', 'username', { required: true, autocomplete: 'off' }), input('Password', 'password', { type: 'password', required: true, minLength: 8, autocomplete: 'new-password' })], 'Create user', async (d) => {
        await api('/api/v1/users', { method: 'POST', body: { username: d.username.trim(), password: d.password } });
        await usersTab(box, ctx);
      }, 'user-form')));
}

async function alertsTab(box, ctx) {
  const p = ctx.project;
  if (!p) { replace(box, h('p', {}, 'Create a project first.')); return; }
  const enc = encodeURIComponent(p);
  const [{ channels }, { rules }] = await Promise.all([api(`/api/v1/projects/${enc}/alert-channels`), api(`/api/v1/projects/${enc}/alert-rules`)]);
  const describe = (c) => {
    const cond = c.type === 'frequency' ? `≥ ${c.count} events in ${c.window} per ${c.per || 'issue'}`
      : c.type === 'error_rate' ? `error rate ≥ ${(c.threshold * 100).toFixed(1)} % over ${c.window}` : c.type.replace('_', ' ');
    return cond;
  };
  const ruleRows = rules.map((r) => h('tr', { dataset: { rule: r.id } },
    h('td', {}, r.name), h('td', {}, describe(r.spec.condition)), h('td', {}, (r.spec.channels || []).join(', ')),
    h('td', {}, [r.spec.level ? `level ≥ ${r.spec.level}` : null, (r.spec.services || []).length ? `services ${r.spec.services.join(', ')}` : null, r.spec.cooldown ? `cooldown ${r.spec.cooldown}` : null].filter(Boolean).join('; ') || '—'),
    h('td', {}, r.spec.enabled === false ? 'disabled' : 'enabled'),
    h('td', {},
      h('button', { type: 'button', onclick: async () => {
        await api(`/api/v1/alert-rules/${r.id}`, { method: 'PUT', body: { ...r.spec, enabled: r.spec.enabled === false } });
        await alertsTab(box, ctx);
      } }, r.spec.enabled === false ? 'Enable' : 'Disable'), ' ',
      h('button', { type: 'button', class: 'danger', onclick: async () => {
        if (!confirm(`Delete rule ${r.name}?`)) return;
        await api(`/api/v1/alert-rules/${r.id}`, { method: 'DELETE' });
        await alertsTab(box, ctx);
      } }, 'Delete'))));
  const channelRows = channels.map((c) => h('tr', {},
    h('td', {}, c.name), h('td', {}, c.type), h('td', { class: 'mono' }, c.url || c.smtp_host || c.site || '—'),
    h('td', {}, h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!confirm(`Delete channel ${c.name}?`)) return;
      try { await api(`/api/v1/projects/${enc}/alert-channels/${encodeURIComponent(c.name)}`, { method: 'DELETE' }); await alertsTab(box, ctx); } catch (e) { alert(e.message); }
    } }, 'Delete'))));
  const condSel = select('condition', [['frequency', 'frequency (N events in a window)'], ['new_issue', 'new issue'], ['regression', 'regression'], ['error_rate', 'error rate of a service']], 'frequency', { id: 's-condition' });
  replace(box,
    section(`Alert rules · ${p}`,
      rules.length ? h('table', { id: 'rules' }, h('thead', {}, h('tr', {}, h('th', {}, 'Rule'), h('th', {}, 'Condition'), h('th', {}, 'Channels'), h('th', {}, 'Filters'), h('th', {}, 'State'), h('th', {}, ''))), h('tbody', {}, ruleRows)) : h('p', { class: 'muted' }, 'No rules yet.'),
      h('h3', {}, 'New rule'),
      channels.length ? formOf([
        input('Name', 'name', { required: true }), h('label', {}, 'Condition', condSel),
        input('Count', 'count', { type: 'number', min: 1, value: 100 }), input('Window', 'window', { value: '1m', size: 6 }),
        h('label', {}, 'Per', select('per', ['issue', 'service'], 'issue')),
        input('Threshold (error rate, %)', 'threshold', { type: 'number', min: 0, max: 100, step: 0.1, value: 5 }),
        h('label', {}, 'Minimum level', select('level', [['', 'any'], ...LEVELS], '')),
        input('Services (comma separated)', 'services', { size: 14 }), input('Cooldown', 'cooldown', { value: '10m', size: 6 }),
        h('fieldset', {}, h('legend', {}, 'Channels'), channels.map((c) => h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: `ch:${c.name}`, checked: channels.length === 1 }), c.name))),
      ], 'Create rule', async (d) => {
        const type = d.condition;
        const condition = type === 'frequency' ? { type, count: Number(d.count), window: d.window, per: d.per }
          : type === 'error_rate' ? { type, threshold: Number(d.threshold) / 100, window: d.window } : { type };
        const body = {
          name: d.name.trim(), condition, cooldown: d.cooldown || undefined, level: d.level || undefined,
          services: d.services ? d.services.split(',').map((x) => x.trim()).filter(Boolean) : [],
          channels: Object.keys(d).filter((k) => k.startsWith('ch:')).map((k) => k.slice(3)),
        };
        await api(`/api/v1/projects/${enc}/alert-rules`, { method: 'POST', body });
        await alertsTab(box, ctx);
      }, 'rule-form') : h('p', { class: 'muted' }, 'Add a channel first.')),
    section(`Channels · ${p}`,
      channels.length ? h('table', { id: 'channels' }, h('thead', {}, h('tr', {}, h('th', {}, 'Channel'), h('th', {}, 'Type'), h('th', {}, 'Target'), h('th', {}, ''))), h('tbody', {}, channelRows)) : h('p', { class: 'muted' }, 'No channels yet.'),
      h('h3', {}, 'Add or replace a channel'),
      formOf([
        input('Name', 'name', { required: true }),
        h('label', {}, 'Type', select('type', ['webhook', 'slack', 'teams', 'alertmanager', 'email', 'shotgrid'], 'webhook', { id: 's-channel-type' })),
        input('URL', 'url', { size: 36, placeholder: 'https://…' }), input('HMAC secret (webhook)', 'secret', { type: 'password', autocomplete: 'off' }),
        h('label', {}, 'Other settings (JSON, see the README: e-mail and ShotGrid)', h('textarea', { name: 'extra', rows: 3, cols: 40, placeholder: '{"smtp_host": "…", "from": "…", "to": ["…"]}' })),
      ], 'Save channel', async (d) => {
        let extra = {};
        if (d.extra && d.extra.trim()) {
          try { extra = JSON.parse(d.extra); } catch (e) { throw new Error(`Other settings: not JSON (${e.message})`); }
        }
        const body = { type: d.type, ...extra };
        if (d.url) body.url = d.url.trim();
        if (d.secret) body.secret = d.secret;
        await api(`/api/v1/projects/${enc}/alert-channels/${encodeURIComponent(d.name.trim())}`, { method: 'PUT', body });
        await alertsTab(box, ctx);
      }, 'channel-form')));
}

async function deliveriesTab(box, ctx) {
  const status = new URLSearchParams(location.search).get('status') || 'dead';
  const { notifications } = await api('/api/v1/notifications', { params: { project: ctx.project, status, limit: 200 } });
  const pick = select('status', [['dead', 'dead-lettered'], ['pending', 'pending'], ['delivered', 'delivered']], status, { id: 's-delivery-status' });
  pick.addEventListener('change', () => { const q = new URLSearchParams(location.search); q.set('status', pick.value); history.replaceState(null, '', `${location.pathname}?${q}#deliveries`); deliveriesTab(box, ctx); });
  replace(box, section('Deliveries',
    h('p', { class: 'muted' }, 'Notifications are retried with backoff; after the last attempt they wait here, in the dead-letter queue, to be retried or discarded.'),
    h('label', {}, 'Show', pick),
    notifications.length ? h('table', { id: 'deliveries' }, h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, 'Channel'), h('th', {}, 'Trigger'), h('th', {}, 'Attempts'), h('th', {}, 'Last error'), h('th', {}, 'Created'), h('th', {}, ''))),
      h('tbody', {}, notifications.map((n) => h('tr', { dataset: { notification: n.id } },
        h('td', {}, n.id), h('td', {}, n.channel), h('td', {}, n.trigger && n.trigger.issue ? h('a', { href: `/issues/${n.trigger.issue.id}` }, n.trigger.issue.title) : (n.trigger && n.trigger.rule ? n.trigger.rule.name : '—')),
        h('td', { class: 'num' }, fmtNum(n.attempts)), h('td', { class: 'mono' }, n.last_error || '—'), h('td', {}, ago(n.created_at)),
        h('td', {}, n.status === 'dead' ? [
          h('button', { type: 'button', onclick: async () => { await api(`/api/v1/notifications/${n.id}/retry`, { method: 'POST' }); await deliveriesTab(box, ctx); } }, 'Retry'), ' ',
          h('button', { type: 'button', class: 'danger', onclick: async () => { await api(`/api/v1/notifications/${n.id}`, { method: 'DELETE' }); await deliveriesTab(box, ctx); } }, 'Discard'),
        ] : null))))) : h('p', { class: 'muted', id: 'no-deliveries' }, 'Nothing here.')));
}

async function retentionTab(box) {
  const s = await api('/api/v1/settings');
  replace(box, section('Retention',
    h('p', { class: 'muted' }, 'Set in the configuration file ([retention] and [issues] event_retention); the server applies it continuously.'),
    h('table', { class: 'kv', id: 'retention' }, h('tbody', {},
      LEVELS.map((l) => h('tr', {}, h('th', {}, `${l} log lines`), h('td', {}, `${s.retention_days[l]} days`))),
      h('tr', {}, h('th', {}, 'issue events'), h('td', {}, `${s.event_retention_days} days`)),
      h('tr', {}, h('th', {}, 'lines that become issues'), h('td', {}, `${s.issue_level} and above`)))),
    h('h3', {}, 'Ingest limits'),
    h('table', { class: 'kv' }, h('tbody', {}, Object.entries(s.limits).map(([k, v]) => h('tr', {}, h('th', {}, k.replaceAll('_', ' ')), h('td', {}, fmtNum(v))))))));
}

function setupSnippets(project, service, token) {
  const origin = location.origin;
  const tok = token || '<ingest token>';
  const curl = `curl -X POST ${origin}/api/v1/logs \\\n  -H "Authorization: Bearer ${tok}" \\\n  -H "Content-Type: application/json" \\\n  -d '{"service": "${service}", "level": "error", "message": "hello from curl"}'`;
  const cli = `FAULTLINE_SERVER=${origin} FAULTLINE_TOKEN=${tok} \\\n  faultline send --service ${service} --level error -m "hello from faultline send"\n\n# a whole file, one entry per line:\nfaultline send --service ${service} --file app.log`;
  const agent = `# ~/.config/faultline/agent.toml\nserver = "${origin}"\ntoken = "${tok}"\n\n[[sources]]\npaths = ["/var/log/${service}/*.log"]\nservice = "${service}"\n\n# then: faultline-agent run --config ~/.config/faultline/agent.toml`;
  const block = (title, text, id) => h('div', {}, h('h3', {}, title), h('pre', { id }, text),
    h('button', { type: 'button', onclick: (e) => copyText(text).then(() => { e.target.textContent = 'Copied'; }) }, 'Copy'));
  return h('div', { id: 'snippets' },
    h('p', {}, `Send logs to project ${project}, service ${service}:`),
    block('curl', curl, 'snippet-curl'), block('faultline send', cli, 'snippet-cli'), block('faultline-agent', agent, 'snippet-agent'));
}

async function setupTab(box, ctx) {
  replace(box, section('Setup instructions',
    h('p', {}, 'Create an ingest token in ', h('a', { href: '#tokens' }, 'Tokens'), ' to get these with your token filled in.'),
    setupSnippets(ctx.project || 'my-project', 'my-service', null)));
}

const RENDER = { projects: projectsTab, tokens: tokensTab, users: usersTab, alerts: alertsTab, deliveries: deliveriesTab, retention: retentionTab, setup: setupTab };

export async function mount(main, ctx) {
  const tabs = h('nav', { class: 'tabs', attrs: { 'aria-label': 'Settings sections' } },
    TABS.map(([id, label]) => h('a', { href: `#${id}`, id: `tab-${id}` }, label)));
  const box = h('div', { id: 'settings-body' });
  main.append(h('h1', {}, 'Settings'), tabs, box);
  async function show() {
    const id = (location.hash || '#projects').slice(1);
    const tab = RENDER[id] ? id : 'projects';
    for (const a of tabs.querySelectorAll('a')) a.setAttribute('aria-current', String(a.id === `tab-${tab}`));
    try { await RENDER[tab](box, ctx); } catch (e) { replace(box, errorBox(e)); }
  }
  window.addEventListener('hashchange', show);
  await show();
}
