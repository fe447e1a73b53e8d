// Login and first-run setup.
import { api, h, errorBox } from './lib.js';

function field(label, name, type, extra = {}) {
  return h('label', {}, label, h('input', { name, type, required: true, id: `f-${name}`, ...extra }));
}

/** Where to go after logging in: only somewhere on this site (the browser
 *  resolves `next` as it would a link, so `/\\evil` tricks are caught). */
export function safeNext(search = location.search) {
  const next = new URLSearchParams(search).get('next') || '/';
  try {
    const u = new URL(next, location.origin);
    return u.origin === location.origin ? u.pathname + u.search + u.hash : '/';
  } catch (_) {
    return '/';
  }
}

export async function mount(main, { page }) {
  const setup = page === 'setup';
  const err = h('div');
  const form = h('form', { class: 'form', attrs: { 'aria-describedby': 'login-help' } },
    setup ? field('Admin token (printed at the first start of the server)', 'admin_token', 'password', { autocomplete: 'off' }) : null,
    field('Username', 'username', 'text', { autocomplete: 'username', autofocus: true }),
    field('Password', 'password', 'password', { autocomplete: setup ? 'new-password' : 'current-password', minLength: setup ? 8 : undefined }),
    setup ? field('Repeat password', 'password2', 'password', { autocomplete: 'new-password' }) : null,
    h('div', {}, h('button', { class: 'primary', type: 'submit', id: 'login-submit' }, setup ? 'Create administrator' : 'Log in')),
    err);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.replaceChildren();
    const data = Object.fromEntries(new FormData(form));
    try {
      if (setup) {
        if (data.password !== data.password2) throw new Error('the passwords differ');
        await api('/api/v1/setup', { method: 'POST', body: { admin_token: data.admin_token, username: data.username, password: data.password } });
      } else {
        await api('/api/v1/session', { method: 'POST', body: { username: data.username, password: data.password } });
      }
      location.assign(setup ? '/settings' : safeNext());
    } catch (ex) {
      err.replaceChildren(errorBox(ex.status === 401 && !setup ? 'Wrong username or password.' : ex));
    }
  });
  main.append(h('section', { class: 'login-box' },
    h('h1', {}, setup ? 'Set up faultline' : 'Log in to faultline'),
    h('p', { class: 'muted', id: 'login-help' }, setup
      ? 'Create the first administrator. The admin token was printed when the server started for the first time; `faultline token create --admin` makes another.'
      : 'Ask an administrator for an account.'),
    form));
}
