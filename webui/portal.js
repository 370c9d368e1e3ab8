// @ts-check
/**
 * The cloud admin portal's pages: users and groups (search, view, members, enable/disable), sign-in
 * logs and audit, locked accounts (unlock), sync status. Data from /portal/api (types in
 * src/console/api-types.ts).
 */
import { api, errorBox, fill, h, start, table, when } from './common.js';

/** @typedef {import('../src/console/api-types.js').PortalUserList} PortalUserList */
/** @typedef {import('../src/console/api-types.js').PortalUser} PortalUser */
/** @typedef {import('../src/console/api-types.js').PortalGroupList} PortalGroupList */
/** @typedef {import('../src/console/api-types.js').PortalGroup} PortalGroup */
/** @typedef {import('../src/console/api-types.js').PortalAuditList} PortalAuditList */
/** @typedef {import('../src/console/api-types.js').PortalLockedList} PortalLockedList */
/** @typedef {import('../src/console/api-types.js').PortalSyncStatus} PortalSyncStatus */

const BASE = '/portal';

/** @param {string} hash */
function query(hash) {
  return new URLSearchParams(hash.split('?')[1] ?? '');
}

/**
 * A search box that rewrites the hash (so the page can be bookmarked and goes back).
 * @param {string} page @param {string} label @param {string} value
 */
function searchForm(page, label, value) {
  const input = /** @type {HTMLInputElement} */ (h('input', { id: 'q', name: 'q', value, type: 'search' }));
  return h('form', { class: 'inline', role: 'search', onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = `#/${page}?${new URLSearchParams({ q: input.value })}`;
  } }, h('label', { for: 'q' }, label), input, h('button', { type: 'submit' }, 'Search'));
}

/** @param {HTMLElement} main */
async function users(main) {
  const q = query(location.hash).get('q') ?? '';
  /** @type {PortalUserList} */
  const list = await api(`${BASE}/api/users?${new URLSearchParams({ q })}`);
  fill(main,
    h('h1', null, 'Users'),
    searchForm('users', 'User name or display name', q),
    table(['user name', 'display name', 'enabled', 'source anchor'], list.users.map((u) => [h('a', { href: `#/user/${encodeURIComponent(u.id)}` }, u.userName), u.displayName ?? '', u.active ? 'yes' : 'no', u.externalId ?? '']), 'users'));
}

/** @param {HTMLElement} main @param {string} id */
async function user(main, id) {
  /** @type {PortalUser} */
  const u = await api(`${BASE}/api/users/${encodeURIComponent(id)}`);
  const msg = h('p', { role: 'status' });
  const toggle = h('button', { type: 'button', id: 'toggle-active', onclick: () => {
    api(`${BASE}/api/users/${encodeURIComponent(id)}/active`, { method: 'POST', body: { active: !u.active } })
      .then(() => user(main, id))
      .catch((e) => fill(msg, errorBox(e)));
  } }, u.active ? 'Disable sign-in' : 'Enable sign-in');
  fill(main,
    h('h1', null, u.userName),
    h('p', { id: 'user-state' }, u.active ? 'Enabled' : 'Disabled', ` · created ${when(u.created)} · changed ${when(u.lastModified)}`),
    toggle, msg,
    h('p', null, h('a', { href: `#/signins?${new URLSearchParams({ subject: u.userName })}` }, 'Sign-ins of this user')),
    h('h2', null, 'Groups'),
    table(['group'], u.groups.map((g) => [h('a', { href: `#/group/${encodeURIComponent(g.id)}` }, g.displayName)]), 'groups of the user'),
    h('h2', null, 'Attributes'),
    table(['attribute', 'value'], Object.entries(u.attributes).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]), 'attributes'));
}

/** @param {HTMLElement} main */
async function groups(main) {
  const q = query(location.hash).get('q') ?? '';
  /** @type {PortalGroupList} */
  const list = await api(`${BASE}/api/groups?${new URLSearchParams({ q })}`);
  fill(main,
    h('h1', null, 'Groups'),
    searchForm('groups', 'Group name', q),
    table(['group', 'members', 'source anchor'], list.groups.map((g) => [h('a', { href: `#/group/${encodeURIComponent(g.id)}` }, g.displayName), g.memberCount, g.externalId ?? '']), 'groups'));
}

/** @param {HTMLElement} main @param {string} id */
async function group(main, id) {
  /** @type {PortalGroup} */
  const g = await api(`${BASE}/api/groups/${encodeURIComponent(id)}`);
  fill(main,
    h('h1', null, g.displayName),
    h('h2', null, `Members (${g.memberCount})`),
    table(['member', 'type'], g.members.map((m) => [m.type === 'User' ? h('a', { href: `#/user/${encodeURIComponent(m.id)}` }, m.display) : h('a', { href: `#/group/${encodeURIComponent(m.id)}` }, m.display), m.type]), 'members'));
}

