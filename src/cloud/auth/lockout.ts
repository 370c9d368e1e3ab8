/**
 * Smart lockout for every credential check of the token endpoint (client secrets, account and
 * directory-user passwords), after Entra ID's: it stops a guesser without locking the real
 * client or user out where they work, and it cannot be raced.
 *
 * - Familiar addresses: an address the name signed in from successfully within `familiarMs` keeps
 *   its own counter. Every other address shares one "unfamiliar" counter per name. So failures
 *   from strangers (however many addresses they use) lock only the strangers, and the sync
 *   client keeps working from its usual address.
 * - Repeats do not count: the last `rememberedBadPasswords` wrong passwords per name are kept as
 *   keyed hashes (HMAC-SHA-256 under a random key of this database; the passwords themselves are
 *   never stored) bound to the stored credential. A repeat of one is refused without checking or
 *   counting it: the credential has not changed since it failed, so the answer is known. A changed
 *   credential changes the binding, so a password tried too early works once it is set.
 * - The attempt is reserved before the hash is checked: the reservation is synchronous once the
 *   counter is read (and read again if a check of it finished meanwhile), and a counter admits at
 *   most `threshold - failures` checks in flight on this node; later attempts wait for those to
 *   finish and then see the lockout. So the threshold holds under any concurrency on one node; on
 *   several nodes sharing PostgreSQL each counts into the same row (locked while it is updated), so
 *   a lockout counted on one node holds on every other, and concurrent checks on n nodes can pass the
 *   threshold by at most n - 1 before it locks.
 * - After `threshold` failures within `failureWindowMs` a counter locks for `lockoutMs`, doubling
 *   with each further lockout up to `maxLockoutMs`. While locked nothing is checked.
 *
 * Unknown names are counted like known ones, so a lockout reveals nothing about existence. State
 * is in the database (a restart forgets nothing) and bounded: per name at most `maxFamiliarAddresses`
 * addresses and `rememberedBadPasswords` digests; `prune()` drops what can no longer matter and
 * caps each table at `maxRows`.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Migration } from '../../store/database.js';
import type { Sql } from '../store/sql.js';

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
  {
    // signin_lockout.ip now names a counter: a familiar address, or '~unfamiliar'. The old
    // all-addresses counter ('*') is gone: unfamiliar addresses share one counter instead.
    id: 'cloud-lockout/002-smart-familiar-repeats',
    sql: `
      DELETE FROM signin_lockout WHERE ip = '*';
      CREATE TABLE signin_familiar (
        name TEXT NOT NULL,
        ip TEXT NOT NULL,
        last_success_at INTEGER NOT NULL,
        PRIMARY KEY (name, ip)
      ) WITHOUT ROWID;
      CREATE TABLE signin_bad_password (
        name TEXT NOT NULL,
        digest BLOB NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (name, digest)
      );
      CREATE TABLE signin_lockout_key (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        key BLOB NOT NULL
      );
    `,
  },
];

/** The same on PostgreSQL; `seq` orders remembered wrong passwords as SQLite's rowid does. */
export const lockoutPgMigrations: Migration[] = [
  {
    id: 'cloud-lockout/001',
    sql: `
      CREATE TABLE signin_lockout (
        name TEXT COLLATE "C" NOT NULL,
        ip TEXT COLLATE "C" NOT NULL,
        failures INTEGER NOT NULL,
        first_failure_at BIGINT NOT NULL,
        lockouts INTEGER NOT NULL DEFAULT 0,
        locked_until BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (name, ip)
      );
    `,
  },
  {
    id: 'cloud-lockout/002-smart-familiar-repeats',
    sql: `
      CREATE TABLE signin_familiar (
        name TEXT COLLATE "C" NOT NULL,
        ip TEXT COLLATE "C" NOT NULL,
        last_success_at BIGINT NOT NULL,
        PRIMARY KEY (name, ip)
      );
      CREATE TABLE signin_bad_password (
        seq BIGSERIAL,
        name TEXT COLLATE "C" NOT NULL,
        digest BYTEA NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (name, digest)
      );
      CREATE INDEX signin_bad_password_seq ON signin_bad_password (seq);
      CREATE TABLE signin_lockout_key (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        key BYTEA NOT NULL
      );
    `,
  },
];

export interface LockoutPolicy {
  /** Counted failures of one counter before it locks (default 10). */
  threshold: number;
  /** First lockout of a counter (default 60 s); each next one doubles. */
  lockoutMs: number;
  /** Cap of a lockout (default 1 h). */
  maxLockoutMs: number;
  /** Failures older than this stop counting; a lockout history older than this is forgotten (default 1 h). */
  failureWindowMs: number;
  /** How long a successful sign-in keeps its address familiar (default 30 days). */
  familiarMs: number;
  /** Familiar addresses kept per name, the most recent ones (default 20). */
  maxFamiliarAddresses: number;
  /** Wrong passwords per name whose repeats do not count (default 3, as Entra). */
  rememberedBadPasswords: number;
  /**
   * Cap of each table, however many names are sprayed (default 100,000 rows): `prune()` drops the
   * oldest unlocked counters, remembered wrong passwords and familiar addresses beyond it.
   */
  maxRows: number;
}

