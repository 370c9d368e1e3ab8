/**
 * The sync console: pages and a JSON API under /console on `idsync serve`'s own port.
 *
 *   GET  /console/                 the page (webui/console.html; the front end routes on the hash)
 *   GET  /console/api/session      who is signed in, and the CSRF token (401 when nobody)
 *   POST /console/api/signin       {username, password}: the account of `idsync console set-password`
 *   POST /console/api/signout
 *   GET  /console/api/overview     health with a fix per degraded reason, the last cycle's counts
 *   GET  /console/api/runs[/:id]   run history; one run with its errors
 *   GET  /console/api/search       metaverse search by attribute (equals / starts with), keyset-paged
 *   GET  /console/api/objects/:id  an object's lineage: connector space -> metaverse -> cloud
 *   GET  /console/api/events       the event log, by level and id
 *   POST /console/api/cycle        run a sync cycle now
 *
 * Safety (see src/web/security.ts): session cookie HttpOnly + SameSite=Strict, CSRF token and Origin
 * check on every POST, strict CSP, every sign-in and action an event (6150–6155). Nothing here
 * returns a credential: credentials appear as metadata only (HealthReport), and attributes whose
 * name says password, hash or secret are dropped from object pages.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EngineContext } from '../engine/context.js';
import { RunLog, type RunRecord } from '../engine/runs.js';
import { EVENTS, EVENT_LEVELS, type EventLevel } from '../events/catalog.js';
import type { HealthReport } from '../service/health.js';
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
} from '../web/security.js';
import { SECRET_ATTR, withoutSecrets } from '../web/security.js';
import { checkConsolePassword, readConsoleAccount } from './account.js';
import { tryNormalizeDn } from '../ldap/dn.js';
import type { AttrMap, DegradedWithFix, EventList, Lineage, Overview, RunDetail, RunList, SearchResult, SessionInfo } from './api-types.js';

export const CONSOLE_PREFIX = '/console';
export const CONSOLE_COOKIE = 'idsync_console';
const SIGNIN_FAILURE_LIMIT = 5;
const SIGNIN_WINDOW_MS = 15 * 60 * 1000;
const PAGE_SIZE = 50;

export interface ConsoleOptions {
  ctx: EngineContext;
  health(): HealthReport;
  runNow(): Promise<RunRecord | undefined>;
  /** The service listens with TLS: cookies get `Secure`, the Origin must be https. */
  secure: boolean;
  now?: () => number;
}


const FIXES: Record<string, string> = {
  'sync-cycle': 'Open Operations to read the failed run\'s errors; `idsync doctor` names the failing check and the command that fixes it.',
  'cloud-credential': 'Update the cloud credential with `idsync credentials set cloud` (it is tested before it is saved); health recovers at the next cycle.',
  'password-heartbeat': 'Check that the DC agent or the password source runs (`idsync agent status`) and reaches this service.',
  'password-outbox': 'Changes are kept and delivered in order once the cloud accepts them: fix the cause named by events 115, 0, 652 or 655 (usually `idsync credentials set cloud`).',
};

function parseJsonAttrs(text: string): AttrMap {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as AttrMap) : {};
  } catch {
    return {};
  }
}

function display(attrs: AttrMap): string {
  for (const k of ['displayName', 'userName', 'cn', 'mail', 'name', 'sAMAccountName', 'uid']) {
    const v = attrs[k];
    if (typeof v === 'string' && v) return v;
    if (Array.isArray(v) && typeof v[0] === 'string') return v[0];
  }
  return '';
}