/** @param {HTMLElement} main */
async function signins(main) {
  const params = query(location.hash);
  const type = /** @type {HTMLSelectElement} */ (h('select', { id: 'type', name: 'type' }, ['', 'signin', 'token', 'portal', 'admin', 'passwordHashes'].map((t) => h('option', { value: t }, t || 'any type'))));
  type.value = params.get('type') ?? '';
  const subject = /** @type {HTMLInputElement} */ (h('input', { id: 'subject', name: 'subject', value: params.get('subject') ?? '' }));
  const result = /** @type {HTMLSelectElement} */ (h('select', { id: 'result', name: 'result' }, ['', 'success', 'failure'].map((t) => h('option', { value: t }, t || 'any result'))));
  result.value = params.get('result') ?? '';
  /** @type {PortalAuditList} */
  const list = await api(`${BASE}/api/audit?${new URLSearchParams({ type: type.value, subject: subject.value, result: result.value })}`);
  fill(main,
    h('h1', null, 'Sign-in logs and audit'),
    h('form', { class: 'inline', onsubmit: (ev) => {
      ev.preventDefault();
      location.hash = `#/signins?${new URLSearchParams({ type: type.value, subject: subject.value, result: result.value })}`;
    } }, h('label', { for: 'type' }, 'Type'), type, h('label', { for: 'subject' }, 'User or actor'), subject, h('label', { for: 'result' }, 'Result'), result, h('button', { type: 'submit' }, 'Filter')),
    table(['time', 'type', 'user', 'by', 'address', 'result', 'reason'], list.records.map((r) => [when(r.at), r.type, r.subject ?? '', r.actor ?? '', r.ip ?? '', r.result, r.reason]), 'audit records'));
}

/** @param {HTMLElement} main */
async function locked(main) {
  /** @type {PortalLockedList} */
  const list = await api(`${BASE}/api/locked`);
  const msg = h('p', { role: 'status' });
  fill(main,
    h('h1', null, 'Locked accounts'),
    msg,
    table(['name', 'address', 'failures', 'locked until', ''], list.locked.map((l) => [l.name, l.ip === '*' ? 'all addresses' : l.ip, l.failures, when(l.lockedUntil),
      h('button', { type: 'button', 'aria-label': `Unlock ${l.name}`, onclick: () => {
        api(`${BASE}/api/locked/unlock`, { method: 'POST', body: { name: l.name } })
          .then(() => locked(main))
          .catch((e) => fill(msg, errorBox(e)));
      } }, 'Unlock')]), 'locked accounts'));
}

/** @param {HTMLElement} main */
async function sync(main) {
  /** @type {PortalSyncStatus} */
  const s = await api(`${BASE}/api/sync-status`);
  fill(main,
    h('h1', null, 'Sync status'),
    table(['sync account', 'kind', 'last export', 'last password batch', 'state'], s.accounts.map((a) => [a.name, a.kind, when(a.lastExport ?? ''), when(a.lastPasswordBatch ?? ''),
      h('span', { class: a.warning ? 'warn' : 'ok' }, a.warning ? (a.silentHours === null ? 'never synced' : `silent for ${a.silentHours} h`) : 'OK')]), 'sync accounts'));
}

/** @param {HTMLElement} main */
async function accounts(main) {
  /** @type {import('../src/console/api-types.js').PortalAccounts} */
  const a = await api(`${BASE}/api/accounts`);
  /** @param {string} role */
  const what = (role) => (role === 'GlobalAdministrator' ? 'administrator: signs in to this portal and the admin API' : role === 'DirectorySynchronizationAccounts' ? 'sync: exports and password hashes only; cannot sign in here' : role);
  fill(main,
    h('h1', null, 'Administrators and sync accounts'),
    h('p', { class: 'muted' }, 'Created and changed with `idsync cloud admin create-account | set-password | create-client`. Passwords and client secrets are never shown.'),
    h('h2', null, 'Accounts'),
    table(['user name', 'role', 'what it may do', 'created', 'password changed'], a.accounts.map((x) => [x.username, x.role, what(x.role), when(x.createdAt), when(x.passwordChangedAt)]), 'accounts'),
    h('h2', null, 'OAuth clients'),
    table(['client id', 'role', 'what it may do', 'created'], a.clients.map((x) => [x.clientId, x.role, what(x.role), when(x.createdAt)]), 'clients'));
}

void start({
  base: BASE,
  title: 'idsync cloud portal',
  nav: [['users', 'Users'], ['groups', 'Groups'], ['signins', 'Sign-in logs'], ['locked', 'Locked accounts'], ['sync', 'Sync status'], ['accounts', 'Accounts']],
  render: async (route, main) => {
    const page = (route[0] ?? '').split('?')[0];
    const arg = route[1]?.split('?')[0];
    if (page === 'user' && arg) return user(main, arg);
    if (page === 'groups') return groups(main);
    if (page === 'group' && arg) return group(main, arg);
    if (page === 'signins') return signins(main);
    if (page === 'locked') return locked(main);
    if (page === 'sync') return sync(main);
    if (page === 'accounts') return accounts(main);
    return users(main);
  },
});
