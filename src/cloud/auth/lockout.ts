/**
 * Smart lockout for password and client-secret checks, persisted in SQLite (a restart resets
 * nothing).
 *
 * Two kinds of counters per sign-in name (lower-cased; unknown names are counted like known ones,
 * so a lockout reveals nothing about existence):
 *
 * - per (name, client address): after `threshold` failures within `failureWindowMs` that address
 *   is locked for `lockoutMs`, doubling with each further lockout up to `maxLockoutMs`. A success
 *   from the address clears its counter. This stops a guesser without touching the real user,
 *   who signs in from elsewhere.
 * - per name, all addresses together (`*`): after `globalThreshold` failures within the window
 *   the name is locked everywhere, but only for the short, fixed `globalLockoutMs`, so no
 *   attacker can keep a user out indefinitely; it only slows distributed guessing.
 *
 * Attempts made while locked are refused without checking the password and do not count.
 */
import type { Database, Migration } from '../../store/database.js';

export const lockoutMigrations: Migration[] = [
  {
    id: 'cloud-lockout/001',
    sql: `
      CREATE TABLE signin_lockout (
        name TEXT NOT NULL,
        ip TEXT NOT NULL,
        failures INTEGER NOT NULL,
        first_failure_at INTEGER NOT NULL,
        lockouts INTEGER NOT NULL DEFAULT 0,
        locked_until INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (name, ip)
      ) WITHOUT ROWID;
    `,
  },
];

export interface LockoutPolicy {
  /** Failures from one address before it is locked (default 10). */
  threshold: number;
  /** First lockout of an address (default 60 s); each next one doubles. */
  lockoutMs: number;
  /** Cap of an address lockout (default 1 h). */
  maxLockoutMs: number;
  /** Failures from all addresses together before the name is locked everywhere (default 50). */
  globalThreshold: number;
  /** That lockout's fixed, short duration (default 60 s). */
  globalLockoutMs: number;
  /** Failures older than this stop counting; a lockout history older than this is forgotten (default 1 h). */
  failureWindowMs: number;
}

export const DEFAULT_LOCKOUT_POLICY: LockoutPolicy = {
  threshold: 10,
  lockoutMs: 60_000,
  maxLockoutMs: 3_600_000,
  globalThreshold: 50,
  globalLockoutMs: 60_000,
  failureWindowMs: 3_600_000,
};

const ALL = '*';

export type LockState = { locked: false } | { locked: true; scope: 'address' | 'global'; until: number };

interface Row {
  failures: number;
  first_failure_at: number;
  lockouts: number;
  locked_until: number;
}

export class Lockout {
  readonly policy: LockoutPolicy;

  constructor(
    private readonly db: Database,
    policy: Partial<LockoutPolicy> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.policy = { ...DEFAULT_LOCKOUT_POLICY, ...policy };
  }

  private row(name: string, ip: string): Row | undefined {
    return this.db.prepare('SELECT failures, first_failure_at, lockouts, locked_until FROM signin_lockout WHERE name = ? AND ip = ?').get(name, ip) as
      | Row
      | undefined;
  }

  check(name: string, ip: string): LockState {
    const key = name.toLowerCase();
    const t = this.now();
    const own = this.row(key, ip);
    if (own && own.locked_until > t) return { locked: true, scope: 'address', until: own.locked_until };
    const all = this.row(key, ALL);
    if (all && all.locked_until > t) return { locked: true, scope: 'global', until: all.locked_until };
    return { locked: false };
  }

  /** Counts a failed attempt; returns the state it leads to. */
  recordFailure(name: string, ip: string): LockState {
    const key = name.toLowerCase();
    const t = this.now();
    const p = this.policy;
    return this.db.transaction((): LockState => {
      const own = this.bump(key, ip, t, p.threshold, (lockouts) => Math.min(p.lockoutMs * 2 ** lockouts, p.maxLockoutMs));
      const all = this.bump(key, ALL, t, p.globalThreshold, () => p.globalLockoutMs);
      if (own > t) return { locked: true, scope: 'address', until: own };
      if (all > t) return { locked: true, scope: 'global', until: all };
      return { locked: false };
    })();
  }

  /** Adds one failure to a counter; locks it when it reaches the threshold. Returns locked_until. */
  private bump(name: string, ip: string, t: number, threshold: number, duration: (previousLockouts: number) => number): number {
    const r = this.row(name, ip);
    const windowStart = t - this.policy.failureWindowMs;
    const inWindow = r !== undefined && r.first_failure_at >= windowStart;
    let failures = inWindow ? r.failures + 1 : 1;
    let first = inWindow ? r.first_failure_at : t;
    // The lockout history fades once the last lockout ended more than a window ago.
    let lockouts = r && r.locked_until >= windowStart ? r.lockouts : 0;
    let lockedUntil = r?.locked_until ?? 0;
    if (failures >= threshold) {
      lockedUntil = t + duration(lockouts);
      lockouts += 1;
      failures = 0;
      first = t;
    }
    this.db
      .prepare(
        `INSERT INTO signin_lockout (name, ip, failures, first_failure_at, lockouts, locked_until) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (name, ip) DO UPDATE SET failures = excluded.failures, first_failure_at = excluded.first_failure_at,
           lockouts = excluded.lockouts, locked_until = excluded.locked_until`,
      )
      .run(name, ip, failures, first, lockouts, lockedUntil);
    return lockedUntil;
  }

  /** A success from an address clears that address's counter (not the all-addresses one). */
  recordSuccess(name: string, ip: string): void {
    this.db.prepare('DELETE FROM signin_lockout WHERE name = ? AND ip = ?').run(name.toLowerCase(), ip);
  }

  /** Forgets counters that can no longer matter. */
  prune(): number {
    const windowStart = this.now() - this.policy.failureWindowMs;
    return this.db.prepare('DELETE FROM signin_lockout WHERE first_failure_at < ? AND locked_until < ?').run(windowStart, windowStart).changes;
  }
}
