/**
 * The write fence of a leader (docs/ha.md). Several `idsync serve` nodes share one PostgreSQL; only
 * the holder of the leader lease may write a cycle's or a delivery's results. The service runs the
 * cycle and the delivery loop inside `runFenced(fence, …)`; everything they call asynchronously
 * sees the fence through AsyncLocalStorage, so the writers need no extra parameter:
 *  - the PostgreSQL store runs `check` first inside each write transaction (a row while the lease
 *    still holds this token) and refuses the write (LEASE_LOST) when it returns none;
 *  - the cloud client sends the token with every request (`FENCING_TOKEN_HEADER`), and the cloud
 *    directory refuses a token lower than the highest it has seen.
 * Work outside the fence (password change notifications, agent batches, status) is not fenced: a
 * standby accepts it into the shared outbox. Nor are the events that say why work failed or stopped
 * (`outsideFence`, through EventLog.tryEmit): a deposed leader must still be able to say so. Other
 * events of fenced work stay fenced: the first event of a delivery batch is the database's check
 * that the term still holds before anything is sent.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** The header a fenced request to the cloud directory carries: the leader's token, in decimal. */
export const FENCING_TOKEN_HEADER = 'x-idsync-fencing-token';

export interface WriteFence {
  /** The lease's monotonically increasing token this node got when it became the leader. */
  readonly token: number;
  /** This node's holder id (node name and process instance). */
  readonly holder: string;
  /**
   * Throws LEASE_LOST unless this node still holds the lease by its own (monotonic) clock. Cheap:
   * no database round trip; the database check is the authority.
   */
  assertHeld(): void;
  /**
   * The statement a write transaction runs first: one row while the lease row holds this token,
   * none once another node took it. It locks the row (FOR KEY SHARE) until the transaction ends, so
   * a takeover (which locks it FOR UPDATE) waits for a write already checked, and a deposed
   * leader's write finds no row.
   */
  readonly check: { readonly sql: string; readonly params: readonly unknown[] };
}

const current = new AsyncLocalStorage<WriteFence | undefined>();

/** Runs fn (and everything it starts asynchronously) under the fence. */
export function runFenced<T>(fence: WriteFence, fn: () => T): T {
  return current.run(fence, fn);
}

/**
 * Runs fn outside any fence, even when called from fenced work: a write of fn that is not part of
 * a fenced transaction already in progress is not checked against the lease.
 */
export function outsideFence<T>(fn: () => T): T {
  return current.run(undefined, fn); // not exit(): experimental in Node 20
}

/** The fence of the work in progress, or undefined outside any (a standby's intake, a one-node store). */
export function currentFence(): WriteFence | undefined {
  return current.getStore();
}
