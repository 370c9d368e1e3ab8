/**
 * The overlapped cycle: import pages flow into sync and export while the next page is read, so
 * the cloud works while the engine works (issue 13). Import reads one page ahead
 * (import.ts readAhead); after each staged page — each part of a heavy one (import.ts byWeight) —
 * the sync applies what is pending (one pass, on the main thread, inside the same transaction: one
 * commit for both) and wakes the early export, which sends the pending users
 * to the cloud between pages. Groups, deletions and uniqueness retries wait for the ordinary export
 * at the end (Exporter.run), which also sends any user the early pass did not.
 *
 * Back-pressure: the source is read at most one page ahead, the cloud has at most
 * `cloud.concurrency` Bulk requests in flight, the import stays within EXPORT_LEAD users of what
 * the cloud answered (room()), and everything in between is durable state in SQLite (pending
 * flags), never a queue in memory. Crash safety is the stages' own: a page (or a part of one) and
 * its sync commit together or not at all, and an object leaves the pending set only after the
 * cloud answered for the version it was sent (Exporter.settle).
 *
 * cycle.ts uses it only where the order of the stages cannot change the outcome (see there).
 */
import type { StagedProjection } from './connector-space.js';
import type { Exporter } from './export.js';
import type { StepHandle } from './runs.js';
import type { Synchronizer } from './sync.js';

/**
 * How far the import may run ahead of the cloud: users staged and not yet answered by the early
 * export. The main thread stages, syncs and prepares the export; unbounded, the import takes it
 * for itself while the cloud idles, and the users pile up for after the import (the 100k cycle:
 * 40,000 users exported during a 7 s import, 60,000 after it). Three of the export's chunks: the
 * cloud always has the next one while one is prepared and settled.
 */
export const EXPORT_LEAD = 6000;

/**
 * The longest the import waits for room at a time. The next page of the directory's paged search
 * is asked for already (its connection waits for it), and a cloud that throttles may take minutes
 * for a lead's worth of users: a connection idle that long is closed by AD (MaxConnIdleTime, 15
 * minutes by default), a firewall or slapd's idletimeout. Past this the import goes on, a part at a
 * time; the lead is a balance of the event loop's time, not a limit anything relies on.
 */
export const ROOM_WAIT_MAX_MS = 5_000;

export class EarlyExport {
  private syncError: unknown;
  /** Users staged by the imports, and objects answered by the cloud in the early export (room()). */
  private stagedUsers = 0;
  private answered = 0;
  private roomWaiter: (() => void) | undefined;
  private exportError: unknown;
  private importing = true;
  /** Whether a page was synced since the exporter's pass began (then it passes again at once). */
  private dirty = false;
  private wake: (() => void) | undefined;
  private readonly loop: Promise<void>;

  constructor(
    private readonly sync: Synchronizer,
    private readonly syncStep: StepHandle,
    private readonly exporter: Exporter,
    private readonly exportStep: StepHandle,
    /** Runs before the first cloud write (the tenant check); a failure stops the early export. */
    before: () => Promise<void>,
  ) {
    this.loop = this.run(before).catch((err: unknown) => {
      this.exportError = err;
      this.freeRoom();
    });
  }

  /**
   * After each staged import page, inside its transaction (the page and its sync commit together):
   * sync it, and wake the exporter (which runs after the commit: it is asynchronous).
   */
  staged(): void {
    if (this.syncError !== undefined) return; // reported by finishSync(), as the sync step's failure
    try {
      this.sync.pass(this.syncStep);
    } catch (err) {
      this.syncError = err;
      return;
    }
    this.dirty = true;
    this.wakeUp();
  }

  /**
   * The sync of new objects as the import stages them into an empty connector space, a page at a
   * time in the page's transaction (Synchronizer.projectStaged); after a sync failure, nothing is projected.
   */
  projection(connector: string): StagedProjection {
    return {
      project: (objects) => (this.syncError === undefined ? this.sync.projectStaged(connector, objects, this.exporter.parsed) : []),
      linked: (objects) => this.sync.stagedLinked(connector, objects, this.syncStep),
    };
  }

  /**
   * Awaited by the import after each staged part of a page (`users` in it): resolves once the early
   * export is within EXPORT_LEAD users of the import (or has stopped: then nothing holds the import
   * back), or after ROOM_WAIT_MAX_MS. Users only: they are what the early export sends as they
   * come; groups wait for the end anyway, and holding the import for them would only hold the
   * staging of the next groups.
   */
  async room(users: number): Promise<void> {
    this.stagedUsers += users;
    const deadline = performance.now() + ROOM_WAIT_MAX_MS;
    while (this.stagedUsers - this.answered > EXPORT_LEAD && this.exportError === undefined && this.syncError === undefined) {
      const left = deadline - performance.now();
      if (left <= 0) return;
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.roomWaiter = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** The export's progress: objects the cloud answered so far. */
  exported(done: number): void {
    this.answered = done;
    if (this.stagedUsers - this.answered <= EXPORT_LEAD) this.freeRoom();
  }

  private freeRoom(): void {
    const w = this.roomWaiter;
    this.roomWaiter = undefined;
    w?.();
  }

  /** After the imports: the last sync pass (deletions a full import found, anything not synced yet). */
  finishSync(): void {
    if (this.syncError !== undefined) throw this.syncError;
    this.sync.pass(this.syncStep);
  }

  /** Lets the early export finish its pass; rethrows what stopped it (the export step's failure). */
  async drain(): Promise<void> {
    this.importing = false;
    this.wakeUp();
    await this.loop;
    if (this.exportError !== undefined) throw this.exportError;
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async run(before: () => Promise<void>): Promise<void> {
    await before();
    for (;;) {
      this.dirty = false;
      await this.exporter.exportPendingUsers(this.exportStep);
      if (!this.importing) return;
      if (this.dirty) continue;
      // Everything staged so far went out (or is not for the early export: groups, objects the
      // cloud refused or that did not change): the lead starts again from here.
      this.stagedUsers = this.answered;
      this.freeRoom();
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}
