/**
 * The cloud admin portal: pages and a JSON API under /portal on `idsync cloud serve`.
 *
 *   GET  /portal/                      the page (webui/portal.html)
 *   GET  /portal/api/session           POST /portal/api/signin {username, password}   POST /portal/api/signout
 *   GET  /portal/api/users?q=          GET /portal/api/users/:id    POST /portal/api/users/:id/active {active}
 *   GET  /portal/api/groups?q=         GET /portal/api/groups/:id (members)
 *   GET  /portal/api/audit?type=&subject=&result=   sign-in logs and audit records
 *   GET  /portal/api/locked            POST /portal/api/locked/unlock {name}
 *   GET  /portal/api/sync-status       last export and password batch per sync account (warning after 3 h)
 *   GET  /portal/api/accounts          administrators and sync accounts (and OAuth clients) with their roles
 *
 * Only GlobalAdministrator accounts sign in (a sync-role account is refused and audited). Sign-in
 * shares the token endpoint's smart lockout (`account:<name>`). Sessions, CSRF and CSP as in
 * src/web/security.ts; every sign-in and action is an audit record of type `portal`. Answers never
 * carry a password, secret or hash: user documents are stripped of such attributes.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AccountStore } from '../accounts/store.js';
import type { AuditLog } from '../audit/store.js';
import type { Lockout } from '../auth/lockout.js';
import { ScimRepository } from '../scim/repository.js';
import { GROUPS } from '../scim/resources/groups.js';
import { USERS } from '../scim/resources/users.js';
import type { Sql } from '../store/sql.js';
import type {
  AttrMap,
  PortalAccounts,
  PortalAuditList,
  PortalGroup,
  PortalGroupList,
  PortalLockedList,
  PortalSyncStatus,
  PortalUser,
  PortalUserList,
  SessionInfo,
} from '../../console/api-types.js';
import {
  addSecurityHeaders,
  checkStateChange,
  clearSessionCookie,
  readCookie,
  sendError,
  serveAssets,
  SessionStore,
  setSessionCookie,
  WebError,
  type CookieOptions,
  type Session,
} from '../../web/security.js';
import { withoutSecrets } from '../../web/security.js';

export const PORTAL_PREFIX = '/portal';
export const PORTAL_COOKIE = 'idsync_portal';
/** The incumbent warns when a sync account has been silent this long. */
export const SYNC_SILENCE_WARNING_MS = 3 * 3600 * 1000;

export interface PortalOptions {
  db: Sql;
  accounts: AccountStore;
  audit: AuditLog;
  lockout: Lockout;
  /** The portal is reached over https (a TLS proxy in front): Secure cookies, https Origin. */
  secure: boolean;
  now?: () => number;
}

interface PortalUserSession {
  name: string;
  tokenVersion: number;
}

const str = (v: unknown, max = 256): string => (typeof v === 'string' ? v.slice(0, max) : '');

