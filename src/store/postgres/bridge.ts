/**
 * PostgreSQL behind the synchronous store API the sync service's modules are written against
 * (better-sqlite3's: prepare/run/get/all/iterate/pluck/raw, transaction(fn), exec).
 *
 * Why synchronous: the engine's transactions are synchronous on purpose — a page is staged and its
 * watermark written in one transaction, and crash safety rests on nothing else running in between.
 * Rewriting every module to async would put an `await` (and so other work of the event loop) inside
 * each of those transactions. Instead a worker thread owns the node-postgres client, and the main
 * thread posts a request and blocks on a SharedArrayBuffer with Atomics.wait until the worker has
 * posted the answer and notified; the answer is then taken off the port with receiveMessageOnPort,
 * without the event loop. The cost is one thread hop per statement on top of the PostgreSQL round
 * trip (bench/sync.ts --store postgres measures it), and the event loop does not run while a
 * statement is in flight — as with SQLite, whose statements block it too.
 */
import { MessageChannel, receiveMessageOnPort, type MessagePort, type Worker } from 'node:worker_threads';
import { moduleWorker } from '../../core/module-worker.js';
import type BetterSqlite3 from 'better-sqlite3';
import { IdsyncError } from '../../core/errors.js';
import { currentFence, type WriteFence } from '../fence.js';
import { bindParams, translateDdl, translateStatement, type TranslatedStatement } from './dialect.js';
import type { PgConnectOptions, PgFailure, PgQuery, PgRequest, PgResponse, PgScript, PgWorkerData } from './protocol.js';

type Db = BetterSqlite3.Database;
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- better-sqlite3's own constraint
type Stmt<P extends unknown[] | {}, R> = BetterSqlite3.Statement<P, R>;
type TxFn = Parameters<Db['transaction']>[0];

/** A statement that fails on the server: its SQLSTATE as `code` (23505: unique violation). */
export class PgStatementError extends Error {
  readonly code: string | undefined;
  /** @internal in a batch: the index of the statement that failed. */
  readonly index: number | undefined;
  constructor(f: PgFailure, index?: number) {
    super(f.message);
    this.name = 'PgStatementError';
    this.code = f.code;
    this.index = index;
  }
}

/**
 * The error a failure becomes: the statement's own (PgStatementError, with its SQLSTATE), or, when
 * the session could not be made or was lost, STORE_FAILED: what callers and the admin can act on.
 */
function failureError(f: PgFailure, index?: number): Error {
  const statement = new PgStatementError(f, index);
  if (!f.lost) return statement;
  // 28xxx: the server answered and refused this role (a changed password, a pg_hba.conf rule).
  if (f.code?.startsWith('28')) {
    return new IdsyncError('STORE_FAILED', `PostgreSQL refused the store's connection: ${f.message}`, {
      hint: 'Check the store password ($IDSYNC_STORE_PASSWORD or store.passwordFile) and pg_hba.conf; idsync connects again at its next statement.',
      cause: statement,
    });
  }
  return new IdsyncError('STORE_FAILED', `the PostgreSQL store cannot be reached: ${f.message}`, {
    hint: 'Check that PostgreSQL runs and accepts connections (store.url); idsync connects again at its next statement.',
    cause: statement,
  });
}

/** A queued write's outcome, filled in when its batch is answered (PgDatabase.defer). */
interface DeferredResult {
  done: boolean;
  rowCount: number;
  error: Error | undefined;
}

interface Pending {
  item: PgQuery | PgScript;
  result?: DeferredResult;
  /** The transaction level (1 outer, 2 its first savepoint, …) the write was queued in. */
  level?: number;
}

/**
 * At most this many statements wait in the queue, so a batch stays a bounded message (a page of
 * the engine's writes is a few thousand statements).
 */
const MAX_DEFERRED = 1000;

const EMPTY_ANSWER: Extract<PgResponse, { ok: true }> = { ok: true, rows: [], rowCount: 0, fields: [] };
const LASTVAL = translateStatement('SELECT lastval() AS id');

/** How long the main thread waits for one answer before it calls the worker lost. */
const ANSWER_TIMEOUT_MS = 15 * 60_000;
const SLICE_MS = 1000;

/** The PostgreSQL worker thread (worker.ts). */
function spawnWorker(data: PgWorkerData): Worker {
  return moduleWorker(import.meta.url, 'worker', { workerData: data, transferList: [data.port] });
}

