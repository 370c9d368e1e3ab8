/**
 * The notification path's writer: changes that arrive one at a time (a password change
 * notification, one hash from the DC agent) are coalesced into one SQLite transaction per short
 * window instead of one transaction each, and each caller is answered only after the transaction
 * that holds its change has committed. So an acknowledged change is on disk (a SIGKILL right after
 * the answer loses nothing), and a change not yet acknowledged was never promised.
 *
 * When the batch is written (whichever comes first):
 *  - `maxBatch` changes wait;
 *  - no hash of this writer waits for a thread of libuv's pool any more (at most as many are being
 *    computed as the pool has threads): the callers waiting for their answer are the ones that
 *    will bring the next work, so holding them longer would leave the pool idle once the running
 *    hashes end (the flush runs on the next turn of the event loop, so that hashes finishing
 *    together still share it). The pool's threads share the cores, so its hashes end in groups of
 *    its size: flushing only when fewer than the cores were left (as before) held the first group
 *    until the second had ended too, with the pool running dry meanwhile (2 cores, 8 callers:
 *    60–66 % of raw PBKDF2 against 71–72 % now, with 5.5–6 changes a transaction instead of 7);
 *  - `windowMs` passed since the first change of the batch arrived.
 *
 * Order: the batch is applied in arrival order (intake order per user is kept by the pipeline,
 * which submits a user's changes in the order they arrived), so of two changes of one user in one
 * window the later wins. Only OrgId hashes (never a password or an NT hash) wait here.
 */
import { hashPoolThreads } from './hash.js';
import type { EnqueueResult, OutboxWrite } from './outbox.js';

export const DEFAULT_WINDOW_MS = 3;
export const DEFAULT_MAX_BATCH = 256;

export interface IntakeWriterOptions {
  /** Longest wait of a change for its batch (default 3 ms). */
  windowMs?: number;
  /** Most changes per transaction (default 256). */
  maxBatch?: number;
  /** Flush early when fewer hashes than this are being computed (default: libuv's pool threads + 1). */
  busyHashes?: number;
}

interface Waiting {
  change: OutboxWrite;
  resolve: (r: EnqueueResult) => void;
  reject: (e: unknown) => void;
}

export class IntakeWriter {
  private pending: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  /** Hashes being computed for this writer right now (hashStarted / hashEnded). */
  private hashing = 0;
  /** Transactions written and changes they held (for metrics and tests). */
  private transactions = 0;
  private changes = 0;
  private readonly windowMs: number;
  private readonly maxBatch: number;
  private readonly busyHashes: number;

  constructor(
    private readonly write: (changes: readonly OutboxWrite[]) => EnqueueResult[],
    options: IntakeWriterOptions = {},
  ) {
    this.windowMs = Math.max(0, options.windowMs ?? DEFAULT_WINDOW_MS);
    this.maxBatch = Math.max(1, options.maxBatch ?? DEFAULT_MAX_BATCH);
    this.busyHashes = Math.max(1, options.busyHashes ?? hashPoolThreads() + 1);
  }

  /** Changes waiting for their transaction now, transactions written and changes written so far. */
  stats(): { pending: number; transactions: number; changes: number } {
    return { pending: this.pending.length, transactions: this.transactions, changes: this.changes };
  }

  /** A hash for a future submit() started: the writer waits for it rather than starving the pool. */
  hashStarted(): void {
    this.hashing++;
  }

  hashEnded(): void {
    this.hashing--;
    if (this.pending.length > 0 && this.hashing < this.busyHashes) this.flushSoon();
  }

  /** Resolves once the change is committed (or rejects when its transaction failed). */
  submit(change: OutboxWrite): Promise<EnqueueResult> {
    return new Promise<EnqueueResult>((resolve, reject) => {
      this.pending.push({ change, resolve, reject });
      if (this.pending.length >= this.maxBatch) this.flush();
      else if (this.hashing < this.busyHashes) this.flushSoon();
      // Not unref'd: a process must not exit with a change accepted but not yet written.
      else this.timer ??= setTimeout(() => this.flush(), this.windowMs);
    });
  }

  /** Writes what waits now (also used on stop). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    let results: EnqueueResult[];
    try {
      results = this.write(batch.map((w) => w.change));
    } catch (err) {
      // The transaction rolled back: nothing of this batch was written, and every caller hears so.
      for (const w of batch) w.reject(err);
      return;
    }
    this.transactions++;
    this.changes += batch.length;
    batch.forEach((w, i) => w.resolve(results[i]!));
  }

  private flushSoon(): void {
    this.immediate ??= setImmediate(() => this.flush());
  }
}