export async function portalPlugin(app: FastifyInstance, opts: PortalOptions): Promise<void> {
  const now = opts.now ?? Date.now;
  const { db, accounts, audit, lockout } = opts;
  const repo = new ScimRepository(db);
  const sessions = new SessionStore<PortalUserSession>(now);
  const cookie: CookieOptions = { name: PORTAL_COOKIE, path: PORTAL_PREFIX, secure: opts.secure };

  addSecurityHeaders(app);
  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof WebError) return sendError(reply, err);
    const code = (err as { statusCode?: number }).statusCode;
    const status = typeof code === 'number' && code < 500 ? code : 500;
    return sendError(reply, new WebError(status, status < 500 ? 'BAD_REQUEST' : 'INTERNAL', status < 500 ? 'the request could not be read' : 'internal error: see the cloud directory log'));
  });
  serveAssets(app, ['portal.js', 'common.js', 'style.css'], 'portal.html');

  /** A session lasts while its account exists, is still an administrator and kept its password. */
  const sessionOf = async (req: FastifyRequest): Promise<Session<PortalUserSession> | undefined> => {
    const s = sessions.get(readCookie(req, PORTAL_COOKIE));
    if (!s) return undefined;
    const p = await accounts.accountPrincipal(s.user.name);
    if (p && p.role === 'GlobalAdministrator' && p.tokenVersion === s.user.tokenVersion) return s;
    sessions.delete(s.id);
    return undefined;
  };
  const checked = async (req: FastifyRequest, s: Session<PortalUserSession> | undefined): Promise<void> => {
    try {
      checkStateChange(req, opts.secure, s);
    } catch (e) {
      if (e instanceof WebError) await audit.record({ type: 'portal', actor: s?.user.name, ip: req.ip, result: 'failure', reason: 'csrf_refused', details: { code: e.code, path: req.url.split('?')[0]!.slice(0, 100) } });
      throw e;
    }
  };
  /** The session the guard admitted, per request. */
  const admitted = new WeakMap<FastifyRequest, Session<PortalUserSession>>();
  const guard = async (req: FastifyRequest): Promise<void> => {
    const s = await sessionOf(req);
    if (req.method !== 'GET' && req.method !== 'HEAD') await checked(req, s);
    if (!s) throw new WebError(401, 'SIGNIN_REQUIRED', 'sign in to the portal first');
    admitted.set(req, s);
  };
  const actor = (req: FastifyRequest): string => admitted.get(req)!.user.name;

  app.post('/api/signin', async (req, reply) => {
    await checked(req, undefined);
    const body = req.body as Record<string, unknown> | undefined;
    const username = str(body?.username, 128);
    const password = str(body?.password, 1024);
    const refused = new WebError(401, 'SIGNIN_FAILED', 'the user name or password is incorrect, or the account is locked');
    // The same smart lockout as the token endpoint's password grant (auth/lockout.ts), on the same counter.
    const admission = await lockout.begin({ name: `account:${username}`, ip: req.ip, secret: password, credentialStamp: await accounts.credentialStamp('account', username) });
    if (admission.kind === 'locked') {
      await audit.record({ type: 'portal', subject: username, ip: req.ip, result: 'failure', reason: 'locked_out', details: { remainingSeconds: admission.remainingSeconds } });
      throw new WebError(401, 'SIGNIN_LOCKED', `the account is locked for ${admission.remainingSeconds} s after too many failed sign-ins; the password was not checked`);
    }
    if (admission.kind === 'repeat') {
      await audit.record({ type: 'portal', subject: username, ip: req.ip, result: 'failure', reason: 'repeated_bad_secret' });
      throw refused;
    }
    let r: Awaited<ReturnType<typeof accounts.checkAccountPassword>> | { ok: false; reason: 'unknown' };
    try {
      r = username && password ? await accounts.checkAccountPassword(username, password) : ({ ok: false, reason: 'unknown' } as const);
    } catch (err) {
      admission.finish('void');
      throw err;
    }
    admission.finish(r.ok ? 'success' : 'failure');
    if (!r.ok) {
      await audit.record({ type: 'portal', subject: username, ip: req.ip, result: 'failure', reason: r.reason === 'unknown' ? 'unknown_user' : 'bad_password' });
      throw refused;
    }
    if (r.principal.role !== 'GlobalAdministrator') {
      await audit.record({ type: 'portal', subject: r.principal.name, ip: req.ip, result: 'failure', reason: 'role_not_allowed', details: { role: r.principal.role } });
      throw new WebError(403, 'ROLE_NOT_ALLOWED', 'only global administrators sign in to the portal; sync accounts are for the sync service');
    }
    const s = sessions.create({ name: r.principal.name, tokenVersion: r.principal.tokenVersion });
    setSessionCookie(reply, cookie, s.id);
    await audit.record({ type: 'portal', actor: r.principal.name, subject: r.principal.name, ip: req.ip, result: 'success', reason: 'portal_signin' });
    const info: SessionInfo = { user: r.principal.name, csrf: s.csrf, role: r.principal.role };
    return info;
  });

  app.get('/api/session', async (req) => {
    const s = await sessionOf(req);
    if (!s) throw new WebError(401, 'SIGNIN_REQUIRED', 'sign in to the portal first');
    const info: SessionInfo = { user: s.user.name, csrf: s.csrf, role: 'GlobalAdministrator' };
    return info;
  });

  app.post('/api/signout', { onRequest: guard }, async (req, reply) => {
    const s = (await sessionOf(req))!;
    sessions.delete(s.id);
    clearSessionCookie(reply, cookie);
    await audit.record({ type: 'portal', actor: s.user.name, ip: req.ip, result: 'success', reason: 'portal_signout' });
    return { ok: true };
  });

  type UserRow = { id: string; user_name: string; display_name: string | null; active: number | null; external_id: string | null };
  const userRow = (r: UserRow) => ({ id: r.id, userName: r.user_name, displayName: r.display_name, active: r.active !== 0, externalId: r.external_id });

  app.get('/api/users', { onRequest: guard }, async (req) => {
    const q = str((req.query as { q?: unknown }).q, 256).toLowerCase();
    const rows = await db.all<UserRow>(
      `SELECT id, user_name, display_name, active, external_id FROM scim_users
        WHERE ? = '' OR substr(user_name_lc, 1, length(?)) = ? OR instr(coalesce(display_name_lc, ''), ?) > 0
        ORDER BY user_name_lc LIMIT 200`,
      [q, q, q, q],
    );
    const out: PortalUserList = { users: rows.map(userRow) };
    return out;
  });

  app.get('/api/users/:id', { onRequest: guard }, async (req) => {
    const id = str((req.params as { id: string }).id);
    const u = await repo.get(USERS, id);
    if (!u) throw new WebError(404, 'NOT_FOUND', 'no user with this id');
    const doc = u.doc as AttrMap;
    const out: PortalUser = {
      id: u.id,
      userName: String(doc.userName ?? ''),
      displayName: typeof doc.displayName === 'string' ? doc.displayName : null,
      active: doc.active !== false,
      externalId: typeof doc.externalId === 'string' ? doc.externalId : null,
      created: u.created,
      lastModified: u.lastModified,
      groups: ((await repo.groupsOf([u.id])).get(u.id) ?? []).map((g) => ({ id: g.value, displayName: g.display })),
      attributes: withoutSecrets(doc),
    };
    return out;
  });

  app.post('/api/users/:id/active', { onRequest: guard }, async (req) => {
    const id = str((req.params as { id: string }).id);
    const active = (req.body as { active?: unknown } | undefined)?.active;
    if (typeof active !== 'boolean') throw new WebError(400, 'BAD_REQUEST', 'send {"active": true|false}');
    const u = await repo.get(USERS, id);
    if (!u) throw new WebError(404, 'NOT_FOUND', 'no user with this id');
    await repo.update(USERS, u, { ...u.doc, active }, new Date(now()).toISOString());
    await audit.record({ type: 'portal', actor: actor(req), subject: String((u.doc as AttrMap).userName ?? id), ip: req.ip, result: 'success', reason: active ? 'user_enabled_by_admin' : 'user_disabled_by_admin' });
    return { id, active };
  });

  app.get('/api/groups', { onRequest: guard }, async (req) => {
    const q = str((req.query as { q?: unknown }).q, 256).toLowerCase();
    const rows = await db.all<{ id: string; display_name: string; external_id: string | null; n: number }>(
      `SELECT g.id, g.display_name, g.external_id, (SELECT count(*) FROM scim_group_members AS m WHERE m.group_id = g.id) AS n
         FROM scim_groups AS g WHERE ? = '' OR instr(g.display_name_lc, ?) > 0 ORDER BY g.display_name_lc LIMIT 200`,
      [q, q],
    );
    const out: PortalGroupList = { groups: rows.map((r) => ({ id: r.id, displayName: r.display_name, externalId: r.external_id, memberCount: Number(r.n) })) };
    return out;
  });

  app.get('/api/groups/:id', { onRequest: guard }, async (req) => {
    const id = str((req.params as { id: string }).id);
    const g = await repo.get(GROUPS, id);
    if (!g) throw new WebError(404, 'NOT_FOUND', 'no group with this id');
    const members = await repo.members(id);
    const doc = g.doc as AttrMap;
    const out: PortalGroup = {
      id: g.id,
      displayName: String(doc.displayName ?? ''),
      externalId: typeof doc.externalId === 'string' ? doc.externalId : null,
      memberCount: members.length,
      members: members.map((m) => ({ id: m.value, type: m.type, display: m.display ?? m.value })),
    };
    return out;
  });

  app.get('/api/audit', { onRequest: guard }, async (req) => {
    const q = req.query as Record<string, unknown>;
    const type = str(q.type, 32) || undefined;
    const subject = str(q.subject, 256).toLowerCase();
    const result = str(q.result, 16);
    const records = (await audit.query({ type, limit: 2000 }))
      .filter((r) => (!subject || (r.subject ?? '').toLowerCase().includes(subject) || (r.actor ?? '').toLowerCase().includes(subject)) && (!result || r.result === result))
      .slice(0, 500);
    const out: PortalAuditList = {
      records: records.map((r) => ({ id: r.id, at: r.at, type: r.type, actor: r.actor ?? null, subject: r.subject ?? null, ip: r.ip ?? null, result: r.result, reason: r.reason })),
    };
    return out;
  });

  // The lockout (src/cloud/auth/lockout.ts) owns its tables: counters are keyed "<kind>:<name>" and address.
  app.get('/api/locked', { onRequest: guard }, async () => {
    const out: PortalLockedList = { locked: (await lockout.lockedNow()).map((r) => ({ name: r.name, ip: r.ip, failures: r.failures, lockedUntil: new Date(r.lockedUntil).toISOString() })) };
    return out;
  });

  app.post('/api/locked/unlock', { onRequest: guard }, async (req) => {
    const name = str((req.body as { name?: unknown } | undefined)?.name, 300);
    if (!name) throw new WebError(400, 'BAD_REQUEST', 'send {"name": "<locked name>"}');
    const n = await lockout.unlock(name);
    if (n === 0) throw new WebError(404, 'NOT_FOUND', 'nothing is locked under this name');
    await audit.record({ type: 'portal', actor: actor(req), subject: name, ip: req.ip, result: 'success', reason: 'account_unlocked', details: { rows: n } });
    return { unlocked: name };
  });

  // Metadata only: AccountInfo and ClientInfo carry no hash or secret; picked field by field anyway.
  app.get('/api/accounts', { onRequest: guard }, async () => {
    const out: PortalAccounts = {
      accounts: (await accounts.listAccounts()).map((a) => ({ username: a.username, role: a.role, createdAt: a.createdAt, passwordChangedAt: a.passwordChangedAt })),
      clients: (await accounts.listClients()).map((c) => ({ clientId: c.clientId, role: c.role, createdAt: c.createdAt })),
    };
    return out;
  });

  app.get('/api/sync-status', { onRequest: guard }, async () => {
    const t = now();
    const latest = async (type: string, who: string, field: 'subject' | 'actor'): Promise<string | null> =>
      (await db.get<{ at: string | null }>(`SELECT max(at) AS at FROM audit_log WHERE type = ? AND ${field} = ? AND result = 'success'`, [type, who]))?.at ?? null;
    const principals = [
      ...(await accounts.listAccounts()).filter((a) => a.role === 'DirectorySynchronizationAccounts').map((a) => ({ name: a.username, kind: 'account' as const })),
      ...(await accounts.listClients()).filter((c) => c.role === 'DirectorySynchronizationAccounts').map((c) => ({ name: c.clientId, kind: 'client' as const })),
    ];
    const out: PortalSyncStatus = {
      accounts: [],
    };
    for (const p of principals) {
      out.accounts.push(await (async () => {
        // A sync service takes a token before each export: its last token is its last contact.
        const lastExport = await latest('token', p.name, 'subject');
        const lastPasswordBatch = await latest('passwordHashes', p.name, 'actor');
        const last = [lastExport, lastPasswordBatch].filter((x): x is string => !!x).sort().pop();
        const silentMs = last ? t - Date.parse(last) : null;
        return { name: p.name, kind: p.kind, lastExport, lastPasswordBatch, silentHours: silentMs === null ? null : Math.round(silentMs / 360_000) / 10, warning: silentMs === null || silentMs > SYNC_SILENCE_WARNING_MS };
      })());
    }
    return out;
  });
}