/**
 * Round trips of this process's bridges (main thread → worker → PostgreSQL → back) and the time the
 * main thread spent blocked in them; statements counts each statement sent, batched or not.
 * bench/sync.ts prints them per cycle.
 */
export interface BridgeStats {
  roundTrips: number;
  statements: number;
  waitSeconds: number;
}
const stats: BridgeStats = { roundTrips: 0, statements: 0, waitSeconds: 0 };

export function bridgeStats(): BridgeStats {
  return { ...stats };
}

/**
 * IDSYNC_PG_TRACE=1: round trips counted per statement text — the statement that needed the answer
 * (a batch's last item; what rode along before it is free), with the time waited — and statements
 * sent per text (batched or not: each is still one exchange between the worker and the server).
 * bench/sync-worker.ts prints traceReport() per cycle; other processes print it to stderr at exit.
 * A diagnostic for finding the reads that cost the round trips.
 */
const trace = process.env.IDSYNC_PG_TRACE === '1' ? new Map<string, { trips: number; statements: number; seconds: number }>() : undefined;
let traceReported = false;
if (trace) process.on('exit', () => traceReported || process.stderr.write(traceReport()));

function traceText(item: PgQuery | PgScript): string {
  return (item.op === 'query' ? item.text : item.sql).replace(/\s+/g, ' ').trim().slice(0, 140);
}

function traced(text: string): { trips: number; statements: number; seconds: number } {
  let t = trace!.get(text);
  if (!t) trace!.set(text, (t = { trips: 0, statements: 0, seconds: 0 }));
  return t;
}

function traceCall(req: PgRequest, seconds: number): void {
  if (req.op === 'close') return;
  const items = req.op === 'batch' ? req.items : [req];
  for (const item of items) traced(traceText(item)).statements++;
  const last = traced(traceText(items[items.length - 1]!));
  last.trips++;
  last.seconds += seconds;
}

/** The IDSYNC_PG_TRACE report: the top statements by round trips, then by statements sent (empty without the flag). */
export function traceReport(top = 12): string {
  if (!trace || trace.size === 0) return '';
  traceReported = true;
  const line = ([text, t]: [string, { trips: number; statements: number; seconds: number }]) =>
    `${String(t.trips).padStart(9)} trips ${t.seconds.toFixed(2).padStart(7)} s ${String(t.statements).padStart(9)} sent  ${text}`;
  const byTrips = [...trace].filter(([, t]) => t.trips > 0).sort((a, b) => b[1].trips - a[1].trips).slice(0, top);
  const bySent = [...trace].filter(([text]) => !byTrips.some(([x]) => x === text)).sort((a, b) => b[1].statements - a[1].statements).slice(0, 5);
  return (
    `PostgreSQL bridge by statement (IDSYNC_PG_TRACE, pid ${process.pid}: ${stats.roundTrips} round trips, ${stats.statements} statements sent):\n` +
    `${byTrips.map(line).join('\n')}\n  most sent besides:\n${bySent.map(line).join('\n')}\n`
  );
}

class Channel {
  private readonly flag = new Int32Array(new SharedArrayBuffer(4));
  private readonly port: MessagePort;
  private readonly worker: Worker;
  private closed = false;

  constructor(connect: PgConnectOptions) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = spawnWorker({ connect, flag: this.flag.buffer as SharedArrayBuffer, port: port2 });
    // The worker must not keep the process alive once the store is closed (or forgotten).
    this.worker.unref();
    this.port.unref();
  }

  call(req: PgRequest): PgResponse {
    if (this.closed) throw new IdsyncError('STORE_FAILED', 'the database connection is closed');
    const t0 = performance.now();
    stats.roundTrips++;
    stats.statements += req.op === 'batch' ? req.items.length : 1;
    Atomics.store(this.flag, 0, 0);
    this.port.postMessage(req);
    const deadline = Date.now() + ANSWER_TIMEOUT_MS;
    for (;;) {
      Atomics.wait(this.flag, 0, 0, SLICE_MS);
      const msg = receiveMessageOnPort(this.port);
      if (msg) {
        const waited = (performance.now() - t0) / 1000;
        stats.waitSeconds += waited;
        if (trace) traceCall(req, waited);
        return msg.message as PgResponse;
      }
      if (Date.now() > deadline) {
        this.closed = true;
        void this.worker.terminate();
        throw new IdsyncError('STORE_FAILED', 'PostgreSQL did not answer within 15 minutes; the connection was dropped');
      }
    }
  }

  close(): void {
    if (this.closed) return;
    try {
      this.call({ op: 'close' });
    } finally {
      this.closed = true;
      void this.worker.terminate();
      this.port.close();
    }
  }
}

