/**
 * The overlapped cycle: import pages flow into sync and export while the next page is read, so
 * the cloud works while the engine works (issue 13). Import reads one page ahead
 * (import.ts readAhead); after each staged page the sync applies what is pending (one pass, on the
 * main thread, inside the page's transaction: one commit for both) and wakes the early export, which sends the pending users
 * to the cloud between pages. Groups, deletions and uniqueness retries wait for the ordinary export
 * at the end (Exporter.run), which also sends any user the early pass did not.
 *
 * Back-pressure: the source is read at most one page ahead, the cloud has at most
 * `cloud.concurrency` Bulk requests in flight, and everything in between is durable state in
 * SQLite (pending flags), never a queue in memory. Crash safety is the stages' own: a page and its
 * sync commit together or not at all, and an object leaves the pending set only after the cloud
 * answered for the version it was sent (Exporter.settle).
 *
 * cycle.ts uses it only where the order of the stages cannot change the outcome (see there).
 */
import type { StagedProjection } from './connector-space.js';
import type { Exporter } from './export.js';
import type { StepHandle } from './runs.js';
import type { Synchronizer } from './sync.js';

export class EarlyExport {
  private syncError: unknown;
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
      if (!this.dirty) await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}