export const DEFAULT_LOCKOUT_POLICY: LockoutPolicy = {
  threshold: 10,
  lockoutMs: 60_000,
  maxLockoutMs: 3_600_000,
  failureWindowMs: 3_600_000,
  familiarMs: 30 * 86_400_000,
  maxFamiliarAddresses: 20,
  rememberedBadPasswords: 3,
  maxRows: 100_000,
};

/** The counter shared by every address the name has not signed in from. */
export const UNFAMILIAR = '~unfamiliar';

export interface Attempt {
  /** Lower-cased key of the name, e.g. `client:idsync`. */
  name: string;
  ip: string;
  /** What was presented. Only its keyed hash is ever stored. */
  secret: string;
  /**
   * The stored credential it is checked against (e.g. the stored hash), or '' when there is none.
   * It binds remembered wrong passwords to this credential: once it changes they are forgotten.
   */
  credentialStamp: string;
}

/** What `begin` decided. Only `check` lets the caller check the secret, and it must `finish`. */
export type Admission =
  | { kind: 'locked'; counter: string; until: number; remainingSeconds: number }
  | { kind: 'repeat' }
  | { kind: 'check'; counter: string; finish: (outcome: 'success' | 'failure' | 'void') => Promise<void> };

interface CounterRow {
  failures: number;
  first_failure_at: number;
  lockouts: number;
  locked_until: number;
}

interface InFlight {
  done: Promise<void>;
  release: () => void;
}

export class Lockout {
  readonly policy: LockoutPolicy;
  /** Rowid order (SQLite) or seq (PostgreSQL): the order in which wrong passwords were counted. */
  private readonly seq: string;
  /** Bumped when a check of a counter finishes: a decision read before it must be made again. */
  private readonly finished = new Map<string, number>();
  /** Checks in flight per counter (`name\0counter`): reserved, not yet counted. */
  private readonly pending = new Map<string, Set<InFlight>>();
  /** The same secret for the same name already being checked: wait for it instead of checking twice. */
  private readonly sameSecret = new Map<string, InFlight>();

  private constructor(
    private readonly db: Sql,
    private readonly key: Buffer,
    policy: Partial<LockoutPolicy>,
    private readonly now: () => number,
  ) {
    this.policy = { ...DEFAULT_LOCKOUT_POLICY, ...policy };
    this.seq = db.dialect === 'sqlite' ? 'rowid' : 'seq';
  }

  /** The key of the remembered-password digests is the database's: every node computes the same digest. */
  static async open(db: Sql, policy: Partial<LockoutPolicy> = {}, now: () => number = Date.now): Promise<Lockout> {
    await db.run('INSERT INTO signin_lockout_key (id, key) VALUES (1, ?) ON CONFLICT (id) DO NOTHING', [randomBytes(32)]);
    const row = await db.get<{ key: Buffer }>('SELECT key FROM signin_lockout_key WHERE id = 1');
    return new Lockout(db, row!.key, policy, now);
  }

  /**
   * Decides whether a secret may be checked now, and reserves the check when it may. Waits while
   * the counter's remaining allowance is taken by checks in flight.
   */
  async begin(a: Attempt): Promise<Admission> {
    const name = a.name.toLowerCase();
    const digest = this.digest(name, a.credentialStamp, a.secret);
    const secretKey = `${name}\0${digest.toString('hex')}`;
    for (;;) {
      const t = this.now();
      const counter = await this.counterFor(name, a.ip, t);
      const counterKey = `${name}\0${counter}`;
      const generation = this.finished.get(counterKey) ?? 0;
      const row = await this.counterRow(this.db, name, counter);
      if (row && row.locked_until > t) return { kind: 'locked', counter, until: row.locked_until, remainingSeconds: Math.ceil((row.locked_until - t) / 1000) };
      if (await this.isRememberedBad(name, digest, t)) return { kind: 'repeat' };
      // From here to the return or await, nothing yields: the decision and the reservation are one step.
      // A check of this counter that finished while we read counted a failure we did not see: read again.
      if ((this.finished.get(counterKey) ?? 0) !== generation) continue;
      const same = this.sameSecret.get(secretKey);
      if (same) {
        await same.done;
        continue;
      }
      const inFlight = this.pending.get(counterKey) ?? new Set<InFlight>();
      const failures = row && row.first_failure_at >= t - this.policy.failureWindowMs ? row.failures : 0;
      // (With nothing in flight, a counter at the threshold, e.g. after the threshold was lowered, locks on its next failure.)
      if (inFlight.size > 0 && failures + inFlight.size >= this.policy.threshold) {
        await Promise.race([...inFlight].map((f) => f.done));
        continue;
      }
      let release = () => {};
      const done = new Promise<void>((resolve) => (release = resolve));
      const flight: InFlight = { done, release };
      inFlight.add(flight);
      this.pending.set(counterKey, inFlight);
      this.sameSecret.set(secretKey, flight);
      let finished = false;
      const finish = async (outcome: 'success' | 'failure' | 'void') => {
        if (finished) return;
        finished = true;
        try {
          if (outcome === 'failure') await this.countFailure(name, counter, digest);
          else if (outcome === 'success') await this.countSuccess(name, a.ip, counter);
        } finally {
          this.finished.set(counterKey, (this.finished.get(counterKey) ?? 0) + 1);
          if (this.finished.size > 10_000) this.finished.clear();
          inFlight.delete(flight);
          if (inFlight.size === 0) this.pending.delete(counterKey);
          this.sameSecret.delete(secretKey);
          release();
        }
      };
      return { kind: 'check', counter, finish };
    }
  }

