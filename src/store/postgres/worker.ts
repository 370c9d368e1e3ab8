/**
 * The worker thread of the synchronous PostgreSQL bridge: it owns one node-postgres client (one
 * session, so BEGIN … COMMIT and temp tables mean what they mean), runs each request the main thread
 * sends, posts the answer and wakes the main thread through the shared flag (bridge.ts says why).
 */
import type { MessagePort } from 'node:worker_threads';
import { workerData } from 'node:worker_threads';
import pg from 'pg';
import type { PgBatch, PgFailure, PgQuery, PgRequest, PgResponse, PgWorkerData } from './protocol.js';

const INT8_OID = 20;
const NUMERIC_OID = 1700;
const BOOL_OID = 16;

/** Values as SQLite gives them: 64-bit integers and numerics as numbers, booleans as 1/0. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID || oid === NUMERIC_OID) return (v: string) => Number(v);
    if (oid === BOOL_OID) return (v: string) => (v === 't' ? 1 : 0);
    return pg.types.getTypeParser(oid, format);
  }) as typeof pg.types.getTypeParser,
};

const data = workerData as PgWorkerData;
const flag = new Int32Array(data.flag);
const port: MessagePort = data.port;

let client: pg.Client | undefined;
let broken = false;
/** Statement text → the name it is prepared under on this session (parsed and planned once). */
const prepared = new Map<string, string>();
/** Whether the session is inside a transaction, as the scripts run on it left it (BEGIN … COMMIT/ROLLBACK). */
let inTransaction = false;
/**
 * The session was lost inside a transaction, which the server rolled back: every request until the
 * bridge's ROLLBACK fails. Reconnecting in between would run the rest of the transaction's writes
 * one by one on a new session, outside the transaction and its fence check.
 */
let lostTransaction = false;
/**
 * `SET name …` run outside a transaction, by name: made again on each new session, so that the
 * bridge keeps meaning one session across reconnections (e.g. the HA leader's
 * idle_in_transaction_session_timeout).
 */
const sessionSettings = new Map<string, string>();
/** After a failed connection attempt, requests fail at once with its error until retryAt. */
let retryAt = 0;
let connectFailure: PgFailure | undefined;
/** How long a connection attempt may take: a host that does not answer blocks the main thread this long at most. */
const CONNECT_TIMEOUT_MS = 5000;
const MAX_RETRY_WAIT_MS = 30_000;

