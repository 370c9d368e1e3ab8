/**
 * The password intake's SQLite writes on a thread of their own.
 *
 * Why: on 2 cores the intake's transactions (the import path's 256 rows ≈ 4 ms, a notification
 * window's commit) ran on the main thread, and while it wrote, no finished hash was answered and no
 * new one reached libuv's pool: the pool ran dry and a core idled (the bench's wall ratio trailed
 * its CPU ratio by 6–9 points). Here the main thread seals the changes (AES-GCM, so this thread
 * never sees a clear hash) and posts them; the worker runs the same two upserts (outbox.ts:
 * STATE_UPSERT_SQL, OUTBOX_UPSERT_SQL) in ONE transaction on its own connection to the same file
 * and answers with the result per change. Batches are written one at a time in the order they were
 * posted (one worker, one message queue), so the intake's order holds as before.
 *
 * Durability is unchanged: a caller is answered only when the worker reports the COMMIT, with the
 * connection's `synchronous` setting copied from the main connection. The automatic checkpoint is
 * off on this connection: the intake's checkpoints run on their own worker (checkpoints.ts), so a
 * checkpoint never sits inside a commit that callers wait for.
 *
 * Only for an SQLite file (in memory there is no second connection; PostgreSQL's store is reached
 * through its own bridge): otherwise, and when the worker cannot start or dies, the writes run on
 * the main connection as before. Batches the worker had not answered when it died are written
 * there again, in order (each is "latest change wins", so one the worker had already committed
 * changes nothing that matters by being written twice).
 */
import { Worker } from 'node:worker_threads';
import { dialectOf, type Database } from '../store/database.js';
import { SQLITE_DRIVER_PATH } from '../store/sqlite-driver.js';
import { OUTBOX_UPSERT_SQL, STATE_UPSERT_SQL, type EnqueueResult, type SealedBatch } from './outbox.js';

/** The worker exits after this long without a batch (the next batch starts another). */
const IDLE_MS = 30_000;