  /** The lockout of the counter that `ip` would use for `name`, if any (for tests and tools). */
  async state(name: string, ip: string): Promise<{ locked: false } | { locked: true; counter: string; until: number }> {
    const key = name.toLowerCase();
    const t = this.now();
    const counter = await this.counterFor(key, ip, t);
    const row = await this.counterRow(this.db, key, counter);
    return row && row.locked_until > t ? { locked: true, counter, until: row.locked_until } : { locked: false };
  }

  /** Counters locked now, for the admin portal (src/cloud/portal/): the one owner of these tables answers. */
  async lockedNow(): Promise<Array<{ name: string; ip: string; failures: number; lockedUntil: number }>> {
    const rows = await this.db.all<{ name: string; ip: string; failures: number; locked_until: number }>(
      'SELECT name, ip, failures, locked_until FROM signin_lockout WHERE locked_until > ? ORDER BY name, ip',
      [this.now()],
    );
    return rows.map((r) => ({ name: r.name, ip: r.ip, failures: r.failures, lockedUntil: r.locked_until }));
  }

  /** An administrator's unlock: clears every counter of `name` (and its remembered wrong passwords). Returns the counters cleared. */
  async unlock(name: string): Promise<number> {
    const key = name.toLowerCase();
    return this.db.transaction(async (tx) => {
      const n = await tx.run('DELETE FROM signin_lockout WHERE name = ?', [key]);
      await tx.run('DELETE FROM signin_bad_password WHERE name = ?', [key]);
      return n;
    });
  }

  /** Forgets what can no longer matter (stale counters, old familiar addresses and wrong passwords), then caps each table. */
  async prune(): Promise<number> {
    const t = this.now();
    const windowStart = t - this.policy.failureWindowMs;
    const cap = this.policy.maxRows;
    // "Everything after the first `cap` rows": SQLite needs a LIMIT before OFFSET (-1: no limit).
    const rest = this.db.dialect === 'sqlite' ? 'LIMIT -1 OFFSET ?' : 'OFFSET ?';
    return this.db.transaction(
      async (tx) =>
        (await tx.run('DELETE FROM signin_lockout WHERE first_failure_at < ? AND locked_until < ?', [windowStart, windowStart])) +
        (await tx.run('DELETE FROM signin_familiar WHERE last_success_at < ?', [t - this.policy.familiarMs])) +
        (await tx.run('DELETE FROM signin_bad_password WHERE at < ?', [windowStart])) +
        // A lockout in force is never dropped: under a flood, the oldest failures go first.
        (await tx.run(
          `DELETE FROM signin_lockout WHERE locked_until <= ? AND (name, ip) IN (
             SELECT name, ip FROM signin_lockout WHERE locked_until <= ? ORDER BY first_failure_at DESC ${rest})`,
          [t, t, cap],
        )) +
        (await tx.run(`DELETE FROM signin_bad_password WHERE ${this.seq} IN (SELECT ${this.seq} FROM signin_bad_password ORDER BY ${this.seq} DESC ${rest})`, [cap])) +
        (await tx.run(`DELETE FROM signin_familiar WHERE (name, ip) IN (SELECT name, ip FROM signin_familiar ORDER BY last_success_at DESC ${rest})`, [cap])),
    );
  }