async function connected(): Promise<pg.Client> {
  if (client && !broken) return client;
  // Forgotten before the new connection is tried: if that fails too, the next request tries
  // again rather than meeting the dead session ("not queryable") for ever.
  const old = client;
  client = undefined;
  if (old) await old.end().catch(() => undefined);
  prepared.clear();
  broken = false;
  inTransaction = false; // a new session is in none
  const c = new pg.Client({ ...data.connect, application_name: data.connect.applicationName, types, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  // A lost connection surfaces on the next query; the one after reconnects (outside a transaction).
  // Only the session in use: a client given up before must not mark its successor broken.
  c.on('error', () => {
    if (client === c) broken = true;
  });
  try {
    await c.connect();
    for (const sql of sessionSettings.values()) await c.query(sql);
  } catch (err) {
    await c.end().catch(() => undefined);
    throw err;
  }
  client = c;
  return c;
}

/**
 * SQLSTATEs that say the session, not the statement, failed: class 08 (connection exception; not
 * 08P01, which a healthy session answers to a malformed message),
 * 57P01–57P05 (the server shut down, cannot take connections now, or ended an idle session),
 * 25P03/25P04 (the server ended an idle or too long transaction, and with it the session), 53300
 * (too many connections).
 */
const LOST_SESSION = /^(08(?!P01)|57P0[1-5]$|25P0[34]$|53300$)/;

function failure(err: unknown, connecting = false): PgFailure {
  const e = err as { message?: string; code?: string; table?: string; constraint?: string };
  const lost = connecting || broken || (e.code !== undefined && LOST_SESSION.test(e.code));
  // Known lost before the client says so: the next request must not use the session.
  if (lost && !connecting) broken = true;
  // The message only: PostgreSQL's `detail` may quote row values (personal data, hashes).
  return {
    message: e.message ?? String(err),
    ...(e.code !== undefined ? { code: e.code } : {}),
    ...(e.table !== undefined ? { table: e.table } : {}),
    ...(e.constraint !== undefined ? { constraint: e.constraint } : {}),
    ...(lost ? { lost } : {}),
  };
}

/** Parameters as node-postgres binds them (typed arrays crossed the thread boundary as Uint8Array). */
function param(v: unknown): unknown {
  if (v instanceof Uint8Array && !Buffer.isBuffer(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(param);
  return v;
}

type Answer = Extract<PgResponse, { ok: true }>;

async function handle(req: PgRequest): Promise<PgResponse> {
  if (req.op === 'close') {
    await client?.end().catch(() => undefined);
    client = undefined;
    return { ok: true, rows: [], rowCount: 0, fields: [] };
  }
  if (broken && inTransaction) {
    lostTransaction = true;
    inTransaction = false;
  }
  if (lostTransaction) {
    if (req.op === 'script' && /^\s*ROLLBACK\s*$/i.test(req.sql)) {
      lostTransaction = false; // nothing left to roll back: the server did it when the session ended
      return { ok: true, rows: [], rowCount: 0, fields: [] };
    }
    return { ok: false, error: { message: 'the connection to PostgreSQL was lost inside a transaction, which the server rolled back', lost: true } };
  }
  if ((!client || broken) && Date.now() < retryAt && connectFailure) return { ok: false, error: connectFailure };
  let c: pg.Client;
  const started = Date.now();
  try {
    c = await connected();
  } catch (err) {
    // Tried again after as long as this attempt took: a refused connection at once, a host that
    // does not answer (CONNECT_TIMEOUT_MS each) with the main thread free at least half the time.
    connectFailure = failure(err, true);
    retryAt = Date.now() + Math.min(MAX_RETRY_WAIT_MS, Date.now() - started);
    return { ok: false, error: connectFailure };
  }
  if (req.op === 'batch') return batch(c, req.items);
  if (req.op === 'script') return script(c, req.sql);
  return query(c, req);
}

async function script(c: pg.Client, sql: string): Promise<Answer> {
  const ends = /^\s*(COMMIT|ROLLBACK)\s*$/i.test(sql);
  try {
    await c.query(sql);
  } finally {
    // Over whether it succeeded or not: a failed COMMIT or ROLLBACK leaves no transaction open.
    if (ends) inTransaction = false;
  }
  if (/^\s*BEGIN\b/i.test(sql)) inTransaction = true;
  else if (!ends && !inTransaction) {
    const set = /^\s*SET\s+(?!LOCAL\b)(?:SESSION\s+)?([\w.]+)\s*(?:=|\bTO\b)[^;]*;?\s*$/i.exec(sql);
    if (set) sessionSettings.set(set[1]!.toLowerCase(), sql);
  }
  return { ok: true, rows: [], rowCount: 0, fields: [] };
}

/**
 * A batch (bridge.ts, deferred writes): its statements run one after another, and the first that
 * fails ends it (the transaction is aborted; what follows would fail too). The batch saves the
 * main thread's round trips (two thread wake-ups each, the cost on a loaded machine), not the
 * server's: node-postgres 8.23's pipeline mode sent them all at once, but lost track of the
 * answers after a failed statement in a long batch and waited for ever (seen here at 1,000
 * statements), so it is not used.
 */
async function batch(c: pg.Client, items: PgBatch['items']): Promise<PgResponse> {
  const rowCounts: number[] = [];
  let last: Answer = { ok: true, rows: [], rowCount: 0, fields: [] };
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    try {
      last = it.op === 'script' ? await script(c, it.sql) : await query(c, it);
    } catch (err) {
      return { ok: false, error: failure(err), index: i, rowCounts };
    }
    rowCounts.push(last.rowCount);
  }
  return { ...last, rowCounts };
}

async function query(c: pg.Client, req: PgQuery): Promise<Answer> {
  const config: pg.QueryConfig & { rowMode?: 'array' } = { text: req.text, values: req.values.map(param) };
  if (req.rowMode === 'array') config.rowMode = 'array';
  if (req.name !== undefined) {
    let name = prepared.get(req.text);
    if (!name) prepared.set(req.text, (name = `idsync_${prepared.size + 1}`));
    config.name = name;
  }
  const run = async (): Promise<Answer> => {
    const r = await c.query(config);
    return { ok: true, rows: r.rows as unknown[], rowCount: r.rowCount ?? 0, fields: r.fields.map((f) => f.name) };
  };
  if (!req.ignoreConflicts) return run();
  // UPDATE OR IGNORE: inside a savepoint (PostgreSQL aborts a transaction on any error); on a unique
  // violation the rows are updated one by one and the conflicting ones skipped, as SQLite does.
  await savepoint(c, req.inTransaction, 'SAVEPOINT idsync_or_ignore');
  try {
    const out = await run();
    await savepoint(c, req.inTransaction, 'RELEASE SAVEPOINT idsync_or_ignore');
    return out;
  } catch (err) {
    await savepoint(c, req.inTransaction, 'ROLLBACK TO SAVEPOINT idsync_or_ignore; RELEASE SAVEPOINT idsync_or_ignore');
    if ((err as { code?: string }).code !== '23505') throw err;
    return { ok: true, rows: [], rowCount: await updateRowByRow(c, req.text, config.values as unknown[], req.inTransaction), fields: [] };
  }
}

async function savepoint(c: pg.Client, inTransaction: boolean, sql: string): Promise<void> {
  if (inTransaction) await c.query(sql);
}

/** `UPDATE t SET … WHERE …` applied to each matching row alone; rows that would break a unique key are left. */
async function updateRowByRow(c: pg.Client, text: string, values: unknown[], inTransaction: boolean): Promise<number> {
  const m = /^\s*UPDATE\s+([\w."]+)\s+SET\s+([\s\S]+?)\s+WHERE\s+([\s\S]+)$/i.exec(text);
  if (!m) return 0;
  const [, table, set, where] = m as unknown as [string, string, string, string];
  // The WHERE alone, its parameters renumbered (a parameter PostgreSQL cannot type is an error).
  const used: unknown[] = [];
  const renumbered = new Map<number, number>();
  const select = where.replace(/\$(\d+)/g, (_, d: string) => {
    const n = Number(d);
    if (!renumbered.has(n)) {
      used.push(values[n - 1]);
      renumbered.set(n, used.length);
    }
    return `$${renumbered.get(n)}`;
  });
  const rows = (await c.query<{ t: string }>({ text: `SELECT ctid::text AS t FROM ${table} WHERE ${select}`, values: used })).rows;
  let changed = 0;
  for (const r of rows) {
    await savepoint(c, inTransaction, 'SAVEPOINT idsync_or_ignore_row');
    try {
      changed += (await c.query({ text: `UPDATE ${table} SET ${set} WHERE ctid = $${values.length + 1}::tid AND (${where})`, values: [...values, r.t] })).rowCount ?? 0;
      await savepoint(c, inTransaction, 'RELEASE SAVEPOINT idsync_or_ignore_row');
    } catch (err) {
      await savepoint(c, inTransaction, 'ROLLBACK TO SAVEPOINT idsync_or_ignore_row; RELEASE SAVEPOINT idsync_or_ignore_row');
      if ((err as { code?: string }).code !== '23505') throw err;
    }
  }
  return changed;
}

function reply(res: PgResponse): void {
  port.postMessage(res);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}

port.on('message', (req: PgRequest) => {
  handle(req).then(reply, (err: unknown) => reply({ ok: false, error: failure(err) }));
});

// Whatever goes wrong in this thread, the main thread, blocked on the flag, must wake up.
process.on('uncaughtException', (err) => reply({ ok: false, error: failure(err) }));
