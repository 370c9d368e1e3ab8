/**
 * WAL checkpoints of the password intake's writes, off the event loop.
 *
 * SQLite checkpoints automatically inside the COMMIT that pushes the WAL past 1,000 pages: it copies
 * the WAL into the database file and fsyncs both, ≈ 10 ms of wall time on this project's test VM,
 * most of it waiting for the disk. On the intake paths that wait sits on the main thread at the
 * worst moment: the notification path's callers are waiting for that very commit (so no new hash
 * reaches the pool), and the import path cannot hand the pool its next hashes. Measured on 2 cores,
 * the checkpoints cost the notification path ≈ 10 points of its ratio to raw PBKDF2, the import
 * path ≈ 4.
 *
 * So a worker thread with its own connection to the same file runs PASSIVE checkpoints (which never
 * block a writer) about every CHECKPOINT_TARGET_FACTOR × `wal_autocheckpoint` pages (4,000: 16 MB). Not
 * every 1,000 as SQLite would: every intake transaction rewrites the same few hot pages (page 1,
 * the tail of the table and of the due index, the index's upper levels), and each checkpoint copies
 * them again; a quarter as many checkpoints took the worker's CPU from 7 to 3 µs a notified change
 * (bench/README.md). The pages a row costs vary (1 for the import path's large transactions, 2–5
 * for single changes), so the rows between two checkpoints follow the WAL size each checkpoint
 * reports. (A fixed 256 rows
 * checkpointed the import path 4 times as often as SQLite did, and its fsyncs slowed the writes:
 * 73–74 % of raw instead of 79 %.) While the worker runs, the connection's automatic checkpoint
 * is set beyond where the WAL is started over (below), so no commit copies the WAL on the event
 * loop unless that restart was put off; before it starts and once it stops (idle for IDLE_MS), the
 * connection has its own setting again. Durability is unchanged: a change is
 * durable once its COMMIT is in the WAL, as before (synchronous = NORMAL); a checkpoint only moves
 * committed pages into the main file, and SQLite recovers from a crash in the middle of one.
 *
 * Copying is not enough to keep the WAL small: SQLite starts it over only from a write that began
 * with every frame copied, and while the intake commits every few milliseconds, each checkpoint
 * leaves the frames committed during it. So once the WAL is past WAL_RESTART_FACTOR × the target,
 * the intake's next write copies that remainder itself and starts the WAL over (write()).
 *
 * Only for an SQLite file: in memory there is nothing to checkpoint, and PostgreSQL has its own
 * (the store is `dialectOf(db)`). When the worker cannot start or fails, the intake commits with
 * the automatic checkpoint on, as before.
 */
import { Worker } from 'node:worker_threads';
import { dialectOf, type Database } from '../store/database.js';
import { lowerAutocheckpoint, ownAutocheckpoint, raiseAutocheckpoint } from '../store/autocheckpoint.js';
import { SQLITE_DRIVER_PATH } from '../store/sqlite-driver.js';

/** Rows the intake writes before its first checkpoint request (then: as the WAL sizes say). */
export const FIRST_CHECKPOINT_ROWS = 256;
const MIN_CHECKPOINT_ROWS = 32;
const MAX_CHECKPOINT_ROWS = 16_384;
/** The worker checkpoints about every this many times the connection's `wal_autocheckpoint` pages. */
export const CHECKPOINT_TARGET_FACTOR = 4;
/**
 * A WAL of this many times the checkpoint target (8,000 pages, 32 MB by default) is started over by
 * the intake's next write (see write()).
 */
export const WAL_RESTART_FACTOR = 2;
/** The worker exits after this long without a request (the next request starts another). */
export const IDLE_MS = 60_000;

