/**
 * The sync console: pages and a JSON API under /console on `idsync serve`'s own port.
 *
 *   GET  /console/                 the page (webui/console.html; the front end routes on the hash)
 *   GET  /console/api/session      who is signed in, and the CSRF token (401 when nobody)
 *   POST /console/api/signin       {username, password}: the account of `idsync console set-password`
 *   POST /console/api/signout
 *   GET  /console/api/overview     health with a fix per degraded reason, the last cycle's counts
 *   GET  /console/api/charts       the overview's charts over 7 days
 *   GET  /console/api/runs[/:id]   run history; one run with its errors
 *   GET  /console/api/search       metaverse or connector-space search by attribute, paged, each page bounded
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
import { metaverseIdAtDn } from '../engine/connector-space-users.js';
import { RunLog } from '../engine/runs.js';
import type { CycleResult } from '../engine/cycle.js';
import { syncOneObject } from '../engine/single-object.js';
import { CLOUD_CONNECTOR, testConnectorSecret } from '../connectors/registry.js';
import { toIdsyncError } from '../core/errors.js';
import { updateCredential } from '../credentials/update.js';
import type { PasswordPipeline } from '../passwords/pipeline.js';
import { DrsStateStore } from '../passwords/sources/drs.js';
import { buildCharts } from './charts.js';
import { buildLineage } from './lineage.js';
import { parseSearchQuery, search, SpaceTotals, type SearchBudget } from './search.js';
import { AttrIndex } from './attr-index.js';
import { EngineQueries } from '../engine/queries.js';
import { EVENTS, EVENT_LEVELS, EVENT_SOURCES, type EventLevel, type EventSource } from '../events/catalog.js';
import type { EventQuery } from '../events/log.js';
import type { HealthReport } from '../service/health.js';
import {
  addSecurityHeaders,
  checkStateChange,
  clearSessionCookie,
  readCookie,
  securityHeaders,
  sendError,
  serveAssets,
  SessionStore,
  setSessionCookie,
  WebError,
  type CookieOptions,
  type Session,
} from '../web/security.js';
import { checkConsolePassword, readConsoleAccount } from './account.js';
import { tryNormalizeDn } from '../ldap/dn.js';
import type { CredentialSaved, DegradedWithFix, DeletionsApproved, EventList, ObjectTraceResult, Overview, PasswordsResynced, PreviewResult, RunDetail, RunList, SessionInfo } from './api-types.js';

export const CONSOLE_PREFIX = '/console';
export const CONSOLE_COOKIE = 'idsync_console';
const SIGNIN_FAILURE_LIMIT = 5;
const SIGNIN_WINDOW_MS = 15 * 60 * 1000;
const PAGE_SIZE = 50;

export interface ConsoleOptions {
  ctx: EngineContext;
  health(): HealthReport;
  /** Runs a cycle (with options: waits for the one in flight first). */
  runNow(options?: { full?: boolean; allowDeletes?: boolean; preview?: boolean }): Promise<CycleResult | undefined>;
  /** The service's password pipeline (resync for one user or all). */
  pipeline?: PasswordPipeline;
  /** Resolves when no cycle is in flight. */
  idle?: () => Promise<void>;
  /** The service listens with TLS: cookies get `Secure`, the Origin must be https. */
  secure: boolean;
  now?: () => number;
  /** The attribute index the service keeps up to date; without it the plugin opens its own (tests, bench). */
  attrIndex?: AttrIndex;
  /** A search page's budget (tests). */
  searchBudget?: SearchBudget;
}


const FIXES: Record<string, string> = {
  'sync-cycle': 'Open Operations to read the failed run\'s errors; `idsync doctor` names the failing check and the command that fixes it.',
  'cloud-credential': 'Update the cloud credential with `idsync credentials set cloud` (it is tested before it is saved); health recovers at the next cycle.',
  'password-heartbeat': 'Check that the DC agent or the password source runs (`idsync agent status`) and reaches this service.',
  'password-outbox': 'Changes are kept and delivered in order once the cloud accepts them: fix the cause named by events 115, 0, 652 or 655 (usually `idsync credentials set cloud`).',
  store: 'Bring the database back (PostgreSQL running and accepting connections, or the data directory\'s disk writable): the service reconnects by itself and goes on where it stopped.',
};

const str = (v: unknown, max = 1024): string => (typeof v === 'string' ? v.slice(0, max) : '');