type Answer = Extract<PgResponse, { ok: true }>;

function unwrap(res: PgResponse): Answer {
  if (!res.ok) throw failureError(res.error);
  return res;
}

/** Rows as better-sqlite3 gives them: bytea as Buffer (a Uint8Array after crossing threads). */
function fixValue(v: unknown): unknown {
  return v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v;
}
function fixRow(row: unknown): unknown {
  if (Array.isArray(row)) {
    for (let i = 0; i < row.length; i++) if (row[i] instanceof Uint8Array) row[i] = fixValue(row[i]);
    return row;
  }
  const r = row as Record<string, unknown>;
  for (const k in r) if (r[k] instanceof Uint8Array) r[k] = fixValue(r[k]);
  return r;
}

class PgStatement<P extends unknown[], R> {
  readonly source: string;
  readonly reader: boolean;
  readonly readonly: boolean;
  busy = false;
  private readonly t: TranslatedStatement;
  private pluckOn = false;
  private rawOn = false;
  private bound: unknown[] | undefined;

  constructor(
    readonly database: PgDatabase,
    source: string,
  ) {
    this.source = source;
    this.t = translateStatement(source);
    this.reader = this.t.reader;
    this.readonly = /^\s*(SELECT|VALUES|WITH\s[\s\S]*\bSELECT)\b/i.test(source) && !/\b(INSERT|UPDATE|DELETE)\b/i.test(source);
  }

  private exec(args: readonly unknown[]): Answer {
    const values = bindParams(this.t, this.bound ?? args);
    const array = this.pluckOn || this.rawOn;
    // A leader's write outside a transaction gets one of its own, so the fence is checked with it.
    if (!this.readonly && !this.database.inTransaction && currentFence()) {
      return this.database.transaction(() => this.database.query(this.t, values, array ? 'array' : 'object', true))();
    }
    return this.database.query(this.t, values, array ? 'array' : 'object', true);
  }

  run(...params: P): BetterSqlite3.RunResult {
    const db = this.database;
    // A write inside a transaction is queued, not sent: see PgDatabase.defer. UPDATE OR IGNORE is
    // not (the worker needs its first answer to decide the next step).
    if (db.inTransaction && db.deferWrites && !this.t.ignoreConflicts) return db.defer(this.t, bindParams(this.t, this.bound ?? params), this.pluckOn || this.rawOn ? 'array' : 'object');
    const res = this.exec(params);
    let id: number | undefined;
    return {
      changes: res.rowCount,
      // Read at most once, right after an INSERT into a table with an identity column: the
      // session's lastval() is that row's id (SQLite's rowid of the inserted row).
      get lastInsertRowid(): number {
        return (id ??= db.lastval());
      },
    };
  }

  private shape(row: unknown): R {
    const r = fixRow(row);
    return (this.pluckOn ? (r as unknown[])[0] : r) as R;
  }

  get(...params: P): R | undefined {
    const res = this.exec(params);
    return res.rows.length > 0 ? this.shape(res.rows[0]) : undefined;
  }

  all(...params: P): R[] {
    return this.exec(params).rows.map((r) => this.shape(r));
  }

  iterate(...params: P): IterableIterator<R> {
    // The whole answer at once: a cursor would hold the session (and its transaction) open while the
    // caller runs other statements between steps, which better-sqlite3 allows and PostgreSQL does not.
    return this.all(...params)[Symbol.iterator]();
  }

  pluck(toggleState = true): this {
    this.pluckOn = toggleState;
    if (toggleState) this.rawOn = false;
    return this;
  }

  raw(toggleState = true): this {
    this.rawOn = toggleState;
    if (toggleState) this.pluckOn = false;
    return this;
  }

  expand(): this {
    throw unsupported('Statement.expand()');
  }

  bind(...params: P): this {
    this.bound = params;
    return this;
  }

