// @ts-check
/**
 * What both consoles' pages share: building DOM safely (text only: no innerHTML anywhere, so no
 * value from a directory can become markup), the JSON API with the CSRF token, the sign-in form
 * and a hash router. Plain ES module, no build step, no dependency.
 */

/** @typedef {import('../src/console/api-types.js').SessionInfo} SessionInfo */
/** @typedef {string | number | boolean | null | undefined | Node} Child */
/** @typedef {Record<string, string | number | boolean | ((ev: Event) => void) | undefined>} Props */

/**
 * @param {string} tag
 * @param {Props | null} [props]
 * @param {unknown[]} children
 * @returns {HTMLElement}
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, '').toLowerCase(), v);
    else if (k === 'class') el.className = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  el.append(...nodes(children));
  return el;
}

/**
 * Children as nodes: text for values, nothing for null/undefined/false, arrays flattened.
 * @param {unknown[]} children
 * @returns {Node[]}
 */
function nodes(children) {
  /** @type {Node[]} */
  const out = [];
  for (const c of children.flat(3)) {
    if (c === null || c === undefined || c === false) continue;
    out.push(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return out;
}

/**
 * Replaces an element's content.
 * @param {HTMLElement} el
 * @param {unknown[]} children
 */
export function fill(el, ...children) {
  el.replaceChildren(...nodes(children));
}

/** @type {SessionInfo | null} */
let session = null;

export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * @template T
 * @param {string} path  under the console's API, e.g. `${base}/api/overview`
 * @param {{ method?: 'GET' | 'POST', body?: unknown }} [opts]
 * @returns {Promise<T>}
 */
export async function api(path, opts = {}) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json' };
  if (opts.method === 'POST') {
    headers['content-type'] = 'application/json';
    if (session) headers['x-csrf-token'] = session.csrf;
  }
  const res = await fetch(path, { method: opts.method ?? 'GET', headers, credentials: 'same-origin', body: opts.method === 'POST' ? JSON.stringify(opts.body ?? {}) : undefined });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = /** @type {{ error?: { code?: string, message?: string } }} */ (body).error ?? {};
    throw new ApiError(res.status, e.code ?? 'HTTP_' + res.status, e.message ?? `HTTP ${res.status}`);
  }
  return /** @type {T} */ (body);
}

/** @param {SessionInfo | null} s */
export function setSession(s) {
  session = s;
}

export function currentSession() {
  return session;
}

/** @param {string} iso */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/**
 * A table from rows; each cell is text or a node.
 * @param {string[]} head
 * @param {Child[][]} rows
 * @param {string} [label]
 */
export function table(head, rows, label) {
  return h(
    'table',
    label ? { 'aria-label': label } : null,
    h('thead', null, h('tr', null, head.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, rows.length ? rows.map((r) => h('tr', null, r.map((c) => h('td', null, c)))) : h('tr', null, h('td', { colspan: head.length, class: 'muted' }, 'nothing to show'))),
  );
}

/** @param {unknown} e */
export function errorBox(e) {
  return h('p', { class: 'error', role: 'alert' }, e instanceof Error ? e.message : String(e));
}

/**
 * The sign-in form; resolves once signed in.
 * @param {HTMLElement} root
 * @param {string} base
 * @param {string} title
 * @returns {Promise<SessionInfo>}
 */
export function signIn(root, base, title) {
  return new Promise((resolve) => {
    const user = /** @type {HTMLInputElement} */ (h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true }));
    const pass = /** @type {HTMLInputElement} */ (h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true }));
    const msg = h('p', { class: 'error', role: 'alert' });
    const form = h(
      'form',
      { class: 'signin', onsubmit: (ev) => {
        ev.preventDefault();
        msg.textContent = '';
        api(`${base}/api/signin`, { method: 'POST', body: { username: user.value, password: pass.value } })
          .then((s) => {
            pass.value = '';
            setSession(/** @type {SessionInfo} */ (s));
            resolve(/** @type {SessionInfo} */ (s));
          })
          .catch((e) => (msg.textContent = e instanceof Error ? e.message : String(e)));
      } },
      h('h1', null, title),
      h('label', { for: 'username' }, 'User name'),
      user,
      h('label', { for: 'password' }, 'Password'),
      pass,
      h('button', { type: 'submit' }, 'Sign in'),
      msg,
    );
    root.replaceChildren(form);
    user.focus();
  });
}

/**
 * Signs in (or resumes the session), then renders the page named by the hash on every change.
 * @param {{ base: string, title: string, nav: [string, string][], render: (route: string[], main: HTMLElement) => Promise<void> }} app
 */
export async function start(app) {
  const root = /** @type {HTMLElement} */ (document.getElementById('app'));
  try {
    setSession(await api(`${app.base}/api/session`));
  } catch {
    setSession(await signIn(root, app.base, app.title));
  }
  const main = h('main', { id: 'main', tabindex: '-1' });
  const s = currentSession();
  const header = h(
    'header',
    null,
    h('strong', null, app.title),
    h('nav', { 'aria-label': 'pages' }, app.nav.map(([href, label]) => h('a', { href: '#/' + href }, label))),
    h('span', { class: 'who' }, s ? s.user : ''),
    h('button', { type: 'button', id: 'signout', onclick: () => {
      api(`${app.base}/api/signout`, { method: 'POST' }).finally(() => location.reload());
    } }, 'Sign out'),
  );
  root.replaceChildren(header, main);
  const show = async () => {
    const route = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
    if (!route.length) route.push(app.nav[0]?.[0] ?? '');
    for (const a of header.querySelectorAll('nav a')) a.toggleAttribute('aria-current', a.getAttribute('href') === '#/' + route[0]);
    // Each page renders into its own element: a page still loading when the user moves on (or a
    // second render of the same hash) fills an element no longer shown, never the page in view.
    const view = h('div', { class: 'view' }, h('p', { class: 'muted' }, 'Loading…'));
    main.replaceChildren(view);
    try {
      await app.render(route, view);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) location.reload();
      else if (view.isConnected) view.replaceChildren(errorBox(e));
    }
  };
  window.addEventListener('hashchange', () => void show());
  await show();
}