/** An engine error as an answer: its code and words (they never hold a secret), 409 for a busy engine. */
function asWebError(err: unknown): WebError {
  const e = toIdsyncError(err);
  const status = e.code === 'RUN_IN_PROGRESS' ? 409 : e.code.startsWith('PASSWORD_USER') || e.code === 'LDAP_INVALID_DN' ? 400 : 502;
  return new WebError(status, e.code, e.hint ? `${e.message} — ${e.hint}` : e.message);
}

export async function consolePlugin(app: FastifyInstance, opts: ConsoleOptions): Promise<void> {
  /** Connectors that authenticate with a secret (as `idsync credentials set` accepts): sources but LDIF, and the cloud. */
  const credentialNames = (): string[] => [...opts.ctx.loaded.config.connectors.filter((c) => c.type !== 'ldif').map((c) => c.name), CLOUD_CONNECTOR];
  const now = opts.now ?? Date.now;
  const sessions = new SessionStore<{ name: string; accountChangedAt: string }>(now);
  const cookie: CookieOptions = { name: CONSOLE_COOKIE, path: CONSOLE_PREFIX, secure: opts.secure };
  const failures = new Map<string, { n: number; since: number }>();
  const { ctx } = opts;
  const events = () => ctx.events;
  const engine = new EngineQueries(ctx.db);
  const totals = new SpaceTotals(engine);
  // Count both spaces once at start, after the answers in flight, so no search page pays for it.
  app.addHook('onReady', async () => {
    setImmediate(() => {
      try {
        totals.get('mv');
        totals.get('cs');
      } catch {
        /* the store is closing: the first search counts */
      }
    });
  });
  const attrIndex = opts.attrIndex ?? new AttrIndex(ctx.db, ctx.loaded.config.console.indexedAttributes);
  if (!opts.attrIndex) {
    // An index of its own (no service keeps it): catch it up at start and now and then.
    const catchUp = () => void attrIndex.catchUp().catch(() => undefined);
    const timer = setInterval(catchUp, 10_000).unref();
    app.addHook('onReady', async () => catchUp());
    app.addHook('onClose', async () => {
      clearInterval(timer);
      attrIndex.close();
    });
  }

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
    // While the store cannot be read, the overview is the health report alone (it says why).
    const storeDown = health.degraded.some((d) => d.check === 'store');
    const id = storeDown ? undefined : health.cycle.last?.id;
    const run = id !== undefined ? new RunLog(ctx.db).get(id, 0) : undefined;
    const held = run?.status === 'failed' && run.error?.code === 'DELETION_THRESHOLD_EXCEEDED' ? ctx.events.latest(EVENTS.DELETION_THRESHOLD_EXCEEDED) : undefined;
    const out: Overview = {
      health,
      degraded,
      heldDeletions: held && run ? { runId: run.id, deletes: Number(held.details.deletes), threshold: Number(held.details.threshold) } : null,
      credentialNames: credentialNames(),
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

  app.get('/api/charts', { onRequest: guard }, async () => buildCharts(ctx, now()));

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
    const mvIdAt = metaverseIdAtDn(ctx.db);
    const out: RunDetail = {
      ...run,
      errors: run.errors.map((e) => {
        const mvRef = /^metaverse object (\d+)$/.exec(e.object ?? '');
        const dn = !mvRef && e.object ? tryNormalizeDn(e.object) : undefined;
        return { ...e, mvId: mvRef ? Number(mvRef[1]) : dn ? mvIdAt(dn) : null };
      }),
    };
    return out;
  });

  app.get('/api/search', { onRequest: guard }, async (req) =>
    search(engine, attrIndex, parseSearchQuery(req.query as Record<string, string>, PAGE_SIZE), { totals, ...(opts.searchBudget ? { budget: opts.searchBudget } : {}) }),
  );

  app.get('/api/objects/:id', { onRequest: guard }, async (req) => {
    const id = Number((req.params as { id: string }).id);
    const out = Number.isInteger(id) ? buildLineage(ctx, id) : undefined;
    if (!out) throw new WebError(404, 'NOT_FOUND', 'no metaverse object with this id');
    return out;
  });

  // "Trace this object": what `idsync sync --object DN` does and shows, for the object's source entry.
  app.post('/api/objects/:id/trace', { onRequest: guard }, async (req) => {
    const id = Number((req.params as { id: string }).id);
    const lineage = Number.isInteger(id) ? buildLineage(ctx, id) : undefined;
    if (!lineage) throw new WebError(404, 'NOT_FOUND', 'no metaverse object with this id');
    const wanted = str((req.body as { dn?: unknown } | undefined)?.dn);
    const dn = wanted ? lineage.connectorSpace.find((c) => c.dn === wanted)?.dn : lineage.connectorSpace[0]?.dn;
    if (!dn) throw new WebError(400, 'NO_SOURCE_OBJECT', 'this object has no source entry to trace');
    await opts.idle?.();
    let out: ObjectTraceResult;
    try {
      out = await syncOneObject(ctx, dn);
    } catch (err) {
      throw asWebError(err);
    }
    events().emit(EVENTS.CONSOLE_OBJECT_TRACED, { user: user(req), dn, runId: out.runId });
    return out;
  });

  // The "update credentials" form: tested against its directory before it is saved, exactly as
  // `idsync credentials set` (the same function); the secret is never sent back or logged.
  app.post('/api/credentials/:name', { onRequest: guard }, async (req) => {
    const name = str((req.params as { name: string }).name, 64);
    if (!credentialNames().includes(name)) throw new WebError(404, 'NOT_FOUND', `no connector with a credential is named "${name}"; known: ${credentialNames().join(', ')}`);
    const secret = (req.body as { secret?: unknown } | undefined)?.secret;
    if (typeof secret !== 'string' || secret === '') throw new WebError(400, 'BAD_REQUEST', 'send {"secret": "<the new secret>"}');
    try {
      const r = await updateCredential(ctx.credentials, ctx.events, name, secret, { test: (s) => testConnectorSecret(ctx.loaded, name, s, ctx.credentials) });
      events().emit(EVENTS.CONSOLE_CREDENTIAL_SUBMITTED, { user: user(req), connector: name, result: 'tested and saved' });
      // After a failed cycle, run one now with the new secret: health follows its outcome at once.
      const cycleStarted = opts.health().cycle.last?.status === 'failed';
      if (cycleStarted) void opts.runNow().catch(() => undefined);
      const out: CredentialSaved = { connector: name, saved: true, changedAt: r.changedAt, cycleStarted };
      return out;
    } catch (err) {
      const e = toIdsyncError(err);
      events().emit(EVENTS.CONSOLE_CREDENTIAL_SUBMITTED, { user: user(req), connector: name, result: `refused (${e.code}); the working credential was kept` });
      throw new WebError(e.code === 'CREDENTIAL_INVALID' ? 422 : 400, e.code, e.hint ? `${e.message} — ${e.hint}` : e.message);
    }
  });

  // The `--allow-deletes` decision for the deletions the threshold held in the last run.
  app.post('/api/approve-deletions', { onRequest: guard }, async (req, reply) => {
    const runId = Number((req.body as { runId?: unknown } | undefined)?.runId);
    const last = opts.health().cycle.last;
    const held = ctx.events.latest(EVENTS.DELETION_THRESHOLD_EXCEEDED);
    if (!last || last.id !== runId || last.error?.code !== 'DELETION_THRESHOLD_EXCEEDED' || !held) {
      throw new WebError(409, 'NOTHING_HELD', 'the last run held no deletions (or a newer run exists): reload the overview');
    }
    const deletes = Number(held.details.deletes);
    events().emit(EVENTS.CONSOLE_DELETIONS_APPROVED, { user: user(req), deletes, threshold: Number(held.details.threshold), runId, at: new Date(now()).toISOString() });
    void opts.runNow({ allowDeletes: true }).catch(() => undefined);
    const out: DeletionsApproved = { accepted: true, runId, deletes };
    return reply.code(202).send(out);
  });

  app.post('/api/runs', { onRequest: guard }, async (req, reply) => {
    const profile = (req.body as { profile?: unknown } | undefined)?.profile;
    if (profile !== 'cycle' && profile !== 'full') throw new WebError(400, 'BAD_REQUEST', 'send {"profile": "cycle" | "full"}');
    events().emit(EVENTS.CONSOLE_RUN_REQUESTED, { user: user(req), profile: profile === 'full' ? 'full sync' : 'delta sync' });
    void opts.runNow(profile === 'full' ? { full: true } : undefined).catch(() => undefined);
    return reply.code(202).send({ accepted: true });
  });

  // The attribute-level preview of the next cycle: import and sync, the export planned, nothing written.
  app.post('/api/preview', { onRequest: guard }, async (req) => {
    events().emit(EVENTS.CONSOLE_RUN_REQUESTED, { user: user(req), profile: 'preview' });
    const run = await opts.runNow({ preview: true });
    if (!run) throw new WebError(409, 'RUN_IN_PROGRESS', 'another run holds the engine: try again when it ends');
    const out: PreviewResult = { runId: run.id, status: run.status, plan: run.plan ?? [] };
    return out;
  });

  app.post('/api/passwords/resync', { onRequest: guard }, async (req) => {
    const body = req.body as { user?: unknown; all?: unknown } | undefined;
    const who = str(body?.user, 512);
    if (!opts.pipeline) throw new WebError(503, 'PASSWORD_HASH_SYNC_OFF', 'password hash synchronization is not running in this service');
    if ((body?.all === true) === (who !== '')) throw new WebError(400, 'BAD_REQUEST', 'send {"user": "<name>"} or {"all": true}');
    let queued: number;
    try {
      queued = await opts.pipeline.resync(body?.all === true ? { all: true } : { user: who });
    } catch (err) {
      throw asWebError(err);
    }
    if (body?.all === true) new DrsStateStore(ctx.db).forget();
    events().emit(EVENTS.CONSOLE_PASSWORDS_RESYNC, { user: user(req), target: body?.all === true ? 'every user' : who, queued });
    const out: PasswordsResynced = { queued };
    return out;
  });

  /** The events filter of the query string: level, ids ("115,655"), source, since (ISO time). */
  const eventFilter = (q: Partial<Record<'level' | 'id' | 'source' | 'since', string>>): EventQuery => {
    const level = EVENT_LEVELS.find((l) => l === q.level) as EventLevel | undefined;
    const ids = q.id ? q.id.split(',').map(Number).filter((n) => Number.isInteger(n) && n >= 0) : undefined;
    const source = EVENT_SOURCES.find((x) => x === q.source) as EventSource | undefined;
    const since = q.since ? new Date(q.since) : undefined;
    if (since && Number.isNaN(since.getTime())) throw new WebError(400, 'BAD_REQUEST', 'since must be an ISO date-time, e.g. 2026-12-06T08:00:00Z');
    return { ...(level ? { level } : {}), ...(ids?.length ? { ids } : {}), ...(source ? { source } : {}), ...(since ? { since } : {}) };
  };

  app.get('/api/events', { onRequest: guard }, async (req) => {
    const q = req.query as Partial<Record<'level' | 'id' | 'source' | 'since' | 'limit', string>>;
    const limit = Math.min(Math.max(Number(q.limit) || 200, 1), 1000);
    const out: EventList = { events: ctx.events.query({ ...eventFilter(q), limit }).reverse(), lastSeq: ctx.events.lastSeq() };
    return out;
  });

  // Live updates: Server-Sent Events with the same filters, from `after` (or Last-Event-ID) on.
  // The log is polled once a second; the stream ends with the session.
  app.get('/api/events/stream', { onRequest: guard }, (req, reply) => {
    const q = req.query as Partial<Record<'level' | 'id' | 'source' | 'since' | 'after', string>>;
    const filter = eventFilter(q);
    let seq = Number(req.headers['last-event-id'] ?? q.after);
    if (!Number.isInteger(seq) || seq < 0) seq = ctx.events.lastSeq();
    reply.hijack();
    reply.raw.writeHead(200, { ...securityHeaders(), 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
    reply.raw.write(': idsync events\n\n');
    let quiet = 0;
    const timer = setInterval(() => {
      if (!sessionOf(req)) {
        clearInterval(timer);
        reply.raw.end();
        return;
      }
      const rows = ctx.events.query({ ...filter, afterSeq: seq, limit: 200 });
      for (const r of rows) reply.raw.write(`id: ${r.seq}\ndata: ${JSON.stringify(r)}\n\n`);
      if (rows.length) seq = rows[rows.length - 1]!.seq;
      // A comment now and then keeps proxies from closing an idle stream.
      else if (++quiet % 15 === 0) reply.raw.write(': keep-alive\n\n');
    }, 1000);
    req.raw.on('close', () => clearInterval(timer));
  });

  app.post('/api/cycle', { onRequest: guard }, async (req, reply) => {
    events().emit(EVENTS.CONSOLE_CYCLE_REQUESTED, { user: user(req) });
    void opts.runNow().catch(() => undefined); // its outcome is in the run history and events
    return reply.code(202).send({ accepted: true });
  });
}