  columns(): BetterSqlite3.ColumnDefinition[] {
    throw unsupported('Statement.columns()');
  }

  safeIntegers(): this {
    // Integers come back as numbers, as better-sqlite3's default (epoch milliseconds fit a double).
    return this;
  }
}

/** PgStatement is a better-sqlite3 Statement (checked here, since a generic class cannot declare it). */
export const statementShapeHolds: PgStatement<unknown[], unknown> extends Stmt<unknown[], unknown> ? true : never = true;

function unsupported(what: string): Error {
  return new IdsyncError('STORE_FAILED', `${what} is not available on the PostgreSQL store`);
}

/**
 * The PostgreSQL driver: implements the store API the modules use (better-sqlite3's Database type,
 * so a module is written once for both stores). What SQLite-only APIs it lacks throws, by name.
 */
export class PgDatabase implements Db {
  readonly memory = false;
  readonly readonly = false;
  readonly name: string;
  open = true;
  private depth = 0;
  private readonly channel: Channel;
  /** Statements queued to be sent with the next message (deferred writes, BEGIN, SAVEPOINT). */
  private pending: Pending[] = [];
  /**
   * A queued write that failed, and the transaction level it was written in. Until that level is
   * rolled back, every further statement fails with this same error, without being sent: the
   * error can surface inside a nested transaction begun after the write (at its SAVEPOINT), and a
   * caller that catches the nested transaction and goes on must not go on past it, as it could
   * not have without deferral (the write would have thrown in its own level).
   */
  private failed: { error: Error; level: number } | undefined;
  /**
   * Whether writes inside a transaction are queued (defer()). IDSYNC_PG_DEFER=0 sends each at once,
   * as before: a diagnostic switch, and the reference the differential test compares against.
   */
  deferWrites = process.env.IDSYNC_PG_DEFER !== '0';

  constructor(connect: PgConnectOptions, location: string) {
    this.name = location;
    this.channel = new Channel(connect);
    // The first call connects; a refusal (password, TLS, unreachable) is reported here, at open.
    try {
      this.script('SELECT 1');
    } catch (err) {
      this.channel.close();
      this.open = false;
      throw err;
    }
  }

  get inTransaction(): boolean {
    return this.depth > 0;
  }

  /** @internal one translated statement (statements from prepare() are prepared on the session once). */
  query(t: TranslatedStatement, values: unknown[], rowMode: 'array' | 'object', named: boolean): Answer {
    return this.send(this.queryItem(t, values, rowMode, named));
  }

  private queryItem(t: TranslatedStatement, values: unknown[], rowMode: 'array' | 'object', named: boolean): PgQuery {
    const req: PgQuery = { op: 'query', text: t.text, values, rowMode, ignoreConflicts: t.ignoreConflicts, inTransaction: this.depth > 0 };
    if (named) req.name = t.text;
    return req;
  }

  /**
   * A write inside a transaction whose answer nobody waits for is queued and sent with the next
   * statement that needs an answer (a read, a non-deferred write), at the transaction's end, or when
   * MAX_DEFERRED are queued: a page of the engine's staging and sync writes is then one round trip,
   * not one per statement, which on PostgreSQL was the cost (docs/store.md, figures).
   *
   * What stays as it was: the order of the statements (one session, sent in order); the result,
   * whose getters send what is queued first (`changes`, `lastInsertRowid` of this very statement);
   * and a failure: the transaction fails with the statement's own error (PgStatementError, its
   * SQLSTATE) and is rolled back, raised by the next call that sends — at the latest by the
   * transaction's end, inside it, so `transaction(fn)` throws as before. What moves: the point in
   * `fn` where the error is raised (after the statement, not at it). No module catches a single
   * statement's error inside a transaction to go on (on PostgreSQL a failed statement aborts the
   * transaction, so that could not work before either); a nested transaction's writes are sent
   * before it ends, so a caller catching a nested transaction sees its errors as before.
   */
  defer(t: TranslatedStatement, values: unknown[], rowMode: 'array' | 'object'): BetterSqlite3.RunResult {
    const result: DeferredResult = { done: false, rowCount: 0, error: undefined };
    this.pending.push({ item: this.queryItem(t, values, rowMode, true), result, level: this.depth });
    if (this.pending.length >= MAX_DEFERRED) this.send(undefined);
    const settle = (): void => {
      if (!result.done) this.send(undefined, this.pending.findIndex((p) => p.result === result) + 1);
      if (result.error) throw result.error;
    };
    const insertId = (): number => this.insertIdOf(result);
    let id: number | undefined;
    return {
      get changes(): number {
        settle();
        return result.rowCount;
      },
      get lastInsertRowid(): number {
        return (id ??= insertId());
      },
    };
  }

