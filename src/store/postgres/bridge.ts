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
import { existsSync } from 'node:fs';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';
import { IdsyncError } from '../../core/errors.js';
import { currentFence, type WriteFence } from '../fence.js';
import { bindParams, translateDdl, translateStatement, type TranslatedStatement } from './dialect.js';
import type { PgConnectOptions, PgFailure, PgRequest, PgResponse, PgWorkerData } from './protocol.js';

type Db = BetterSqlite3.Database;
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- better-sqlite3's own constraint
type Stmt<P extends unknown[] | {}, R> = BetterSqlite3.Statement<P, R>;
type TxFn = Parameters<Db['transaction']>[0];

/** A statement that fails on the server: its SQLSTATE as `code` (23505: unique violation). */
export class PgStatementError extends Error {
  readonly code: string | undefined;
  constructor(f: PgFailure) {
    super(f.message);
    this.name = 'PgStatementError';
    this.code = f.code;
  }
}

/** How long the main thread waits for one answer before it calls the worker lost. */
const ANSWER_TIMEOUT_MS = 15 * 60_000;
const SLICE_MS = 1000;

/** The worker: the built worker.js, or worker.ts through tsx's loader when running from source. */
function spawnWorker(data: PgWorkerData): Worker {
  const ts = new URL('./worker.ts', import.meta.url);
  const transferList = [data.port];
  if (import.meta.url.endsWith('.ts') && existsSync(ts)) {
    const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(ts.href)}); })`;
    return new Worker(boot, { eval: true, workerData: data, transferList });
  }
  return new Worker(new URL('./worker.js', import.meta.url), { workerData: data, transferList });
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
    Atomics.store(this.flag, 0, 0);
    this.port.postMessage(req);
    const deadline = Date.now() + ANSWER_TIMEOUT_MS;
    for (;;) {
      Atomics.wait(this.flag, 0, 0, SLICE_MS);
      const msg = receiveMessageOnPort(this.port);
      if (msg) return msg.message as PgResponse;
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

function unwrap(res: PgResponse): Extract<PgResponse, { ok: true }> {
  if (!res.ok) throw new PgStatementError(res.error);
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

  private exec(args: readonly unknown[]): Extract<PgResponse, { ok: true }> {
    const values = bindParams(this.t, this.bound ?? args);
    const array = this.pluckOn || this.rawOn;
    // A leader's write outside a transaction gets one of its own, so the fence is checked with it.
    if (!this.readonly && !this.database.inTransaction && currentFence()) {
      return this.database.transaction(() => this.database.query(this.t, values, array ? 'array' : 'object', true))();
    }
    return this.database.query(this.t, values, array ? 'array' : 'object', true);
  }

  run(...params: P): BetterSqlite3.RunResult {
    const res = this.exec(params);
    const db = this.database;
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
  query(t: TranslatedStatement, values: unknown[], rowMode: 'array' | 'object', named: boolean): Extract<PgResponse, { ok: true }> {
    const req: PgRequest = { op: 'query', text: t.text, values, rowMode, ignoreConflicts: t.ignoreConflicts, inTransaction: this.depth > 0 };
    if (named) req.name = t.text;
    return unwrap(this.channel.call(req));
  }

  /**
   * A leader's write transaction (docs/ha.md) starts by checking that the lease row still holds its
   * token; the check locks the row until the transaction ends. No row: another node took over, and
   * nothing of this transaction is written.
   */
  private checkFence(fence: WriteFence): void {
    let held: boolean;
    try {
      held = unwrap(this.channel.call({ op: 'query', text: fence.check.sql, values: [...fence.check.params], rowMode: 'array', ignoreConflicts: false, inTransaction: true })).rows.length > 0;
    } catch (err) {
      this.depth--;
      this.rollbackQuietly();
      throw err;
    }
    if (held) return;
    this.depth--;
    this.rollbackQuietly();
    throw new IdsyncError('LEASE_LOST', `the leader lease no longer holds token ${fence.token} in the database: another node leads; nothing was written`, {
      hint: 'Another node leads now (`idsync service status`); this node goes on as a standby.',
      details: { token: fence.token, fencedBy: 'database' },
    });
  }

  private rollbackQuietly(): void {
    try {
      this.script('ROLLBACK');
    } catch {
      // The connection is gone: the server rolled back.
    }
  }

  /** A script of statements without parameters, in one round trip. */
  script(sql: string): void {
    unwrap(this.channel.call({ op: 'script', sql }));
  }

  /** @internal the id the last INSERT drew from a sequence on this session (0 if none). */
  lastval(): number {
    try {
      const r = this.query(translateStatement('SELECT lastval() AS id'), [], 'object', false);
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
      this.script(outer ? 'BEGIN' : `SAVEPOINT ${sp}`);
      this.depth++;
      if (fence) this.checkFence(fence);
      let out: ReturnType<F>;
      try {
        out = fn(...args) as ReturnType<F>;
        if ((out as unknown) instanceof Promise) throw new TypeError('Transaction function cannot return a promise');
      } catch (err) {
        this.depth--;
        try {
          this.script(outer ? 'ROLLBACK' : `ROLLBACK TO SAVEPOINT ${sp}; RELEASE SAVEPOINT ${sp}`);
        } catch {
          // The connection is gone: the server rolled back. The first error is the one to report.
        }
        throw err;
      }
      this.depth--;
      this.script(outer ? 'COMMIT' : `RELEASE SAVEPOINT ${sp}`);
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