export async function consolePlugin(app: FastifyInstance, opts: ConsoleOptions): Promise<void> {
  const now = opts.now ?? Date.now;
  const sessions = new SessionStore<{ name: string; accountChangedAt: string }>(now);
  const cookie: CookieOptions = { name: CONSOLE_COOKIE, path: CONSOLE_PREFIX, secure: opts.secure };
  const failures = new Map<string, { n: number; since: number }>();
  const { ctx } = opts;
  const events = () => ctx.events;

  addSecurityHeaders(app);
  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof WebError) return sendError(reply, err);
    const status = typeof (err as { statusCode?: number }).statusCode === 'number' && (err as { statusCode: number }).statusCode < 500 ? (err as { statusCode: number }).statusCode : 500;
    // Never echo a parser or database message: it may quote input.
    return sendError(reply, new WebError(status, status < 500 ? 'BAD_REQUEST' : 'INTERNAL', status < 500 ? 'the request could not be read' : 'internal error: see the service log'));
  });
  serveAssets(app, ['console.js', 'common.js', 'style.css'], 'console.html');

  /** A session ends when the account it signed in with is replaced (`idsync console set-password`). */
  const sessionOf = (req: FastifyRequest): Session<{ name: string; accountChangedAt: string }> | undefined => {
    const s = sessions.get(readCookie(req, CONSOLE_COOKIE));
    if (!s) return undefined;
    const account = readConsoleAccount(ctx.loaded.dataDir);
    if (account?.username === s.user.name && account.changedAt === s.user.accountChangedAt) return s;
    sessions.delete(s.id);
    return undefined;
  };
  const refuse = (req: FastifyRequest, e: unknown): never => {
    if (e instanceof WebError && e.code.startsWith('CSRF')) events().emit(EVENTS.CONSOLE_REQUEST_REFUSED, { ip: req.ip, reason: e.code });
    throw e;
  };
  /** Every API route but sign-in: a session, and for POST the CSRF token and Origin. */
  const guard = async (req: FastifyRequest): Promise<void> => {
    const s = sessionOf(req);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      try {
        checkStateChange(req, opts.secure, s);
      } catch (e) {
        refuse(req, e);
      }
    }
    if (!s) throw new WebError(401, 'SIGNIN_REQUIRED', 'sign in to the console first');
  };
  const user = (req: FastifyRequest): string => sessionOf(req)!.user.name;

  app.post('/api/signin', async (req, reply) => {
    try {
      checkStateChange(req, opts.secure, undefined);
    } catch (e) {
      refuse(req, e);
    }
    const body = req.body as Partial<{ username: unknown; password: unknown }> | undefined;
    const username = typeof body?.username === 'string' ? body.username.slice(0, 64) : '';
    const password = typeof body?.password === 'string' ? body.password : '';
    const f = failures.get(req.ip);
    if (f && now() - f.since < SIGNIN_WINDOW_MS && f.n >= SIGNIN_FAILURE_LIMIT) {
      events().emit(EVENTS.CONSOLE_SIGNIN_FAILED, { user: username, ip: req.ip, reason: 'too many failures' });
      throw new WebError(429, 'SIGNIN_THROTTLED', 'too many failed sign-ins from this address: try again in 15 minutes');
    }
    const ok = username !== '' && password !== '' && (await checkConsolePassword(ctx.loaded.dataDir, username, password));
    if (!ok) {
      if (failures.size > 10_000) for (const [ip, x] of failures) if (now() - x.since >= SIGNIN_WINDOW_MS) failures.delete(ip);
      const cur = f && now() - f.since < SIGNIN_WINDOW_MS ? f : { n: 0, since: now() };
      failures.set(req.ip, { n: cur.n + 1, since: cur.since });
      events().emit(EVENTS.CONSOLE_SIGNIN_FAILED, { user: username, ip: req.ip });
      throw new WebError(401, 'SIGNIN_FAILED', 'the user name or password is incorrect (set it with `idsync console set-password`)');
    }
    failures.delete(req.ip);
    const s = sessions.create({ name: username, accountChangedAt: readConsoleAccount(ctx.loaded.dataDir)?.changedAt ?? '' });
    setSessionCookie(reply, cookie, s.id);
    events().emit(EVENTS.CONSOLE_SIGNED_IN, { user: username, ip: req.ip });
    const info: SessionInfo = { user: s.user.name, csrf: s.csrf };
    return info;
  });

  app.get('/api/session', async (req) => {
    const s = sessionOf(req);
    if (!s) throw new WebError(401, 'SIGNIN_REQUIRED', 'sign in to the console first');
    const info: SessionInfo = { user: s.user.name, csrf: s.csrf };
    return info;
  });

  app.post('/api/signout', { onRequest: guard }, async (req, reply: FastifyReply) => {
    const s = sessionOf(req)!;
    sessions.delete(s.id);
    clearSessionCookie(reply, cookie);
    events().emit(EVENTS.CONSOLE_SIGNED_OUT, { user: s.user.name });
    return { ok: true };
  });

  app.get('/api/overview', { onRequest: guard }, async () => {
    const health = opts.health();
    const degraded: DegradedWithFix[] = health.degraded.map((d) => ({ ...d, fix: FIXES[d.check] ?? 'Run `idsync doctor`.' }));
    const id = health.cycle.last?.id;
    const run = id !== undefined ? new RunLog(ctx.db).get(id, 0) : undefined;
    const out: Overview = {
      health,
      degraded,
      lastRun: run
        ? {
            id: run.id,
            status: run.status,
            startedAt: run.startedAt,
            endedAt: run.endedAt,
            steps: run.steps.map((s) => ({ connector: s.connector, step: s.step, status: s.status, adds: s.adds, updates: s.updates, deletes: s.deletes, unchanged: s.unchanged, errors: s.errors })),
          }
        : null,
    };
    return out;
  });

  app.get('/api/runs', { onRequest: guard }, async (req) => {
    const limit = Math.min(Math.max(Number((req.query as { limit?: string }).limit) || 50, 1), 500);
    const out: RunList = { runs: new RunLog(ctx.db).list(limit) };
    return out;
  });

  app.get('/api/runs/:id', { onRequest: guard }, async (req) => {
    const id = Number((req.params as { id: string }).id);
    const run = Number.isInteger(id) ? new RunLog(ctx.db).get(id, 1000) : undefined;
    if (!run) throw new WebError(404, 'NOT_FOUND', `no run with id ${String((req.params as { id: string }).id).slice(0, 20)}`);
    // Errors name their object by source DN (or "metaverse object N"): link each to its object page.
    const byDn = ctx.db.prepare<[string], { mv_id: number | null }>('SELECT mv_id FROM cs_objects WHERE dn_norm = ? AND mv_id IS NOT NULL LIMIT 1');
    const out: RunDetail = {
      ...run,
      errors: run.errors.map((e) => {
        const mvRef = /^metaverse object (\d+)$/.exec(e.object ?? '');
        const dn = !mvRef && e.object ? tryNormalizeDn(e.object) : undefined;
        return { ...e, mvId: mvRef ? Number(mvRef[1]) : dn ? (byDn.get(dn)?.mv_id ?? null) : null };
      }),
    };
    return out;
  });

  app.get('/api/search', { onRequest: guard }, async (req) => {
    const q = req.query as Partial<Record<'attr' | 'op' | 'value' | 'after' | 'limit', string>>;
    const attr = q.attr ?? '';
    if (!/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(attr)) throw new WebError(400, 'BAD_ATTRIBUTE', 'attr must be an attribute name (letters, digits, "-" or "_")');
    if (SECRET_ATTR.test(attr)) throw new WebError(400, 'BAD_ATTRIBUTE', `searching by ${attr} is not allowed: it may hold a secret`);
    const op = q.op === 'sw' ? 'sw' : q.op === 'eq' || q.op === undefined ? 'eq' : undefined;
    if (!op) throw new WebError(400, 'BAD_OPERATOR', 'op must be eq (equals) or sw (starts with)');
    const value = (q.value ?? '').toLowerCase();
    if (value === '') throw new WebError(400, 'BAD_VALUE', 'value must not be empty');
    const after = Math.max(Number(q.after) || 0, 0);
    const limit = Math.min(Math.max(Number(q.limit) || PAGE_SIZE, 1), 500);
    // json_each walks both single values and multi-valued arrays. Case-insensitive like the directories.
    const match = op === 'eq' ? 'lower(j.value) = ?' : 'substr(lower(j.value), 1, length(?)) = ?';
    const args = op === 'eq' ? [value] : [value, value];
    const rows = ctx.db
      .prepare<unknown[], { id: number; object_type: string; source_anchor: string; attrs: string; deleted: number }>(
        `SELECT id, object_type, source_anchor, attrs, deleted FROM mv_objects
          WHERE id > ? AND EXISTS (SELECT 1 FROM json_each(attrs, '$."' || ? || '"') AS j WHERE ${match})
          ORDER BY id LIMIT ?`,
      )
      .all(after, attr, ...args, limit + 1);
    const page = rows.slice(0, limit);
    const out: SearchResult = {
      objects: page.map((r) => ({ id: r.id, objectType: r.object_type, sourceAnchor: r.source_anchor, display: display(parseJsonAttrs(r.attrs)), deleted: r.deleted === 1 })),
      next: rows.length > limit ? page[page.length - 1]!.id : null,
    };
    return out;
  });

  app.get('/api/objects/:id', { onRequest: guard }, async (req) => {
    const id = Number((req.params as { id: string }).id);
    const mv = Number.isInteger(id)
      ? ctx.db
          .prepare<[number], { id: number; object_type: string; source_anchor: string; attrs: string; deleted: number; pending_export: number; updated_at: string }>(
            'SELECT id, object_type, source_anchor, attrs, deleted, pending_export, updated_at FROM mv_objects WHERE id = ?',
          )
          .get(id)
      : undefined;
    if (!mv) throw new WebError(404, 'NOT_FOUND', 'no metaverse object with this id');
    const cs = ctx.db
      .prepare<[number], { connector: string; anchor: string; dn: string; object_type: string; pending: string | null; attrs: string }>(
        'SELECT connector, anchor, dn, object_type, pending, attrs FROM cs_objects WHERE mv_id = ? ORDER BY connector',
      )
      .all(id);
    const exp = ctx.db
      .prepare<[number], { cloud_id: string | null; object_type: string; last_error: string | null; updated_at: string }>('SELECT cloud_id, object_type, last_error, updated_at FROM export_objects WHERE mv_id = ?')
      .get(id);
    const out: Lineage = {
      metaverse: { id: mv.id, objectType: mv.object_type, sourceAnchor: mv.source_anchor, attrs: withoutSecrets(parseJsonAttrs(mv.attrs)), deleted: mv.deleted === 1, pendingExport: mv.pending_export === 1, updatedAt: mv.updated_at },
      connectorSpace: cs.map((c) => ({ connector: c.connector, anchor: c.anchor, dn: c.dn, objectType: c.object_type, pending: c.pending, attrs: withoutSecrets(parseJsonAttrs(c.attrs)) })),
      cloud: exp ? { resourceId: exp.cloud_id, objectType: exp.object_type, lastError: exp.last_error, updatedAt: exp.updated_at } : null,
    };
    return out;
  });

  app.get('/api/events', { onRequest: guard }, async (req) => {
    const q = req.query as Partial<Record<'level' | 'id' | 'limit', string>>;
    const level = EVENT_LEVELS.find((l) => l === q.level) as EventLevel | undefined;
    const ids = q.id ? q.id.split(',').map(Number).filter((n) => Number.isInteger(n) && n >= 0) : undefined;
    const limit = Math.min(Math.max(Number(q.limit) || 200, 1), 1000);
    const out: EventList = { events: ctx.events.query({ ...(level ? { level } : {}), ...(ids?.length ? { ids } : {}), limit }).reverse() };
    return out;
  });

  app.post('/api/cycle', { onRequest: guard }, async (req, reply) => {
    events().emit(EVENTS.CONSOLE_CYCLE_REQUESTED, { user: user(req) });
    void opts.runNow().catch(() => undefined); // its outcome is in the run history and events
    return reply.code(202).send({ accepted: true });
  });
}
