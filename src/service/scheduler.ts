/**
 * The cycle schedule: never two cycles at once, the next one `intervalMs` after the last one ended,
 * and runNow() starts one at once (or returns the one in flight). What a cycle does is the
 * service's business: the scheduler only times it.
 */
import type { CycleOptions, CycleResult } from '../engine/cycle.js';

/** What a caller may ask of one cycle (the console's full sync, preview, approved deletions). */
export type CycleRequest = Omit<CycleOptions, 'onProgress' | 'passwords'>;

export class CycleScheduler {
  private running = false;
  private cycle: Promise<CycleResult | undefined> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private next: number | null = null;

  constructor(
    private readonly intervalMs: number,
    private readonly runCycle: (request?: CycleRequest) => Promise<CycleResult | undefined>,
    /** Called after each cycle, before the next one is scheduled. */
    private readonly afterEach: () => void,
  ) {}

  get inProgress(): boolean {
    return this.cycle !== undefined;
  }

  /** Epoch ms of the next scheduled cycle; null while one runs or when stopped. */
  get nextAt(): number | null {
    return this.next;
  }

  /** Starts scheduling with a cycle now (not awaited: see idle()). */
  start(): void {
    this.running = true;
    void this.runNow();
  }

  /**
   * Runs a cycle now, or returns the one in flight. Resolves undefined when skipped or stopped. With
   * a request (full sync, preview, approved deletions) a cycle in flight is waited for first, so the
   * request gets a cycle of its own.
   */
  runNow(request?: CycleRequest): Promise<CycleResult | undefined> {
    if (this.cycle) return request ? this.cycle.catch(() => undefined).then(() => this.runNow(request)) : this.cycle;
    if (!this.running) return Promise.resolve(undefined);
    this.clearTimer();
    const p = this.runCycle(request).finally(() => {
      this.cycle = undefined;
      this.afterEach();
      if (this.running) {
        this.next = Date.now() + this.intervalMs;
        this.timer = setTimeout(() => void this.runNow(), this.intervalMs);
      }
    });
    this.cycle = p;
    return p;
  }

  /** Resolves when no cycle is in flight. */
  async idle(): Promise<void> {
    while (this.cycle) await this.cycle.catch(() => undefined);
  }

  /** Schedules nothing more; a cycle in flight goes on (see settle()). */
  halt(): void {
    this.running = false;
    this.clearTimer();
  }

  /** Waits for the cycle in flight, at most timeoutMs; false when it did not finish in time. */
  async settle(timeoutMs: number): Promise<boolean> {
    if (!this.cycle) return true;
    let timedOut = false;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      this.cycle,
      new Promise<void>((resolve) => {
        t = setTimeout(() => {
          timedOut = true;
          resolve();
        }, timeoutMs);
      }),
    ]);
    clearTimeout(t);
    return !timedOut;
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.next = null;
  }
}