// CommonJS run by the worker (eval: no separate file to find under tsx or in dist/).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Sqlite = require(workerData.driver);
const db = new Sqlite(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = ' + workerData.synchronous);
db.pragma('wal_autocheckpoint = 0');
const state = db.prepare(workerData.stateSql);
const outbox = db.prepare(workerData.outboxSql);
const write = db.transaction((b) => {
  const out = [];
  for (const r of b.rows) {
    if (state.run(r.connector, r.anchor, r.fp, r.ct, r.iv, r.tag, r.keyId, r.changedAt, b.now).changes === 0) {
      out.push('stale');
      continue;
    }
    out.push(outbox.run(r.anchor, r.connector, r.ct, r.iv, r.tag, r.keyId, r.changedAt, b.now, b.nowMs, r.source).changes > 0 ? 'queued' : 'stale');
  }
  return out;
});
parentPort.on('message', (m) => {
  if (m === 'close') { db.close(); parentPort.close(); return; }
  try {
    parentPort.postMessage({ id: m.id, results: write(m.batch) });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: { message: String(e && e.message), code: e && e.code } });
  }
});
`;

interface Pending {
  worker: Worker;
  batch: SealedBatch;
  resolve: (r: EnqueueResult[]) => void;
  reject: (e: unknown) => void;
}

type Reply = { id: number; results: EnqueueResult[] } | { id: number; error: { message: string; code?: string } };

export class IntakeWriterThread {
  private worker: Worker | undefined;
  private failed = false;
  private nextId = 1;
  /** Posted and not answered yet, in the order posted (ids are unique across workers). */
  private readonly pending = new Map<number, Pending>();
  /** Workers being closed on purpose (their exit is no failure). */
  private readonly closing = new WeakSet<Worker>();
  private idle: NodeJS.Timeout | undefined;
  private readonly synchronous: number;

  private constructor(
    private readonly file: string,
    db: Database,
    /** Writes a batch on the main connection (when the worker cannot start, or once it failed). */
    private readonly here: (batch: SealedBatch) => EnqueueResult[],
    /** Told the rows of each transaction the worker committed (the intake's checkpoints count them). */
    private readonly committed: (rows: number) => void,
  ) {
    const sync = Number(db.pragma('synchronous', { simple: true }));
    this.synchronous = Number.isInteger(sync) && sync >= 0 && sync <= 3 ? sync : 2;
  }

  /** For an SQLite database file; undefined otherwise (in memory, read-only, PostgreSQL). */
  static for(db: Database, here: (batch: SealedBatch) => EnqueueResult[], committed: (rows: number) => void): IntakeWriterThread | undefined {
    if (dialectOf(db) !== 'sqlite' || db.memory || !db.name || db.readonly) return undefined;
    return new IntakeWriterThread(db.name, db, here, committed);
  }

  /** True while the worker writes (false once it failed and the main connection took over). */
  get active(): boolean {
    return !this.failed;
  }

  /** Batches posted and not answered yet. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Writes one batch in one transaction; resolves after its COMMIT with the result per row. */
  write(batch: SealedBatch): Promise<EnqueueResult[]> {
    const w = this.failed ? undefined : this.start();
    if (!w) {
      try {
        return Promise.resolve(this.here(batch));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return new Promise<EnqueueResult[]>((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { worker: w, batch, resolve, reject });
      if (this.idle) clearTimeout(this.idle);
      this.idle = undefined;
      // A process must not exit with a change posted and not yet committed.
      w.ref();
      w.postMessage({ id, batch });
    });
  }

  /** Waits for what was posted, then stops the worker (a later write starts another). */
  async close(): Promise<void> {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    const w = this.worker;
    this.worker = undefined;
    if (!w) return;
    this.closing.add(w);
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.ref(); // until it has exited: the caller awaits that
    // After every batch posted before it: the worker answers them first (one message queue).
    w.postMessage('close');
    await exited;
    // Whatever it did not answer (it cannot have: close comes last) is written here.
    this.takeOver(w);
  }

  private start(): Worker | undefined {
    if (this.worker) return this.worker;
    let w: Worker;
    try {
      w = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { file: this.file, driver: SQLITE_DRIVER_PATH, synchronous: this.synchronous, stateSql: STATE_UPSERT_SQL, outboxSql: OUTBOX_UPSERT_SQL },
      });
    } catch {
      this.failed = true;
      return undefined;
    }
    w.on('message', (reply: Reply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if ('results' in reply) {
        this.committed(p.batch.rows.length);
        p.resolve(reply.results);
      } else {
        // The transaction rolled back (SQLITE_BUSY past the timeout, a full disk): as on the main
        // connection, the callers hear so and nothing of the batch was written.
        p.reject(Object.assign(new Error(reply.error.message), reply.error.code ? { code: reply.error.code } : {}));
      }
      if (this.worker === w && this.pending.size === 0) this.rest(w);
    });
    // Gone (cannot open the file, or an error): the main connection writes from now on, starting
    // with what the worker had not answered, in order.
    const fail = (): void => {
      if (this.closing.has(w)) return;
      if (this.worker === w) this.worker = undefined;
      this.failed = true;
      this.takeOver(w);
    };
    w.on('error', fail);
    w.on('exit', fail);
    // Idle, the worker must not keep its process alive (after the listeners: adding a 'message'
    // listener refs the worker again); write() refs it while a batch is posted.
    w.unref();
    this.worker = w;
    return w;
  }

  /** Writes on the main connection, in order, what a gone worker had not answered. */
  private takeOver(w: Worker): void {
    for (const [id, p] of this.pending) {
      if (p.worker !== w) continue;
      this.pending.delete(id);
      try {
        p.resolve(this.here(p.batch));
      } catch (err) {
        p.reject(err);
      }
    }
  }

  private rest(w: Worker): void {
    w.unref();
    this.idle = setTimeout(() => void this.close(), IDLE_MS);
    this.idle.unref();
  }
}