// CommonJS run by the worker (eval: no separate file to find under tsx or in dist/). One request at
// a time; requests that arrive while a checkpoint runs are answered by the next one.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Sqlite = require(workerData.driver);
const db = new Sqlite(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 5000');
parentPort.on('message', (msg) => {
  if (msg === 'close') { db.close(); parentPort.close(); return; }
  const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
  parentPort.postMessage(r);
});
`;

export class IntakeCheckpoints {
  private worker: Worker | undefined;
  private failed = false;
  private rows = 0;
  /** Rows between two checkpoint requests, and the WAL pages aimed at between two checkpoints. */
  private every = FIRST_CHECKPOINT_ROWS;
  private readonly pages: number;
  private lastLog = 0;
  /** The last checkpoint copied every frame: the next writer restarts the WAL. */
  private lastComplete = false;
  /** A request is with the worker; another was asked for meanwhile. */
  private inFlight = false;
  private again = false;
  private checkpoints = 0;
  private idle: NodeJS.Timeout | undefined;
  /** The connection's `wal_autocheckpoint` while the worker runs. */
  private readonly autoWorker: number;
  private readonly checkpointHere;
  /** The WAL has grown past WAL_RESTART_FACTOR × pages: the next write starts it over. */
  private restartDue = false;

  private constructor(
    private readonly db: Database,
    private readonly file: string,
    private readonly idleMs: number,
  ) {
    const own = ownAutocheckpoint(db);
    this.pages = CHECKPOINT_TARGET_FACTOR * (own > 0 ? own : 1000);
    // While the worker runs, the connection (the intake's commits, and every other write on it:
    // delivery results, events, in `idsync sync` the whole cycle) checkpoints on commit only beyond
    // where the intake starts the WAL over. At SQLite's own 1,000 pages its commits would copy the
    // WAL on the event loop about every 1,000 frames, which is what the worker is there to do;
    // past the limit, a restart was put off that long, and a checkpoint on commit bounds the WAL.
    this.autoWorker = (WAL_RESTART_FACTOR + 1) * this.pages;
    this.checkpointHere = db.prepare<[], { busy: number; log: number; checkpointed: number }>('PRAGMA wal_checkpoint(PASSIVE)');
  }

  /**
   * For an SQLite database file; undefined otherwise (in memory, PostgreSQL). `idleMs`: how long
   * the worker waits for the next request before it exits (tests shorten it).
   */
  static for(db: Database, idleMs = IDLE_MS): IntakeCheckpoints | undefined {
    if (dialectOf(db) !== 'sqlite' || db.memory || !db.name || db.readonly) return undefined;
    return new IntakeCheckpoints(db, db.name, idleMs);
  }

  /** Checkpoints the worker ran so far (tests, diagnostics). */
  get done(): number {
    return this.checkpoints;
  }

  /**
   * Runs `write` (one transaction of `rows` intake rows), and asks the worker for a checkpoint once
   * enough was written. Between two, the WAL grows by about `pages` pages; the connection
   * checkpoints on commit only past (WAL_RESTART_FACTOR + 1) × `pages` while the worker runs, and
   * at its own setting before the worker started and once it has stopped.
   */
  write<T>(rows: number, write: () => T): T {
    if (this.failed) return write();
    if (this.restartDue && !this.inFlight) {
      // SQLite starts the WAL over from its beginning only in a write transaction that began
      // reading with every frame already copied, and the worker's checkpoints never get there
      // while the intake commits every few milliseconds: the frames committed while one runs are
      // left for the next, and the WAL grows by everything written (an initial password sync of
      // a million users: gigabytes). So, once it is past the limit, the rest (the frames committed
      // during the worker's last checkpoint) is copied on this connection, and the write below
      // starts the WAL over. (The message handler holds back further requests meanwhile, so
      // this is never put off by a worker that is always busy.)
      try {
        const r = this.checkpointHere.get();
        if (r && r.busy === 0 && r.log >= 0) {
          this.restartDue = false;
          this.lastLog = r.log;
          this.lastComplete = r.checkpointed === r.log;
        }
        // busy (another connection checkpoints now): tried again at the next write
      } catch {
        // inside a transaction of the caller's (SQLITE_LOCKED) or an I/O error: not now
      }
    }
    try {
      return write();
    } finally {
      this.rows += rows;
      if (this.rows >= this.every) {
        this.rows = 0;
        this.request();
      }
    }
  }

  /** Stops the worker (its last checkpoint, if one runs, completes first); a later write starts another. */
  async close(): Promise<void> {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    const w = this.worker;
    this.worker = undefined;
    this.inFlight = false;
    this.again = false;
    if (!w) return;
    this.lowerAuto();
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.ref(); // until it has exited: the caller awaits that
    w.postMessage('close');
    await exited;
  }

  /**
   * The connection's checkpoint on commit goes beyond where the WAL is started over while this
   * worker runs. Throws on a closed connection, with nothing recorded. Called once per worker, as
   * it starts; lowerAuto once, as it goes (close() or its failure).
   */
  private raiseAuto(): void {
    raiseAutocheckpoint(this.db, this.autoWorker);
  }

  /** The connection's own automatic checkpoint again once no checkpointer's worker runs on it. */
  private lowerAuto(): void {
    lowerAutocheckpoint(this.db, this.autoWorker);
  }

  private start(): boolean {
    if (this.worker) return true;
    if (!this.db.open) return false; // nothing to checkpoint for
    try {
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { file: this.file, driver: SQLITE_DRIVER_PATH } });
      w.on('message', (r: { busy?: unknown; log?: unknown; checkpointed?: unknown }) => {
        if (this.worker !== w) return;
        this.checkpoints++;
        this.inFlight = false;
        // Busy (another connection was checkpointing: PASSIVE does not wait) says nothing of the WAL.
        const busy = Number(r.busy) !== 0 || !(Number(r.log) >= 0);
        // `log`: the WAL's frames when the checkpoint ran, counted from its last restart. The first
        // writer after a complete checkpoint (every frame copied) restarts the WAL from its start,
        // so after one the frames written since are all of `log`; after an incomplete one (a
        // commit came in while it ran) they are what `log` grew by. (Telling the two apart by
        // "log is smaller than last time" missed every restart followed by more frames than
        // before, took the new log for a small growth and checkpointed 15 times too seldom: the
        // WAL of an import grew to every frame it wrote.) What was written (by every writer of
        // the file) scales the rows per checkpoint towards `pages` pages.
        if (!busy) {
          const log = Number(r.log);
          const written = this.lastComplete || log < this.lastLog ? log : log - this.lastLog;
          this.lastLog = log;
          this.lastComplete = Number(r.checkpointed) === log;
          if (log >= WAL_RESTART_FACTOR * this.pages) this.restartDue = true;
          if (written > 0 && !this.again) this.every = Math.round(Math.min(MAX_CHECKPOINT_ROWS, Math.max(MIN_CHECKPOINT_ROWS, (this.every * this.pages) / written)));
        }
        // A restart is due: the next write does it, with no checkpoint of the worker's in the way.
        if (this.restartDue) this.again = false;
        if (this.again) {
          this.again = false;
          this.request();
        } else {
          w.unref();
          this.idle = setTimeout(() => {
            // A new burst starts the worker again after its first rows, as the first one did (a
            // few rows never cost a thread), not after as many as the last burst's checkpoints took.
            this.every = FIRST_CHECKPOINT_ROWS;
            this.rows = 0;
            void this.close();
          }, this.idleMs);
          this.idle.unref();
        }
      });
      // Gone (cannot open the file, or an error): back to SQLite's own checkpoints on commit.
      const fail = (): void => {
        if (this.worker !== w) return; // closed on purpose
        this.failed = true;
        this.worker = undefined;
        this.lowerAuto();
      };
      w.on('error', fail);
      w.on('exit', fail);
      // A pipeline that is never stopped must not keep its process alive for the worker's sake
      // (after the listeners: adding a 'message' listener refs the worker again).
      w.unref();
      try {
        this.raiseAuto();
      } catch {
        // The connection is busy now (or closing): no worker this time, the next request tries
        // again. Asked to close rather than terminated: a thread stopped inside SQLite aborts the process.
        w.postMessage('close');
        return false;
      }
      this.worker = w;
      return true;
    } catch {
      this.failed = true;
      return false;
    }
  }

  private request(): void {
    // Started at the first request, not the first write: a pipeline that writes a few rows (a CLI
    // command, most tests) never costs a thread; and stopped again when idle (IDLE_MS).
    const w = this.start() ? this.worker : undefined;
    if (!w) return;
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = true;
    // Referenced while it checkpoints: a process that ends meanwhile (a CLI command right after an
    // import) would stop the worker inside SQLite, and better-sqlite3 aborts the whole process
    // (SIGABRT, "v8::ToLocalChecked Empty MaybeLocal") when it raises an error in a dying thread.
    w.ref();
    w.postMessage('checkpoint');
  }
}
