/**
 * WAL checkpoints of a burst of writes, off the event loop: a sync cycle's (engine/cycle.ts).
 *
 * SQLite checkpoints inside the COMMIT that pushes the WAL past `wal_autocheckpoint` pages (1,000
 * by default): it copies the WAL into the database file and fsyncs both, on the thread that
 * commits. A first import stages, syncs and records what the cloud answered at several MB a
 * second, so those commits were the 100k initial cycle's costliest statements: the export's
 * records alone spent 0.8 s of the event loop in COMMIT, 0.15–0.2 s without the copies
 * (bench/README.md).
 *
 * So while the burst lasts, a worker thread with its own connection to the file runs a PASSIVE
 * checkpoint every CHECKPOINT_EVERY_MS (PASSIVE never waits for and never blocks a writer; with
 * nothing new in the WAL it does nothing), and the connection checkpoints on commit only past
 * BURST_AUTOCHECKPOINT_PAGES, should the worker fall that far behind. The WAL still starts over
 * from its beginning as before: the first write after a checkpoint that copied every frame does it,
 * and the writer pauses often enough (for the cloud, for the directory) for one to. Durability is
 * unchanged: a change is durable once its COMMIT is in the WAL (synchronous = NORMAL); a
 * checkpoint only moves committed pages into the main file, and SQLite recovers from a crash in
 * the middle of one.
 *
 * The password intake has its own checkpointer (passwords/checkpoints.ts), paced by the rows it
 * writes; both may run on one connection (store/autocheckpoint.ts keeps its setting right).
 * Only for an SQLite file: in memory there is nothing to checkpoint, PostgreSQL has its own.
 */
import { Worker } from 'node:worker_threads';
import { lowerAutocheckpoint, raiseAutocheckpoint } from './autocheckpoint.js';
import { dialectOf, type Database } from './database.js';
import { SQLITE_DRIVER_PATH } from './sqlite-driver.js';

/** How often the worker checkpoints while a burst lasts. */
export const CHECKPOINT_EVERY_MS = 50;
/** The connection's automatic checkpoint meanwhile: 64 MB of WAL, if the worker falls behind. */
export const BURST_AUTOCHECKPOINT_PAGES = 16_000;

// CommonJS run by the worker (eval: no separate file to find under tsx or in dist/). It checkpoints
// until asked to stop, then closes its connection and says how many checkpoints it ran.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Sqlite = require(workerData.driver);
const db = new Sqlite(workerData.file, { fileMustExist: true });
let stopping = false;
let checkpoints = 0;
let timer;
function checkpoint() {
  db.pragma('wal_checkpoint(PASSIVE)');
  checkpoints++;
  timer = setTimeout(checkpoint, workerData.everyMs);
}
parentPort.on('message', () => {
  if (stopping) return;
  stopping = true;
  clearTimeout(timer);
  db.close();
  parentPort.postMessage(checkpoints);
  parentPort.close();
});
checkpoint();
`;

export class BackgroundCheckpoints {
  private worker: Worker | undefined;
  private stopped: Promise<number> | undefined;
  private failed = false;
  /** close() was called: start() does nothing any more. */
  private closed = false;
  private ran = 0;

  private constructor(private readonly db: Database) {}

  /** For an SQLite database file; undefined otherwise (in memory, PostgreSQL). */
  static for(db: Database): BackgroundCheckpoints | undefined {
    if (dialectOf(db) !== 'sqlite' || db.memory || !db.name || db.readonly) return undefined;
    return new BackgroundCheckpoints(db);
  }

  /** Whether the worker runs now. */
  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Checkpoints the last worker ran (known once it stopped; tests, diagnostics). */
  get checkpoints(): number {
    return this.ran;
  }

  /**
   * Starts the worker (once: later calls do nothing). When it cannot start, or fails later, the
   * connection checkpoints on commit as before.
   */
  start(): void {
    if (this.worker || this.failed || this.closed || !this.db.open) return;
    try {
      raiseAutocheckpoint(this.db, BURST_AUTOCHECKPOINT_PAGES);
    } catch {
      return; // the connection is busy now: the next call tries again
    }
    let w: Worker;
    try {
      w = new Worker(WORKER_SOURCE, { eval: true, workerData: { file: this.db.name, driver: SQLITE_DRIVER_PATH, everyMs: CHECKPOINT_EVERY_MS } });
    } catch {
      this.failed = true;
      lowerAutocheckpoint(this.db, BURST_AUTOCHECKPOINT_PAGES);
      return;
    }
    this.worker = w;
    this.stopped = new Promise<number>((resolve) => {
      w.once('message', (n: number) => resolve(n));
      // Gone without being asked (cannot open the file, an I/O error): commits checkpoint again.
      w.once('exit', () => {
        if (this.worker === w) {
          this.failed = true;
          this.worker = undefined;
          lowerAutocheckpoint(this.db, BURST_AUTOCHECKPOINT_PAGES);
        }
        resolve(0);
      });
    });
    w.on('error', () => undefined); // its exit follows, handled above
  }

  /**
   * Stops the worker for good: a start() after it does nothing. What ends the burst calls it (the
   * cycle's end), so that a straggler of the burst — an answer of the cloud still coming in and
   * reported as progress — cannot start a worker nobody stops.
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.stop();
  }

  /**
   * Stops the worker: its checkpoint, if one runs, completes first (a thread stopped inside SQLite
   * aborts the process), then the connection has its own setting again. A later start() starts
   * another. (A process that exits while a checkpoint runs, on a second signal or a broken pipe,
   * may still abort in it, as with the password intake's checkpointer: what was committed is in
   * the WAL, and SQLite recovers from a checkpoint cut short.)
   */
  async stop(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    this.worker = undefined;
    w.postMessage('stop');
    this.ran = await this.stopped!;
    lowerAutocheckpoint(this.db, BURST_AUTOCHECKPOINT_PAGES);
  }
}