  private digest(name: string, stamp: string, secret: string): Buffer {
    // Length-prefixed fields: no two (name, stamp, secret) triples share an input.
    const h = createHmac('sha256', this.key);
    for (const part of [name, stamp, secret]) {
      const b = Buffer.from(part, 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32BE(b.length);
      h.update(len).update(b);
    }
    return h.digest();
  }

  private async counterFor(name: string, ip: string, t: number): Promise<string> {
    const familiar = await this.db.get('SELECT 1 AS x FROM signin_familiar WHERE name = ? AND ip = ? AND last_success_at >= ?', [name, ip, t - this.policy.familiarMs]);
    return familiar ? ip : UNFAMILIAR;
  }

  private async counterRow(q: Sql, name: string, counter: string, forUpdate = ''): Promise<CounterRow | undefined> {
    return q.get<CounterRow>(`SELECT failures, first_failure_at, lockouts, locked_until FROM signin_lockout WHERE name = ? AND ip = ?${forUpdate}`, [name, counter]);
  }

  /** Constant time over the remembered digests: every one is compared, no early exit. */
  private async isRememberedBad(name: string, digest: Buffer, t: number): Promise<boolean> {
    const rows = await this.db.all<{ digest: Buffer }>('SELECT digest FROM signin_bad_password WHERE name = ? AND at >= ?', [name, t - this.policy.failureWindowMs]);
    let match = false;
    for (const { digest: d } of rows) if (d.length === digest.length && timingSafeEqual(d, digest)) match = true;
    return match;
  }

  private async countFailure(name: string, counter: string, digest: Buffer): Promise<void> {
    const t = this.now();
    const p = this.policy;
    // On SQLite a write transaction is BEGIN IMMEDIATE (store/sqlite.ts): this one reads the counter
    // and then writes it, and the SCIM worker's connection committing in between would otherwise
    // fail the write at once with SQLITE_BUSY_SNAPSHOT.
    await this.db.transaction(async (tx) => {
      // Another node may count into the same row: lock it (PostgreSQL) and serialise the first insert.
      await tx.lock(`idsync-lockout:${name}`);
      const r = await this.counterRow(tx, name, counter, tx.forUpdate);
      const windowStart = t - p.failureWindowMs;
      const inWindow = r !== undefined && r.first_failure_at >= windowStart;
      let failures = inWindow ? r.failures + 1 : 1;
      let first = inWindow ? r.first_failure_at : t;
      // The lockout history fades once the last lockout ended more than a window ago.
      let lockouts = r && r.locked_until >= windowStart ? r.lockouts : 0;
      let lockedUntil = r?.locked_until ?? 0;
      if (failures >= p.threshold) {
        lockedUntil = t + Math.min(p.lockoutMs * 2 ** lockouts, p.maxLockoutMs);
        lockouts += 1;
        failures = 0;
        first = t;
      }
      await tx.run(
        `INSERT INTO signin_lockout (name, ip, failures, first_failure_at, lockouts, locked_until) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (name, ip) DO UPDATE SET failures = excluded.failures, first_failure_at = excluded.first_failure_at,
           lockouts = excluded.lockouts, locked_until = excluded.locked_until`,
        [name, counter, failures, first, lockouts, lockedUntil],
      );
      // A new row (a new rowid or seq) for a repeat: that order is the order of the failures.
      if (tx.dialect === 'sqlite') await tx.run('INSERT OR REPLACE INTO signin_bad_password (name, digest, at) VALUES (?, ?, ?)', [name, digest, t]);
      else {
        await tx.run('DELETE FROM signin_bad_password WHERE name = ? AND digest = ?', [name, digest]);
        await tx.run('INSERT INTO signin_bad_password (name, digest, at) VALUES (?, ?, ?)', [name, digest, t]);
      }
      await tx.run(
        `DELETE FROM signin_bad_password WHERE name = ? AND digest NOT IN (SELECT digest FROM signin_bad_password WHERE name = ? ORDER BY ${this.seq} DESC LIMIT ?)`,
        [name, name, p.rememberedBadPasswords],
      );
    });
  }

  private async countSuccess(name: string, ip: string, counter: string): Promise<void> {
    const t = this.now();
    await this.db.transaction(async (tx) => {
      // A success clears the counter of a familiar address; strangers' failures stay counted.
      if (counter !== UNFAMILIAR) await tx.run('DELETE FROM signin_lockout WHERE name = ? AND ip = ?', [name, counter]);
      await tx.run('INSERT INTO signin_familiar (name, ip, last_success_at) VALUES (?, ?, ?) ON CONFLICT (name, ip) DO UPDATE SET last_success_at = excluded.last_success_at', [name, ip, t]);
      await tx.run(
        'DELETE FROM signin_familiar WHERE name = ? AND ip NOT IN (SELECT ip FROM signin_familiar WHERE name = ? ORDER BY last_success_at DESC, ip LIMIT ?)',
        [name, name, this.policy.maxFamiliarAddresses],
      );
    });
  }
}