  /**
   * The id an INSERT drew from its identity column: the session's lastval() right after it (SQLite's
   * rowid of the inserted row). A queued insert is sent with the lastval() query behind it, so a
   * later statement cannot have moved it.
   */
  private insertIdOf(result: DeferredResult): number {
    if (result.done) {
      if (result.error) throw result.error;
      return this.lastval();
    }
    if (this.failed) throw this.failed.error;
    const upTo = this.pending.findIndex((p) => p.result === result) + 1;
    const at = upTo; // the index of the lastval() query in the batch
    try {
      const r = this.send(this.queryItem(LASTVAL, [], 'object', false), upTo);
      return Number((r.rows[0] as { id: number }).id);
    } catch (err) {
      if (result.error) throw result.error;
      if (err instanceof PgStatementError && err.index === at) return 0; // no sequence drawn on this session
      throw err;
    }
  }

  /**
   * Sends the queued statements up to `upTo` and then `item` (if any) in one message, and answers
   * item's result. A failure throws the first failed statement's error; a queued write that failed
   * (or came after the failure) keeps it, so its result's getters throw it too.
   */
  private send(item: PgQuery | PgScript | undefined, upTo = this.pending.length): Answer {
    if (this.failed) throw this.failed.error;
    const queued = upTo > 0 ? this.pending.splice(0, upTo) : [];
    if (queued.length === 0) return item ? unwrap(this.channel.call(item)) : EMPTY_ANSWER;
    const items = queued.map((p) => p.item);
    if (item) items.push(item);
    const res = this.channel.call({ op: 'batch', items });
    const counts = res.rowCounts ?? [];
    const error = res.ok ? undefined : failureError(res.error, res.index);
    for (let i = 0; i < queued.length; i++) {
      const r = queued[i]!.result;
      if (!r) continue;
      r.done = true;
      if (i < counts.length) r.rowCount = counts[i]!;
      else r.error = error;
    }
    if (error) {
      const failedWrite = !res.ok && res.index !== undefined ? queued[res.index] : undefined;
      if (failedWrite?.result && failedWrite.level !== undefined) this.failed = { error, level: failedWrite.level };
      throw error;
    }
    return res as Answer;
  }

  /** Forgets queued statements from index `from` on: their transaction (or savepoint) is rolled back. */
  private discard(from: number): void {
    for (const p of this.pending.splice(from)) if (p.result) p.result.done = true;
  }

  /**
   * A leader's write transaction (docs/ha.md) starts by checking that the lease row still holds its
   * token; the check locks the row until the transaction ends. No row: another node took over, and
   * nothing of this transaction is written.
   */
  private checkFence(fence: WriteFence, begin: Pending): void {
    let held: boolean;
    try {
      held = this.send({ op: 'query', text: fence.check.sql, values: [...fence.check.params], rowMode: 'array', ignoreConflicts: false, inTransaction: true }).rows.length > 0;
    } catch (err) {
      this.depth--;
      this.abandon(begin, true, '');
      throw err;
    }
    if (held) return;
    this.depth--;
    this.abandon(begin, true, '');
    throw new IdsyncError('LEASE_LOST', `the leader lease no longer holds token ${fence.token} in the database: another node leads; nothing was written`, {
      hint: 'Another node leads now (`idsync service status`); this node goes on as a standby.',
      details: { token: fence.token, fencedBy: 'database' },
    });
  }

  /**
   * Undoes a transaction (outer) or savepoint that failed: a BEGIN/SAVEPOINT still queued never
   * reached the server, so forgetting it and what followed it is the whole rollback; else the
   * queued statements are forgotten and the rollback sent.
   */
  private abandon(begin: Pending, outer: boolean, sp: string): void {
    // This level's rollback ends a failure of a write queued in it (or inside it); a failure of an
    // outer level's write stays until that level is rolled back.
    const level = this.depth + 1;
    if (this.failed && this.failed.level >= level) this.failed = undefined;
    const keep = this.failed;
    this.failed = undefined;
    try {
      this.rollbackTo(begin, outer, sp);
    } finally {
      this.failed = keep;
    }
  }

  private rollbackTo(begin: Pending, outer: boolean, sp: string): void {
    const at = this.pending.indexOf(begin);
    if (at >= 0) {
      this.discard(at);
      return;
    }
    this.discard(0);
    try {
      this.send({ op: 'script', sql: outer ? 'ROLLBACK' : `ROLLBACK TO SAVEPOINT ${sp}; RELEASE SAVEPOINT ${sp}` });
    } catch {
      // The connection is gone: the server rolled back. The first error is the one to report.
    }
  }

  /** A script of statements without parameters, in one round trip (with what is queued before it). */
  script(sql: string): void {
    this.send({ op: 'script', sql });
  }

  /** @internal the id the last INSERT drew from a sequence on this session (0 if none). */
  lastval(): number {
    this.send(undefined); // a queued write's error is its own, not "no id"
    try {
      const r = this.query(LASTVAL, [], 'object', false);
      return Number((r.rows[0] as { id: number }).id);
    } catch {
      return 0;
    }
  }

  // eslint-disable-next-line @typescript-eslint/no-empty-object-type -- better-sqlite3's own signature
  prepare<BindParameters extends unknown[] | {} = unknown[], Result = unknown>(
    source: string,
  ): Stmt<BindParameters, Result> {
    return new PgStatement(this, source) as unknown as Stmt<BindParameters, Result>;
  }

  transaction<F extends TxFn>(fn: F): BetterSqlite3.Transaction<F> {
    const run = (...args: Parameters<F>): ReturnType<F> => {
      const outer = this.depth === 0;
      const sp = `idsync_sp${this.depth}`;
      const fence = outer ? currentFence() : undefined;
      fence?.assertHeld();
      // BEGIN (and a SAVEPOINT with nothing queued before it) is queued: it goes with the first
      // statement that is sent, and a transaction that fails before any is sent costs nothing.
      // Writes queued before a SAVEPOINT are sent first, so their errors are raised out here, not
      // inside the nested transaction (where a caller catching it would take them for its own).
      const begin: Pending = { item: { op: 'script', sql: outer ? 'BEGIN' : `SAVEPOINT ${sp}` } };
      if (this.pending.length > 0) this.send(begin.item);
      else this.pending.push(begin);
      this.depth++;
      if (fence) this.checkFence(fence, begin);
      let out: ReturnType<F>;
      try {
        out = fn(...args) as ReturnType<F>;
        if ((out as unknown) instanceof Promise) throw new TypeError('Transaction function cannot return a promise');
        // The queued writes go with the COMMIT (RELEASE): a failure among them fails the
        // transaction here, inside, as it would have at the statement (and COMMIT of a failed
        // transaction commits nothing).
        if (this.pending.length === 1 && this.pending[0] === begin) this.pending.length = 0;
        else this.send({ op: 'script', sql: outer ? 'COMMIT' : `RELEASE SAVEPOINT ${sp}` });
      } catch (err) {
        this.depth--;
        this.abandon(begin, outer, sp);
        throw err;
      }
      this.depth--;
      return out;
    };
    return Object.assign(run, { default: run, deferred: run, immediate: run, exclusive: run }) as unknown as BetterSqlite3.Transaction<F>;
  }

  exec(source: string): this {
    this.script(translateDdl(source));
    return this;
  }

  /** SQLite's pragmas (WAL, busy timeout, foreign keys) have no meaning here: PostgreSQL does that itself. */
  pragma(): unknown {
    return [];
  }

  function(): this {
    throw unsupported('Database.function()');
  }

  aggregate(): this {
    throw unsupported('Database.aggregate()');
  }

  loadExtension(): this {
    throw unsupported('Database.loadExtension()');
  }

  close(): this {
    if (this.open) {
      this.open = false;
      this.channel.close();
    }
    return this;
  }

  defaultSafeIntegers(): this {
    return this;
  }

  backup(): Promise<BetterSqlite3.BackupMetadata> {
    return Promise.reject(unsupported('Database.backup() (use pg_dump)'));
  }

  table(): this {
    throw unsupported('Database.table()');
  }

  unsafeMode(): this {
    return this;
  }

  serialize(): Buffer {
    throw unsupported('Database.serialize()');
  }
}
