/**
 * The durable password outbox (DESIGN.md §1 point 5): one row per user in idsync.db (phs_users),
 * holding what is known of the user — the latest OrgId hash sealed with the data key, the NT hash's
 * keyed fingerprint — and, while that hash waits for the cloud, its delivery (next_attempt_at set:
 * "in the outbox"). One row, so a change writes one B-tree and a small index, not four (issue 13).
 * Guarantees:
 *  - latest change wins: a newer changedAt replaces a queued older one; an older one never
 *    replaces a newer one (neither in the outbox nor in the last-known state);
 *  - a row leaves the outbox only when the cloud answered Success for that very version (a change
 *    that arrives while its predecessor is in flight bumps the version and stays);
 *  - every write is one SQLite transaction (WAL): a SIGKILL loses nothing that was accepted.
 *    Many changes may share one transaction (enqueueMany: the import path's batches, the
 *    notification path's coalescing window in intake.ts); each is accepted only after its commit.
 */
import { ConnectorSpaceUsers } from '../engine/connector-space-users.js';
import type { Database } from '../store/database.js';
import { MAX_CLOCK_SKEW_MS } from './hash.js';
import type { PasswordKeys } from './keys.js';

export interface OutboxItem {
  anchor: string;
  connector: string;
  /** The OrgId hash, decrypted (undefined when the row cannot be opened with this key). */
  hash: string | undefined;
  changedAt: string;
  /** When this version was queued (the status records of its outcomes carry it). */
  queuedAt: string;
  version: number;
  /**
   * This write of the row: its seal's random IV. With `version` and `queuedAt` it names one write,
   * so an answer about it never touches a row deleted and queued again meanwhile (whose version
   * starts at 1 again).
   */
  writeId: Buffer;
  attempts: number;
  source: string | null;
}

/** The write of an outbox row a delivery took (what complete and retry act on). */
export type OutboxWriteRef = Pick<OutboxItem, 'anchor' | 'connector' | 'changedAt' | 'version' | 'queuedAt' | 'writeId'>;

interface Row {
  anchor: string;
  connector: string;
  hash_ct: Buffer;
  hash_iv: Buffer;
  hash_tag: Buffer;
  key_id: string;
  changed_at: string;
  queued_at: string;
  version: number;
  attempts: number;
  source: string | null;
}

export type EnqueueResult = 'queued' | 'stale';

/** One change for enqueueMany. */
export interface OutboxWrite {
  connector: string;
  anchor: string;
  /** The OrgId hash (sealed before it is written). */
  hash: string;
  /** When the change happened at the source: an older change never replaces a newer one. */
  changedAt: Date;
  source: string | null;
  /** Keyed fingerprint of the NT hash, when the source gave one (polling sources compare it). */
  fp?: Buffer;
  /**
   * Dated by its arrival here (a notification), not by the source: it is the newest change known of
   * its user, so it is dated no earlier than 1 ms after the last known one. (A clock set back
   * between two notifications of one user must not make the second one "older" and drop it.)
   */
  arrival?: boolean;
}

export class Outbox {
  private readonly upsert;
  /** enqueueMany's transaction, made once (better-sqlite3 builds five wrapper functions per transaction()). */
  private readonly enqueueTx: (changes: readonly OutboxWrite[], nowMs: number) => EnqueueResult[];
  private readonly requeueStmt;
  private readonly dueStmt;
  private readonly completeStmt;
  private readonly retryStmt;
  private readonly dueAfterOutageStmt;
  private readonly fpGet;
  private readonly fpMany;
  private readonly fpSet;
  private readonly knownAt;
  /** Who still exists in a connector space (the engine owns cs_objects); made on first use. */
  private csUsers: ConnectorSpaceUsers | undefined;

  constructor(
    private readonly db: Database,
    private readonly keys: PasswordKeys,
    private readonly now: () => number = Date.now,
  ) {
    // One statement decides "newer than what we know", writes the last known state (and the NT
    // fingerprint, when the source gave one) and queues the change: no read-then-write per change.
    // A stored date beyond the allowed clock skew (written before dates were bounded, from a DC
    // whose clock ran ahead) never blocks a real change.
    // A change queued while an older one waits takes its place with the next version; after a
    // delivery the row's versions start at 1 again (queued_at and the seal's IV tell them apart).
    // Two connectors that know one anchor (the same directory configured twice) each keep their
    // row; the cloud keeps the newest of their changes, and complete() ends the older ones.
    this.upsert = db.prepare<[string, string, Buffer | null, Buffer, Buffer, Buffer, string, string, string, string, number, string | null, string]>(
      `INSERT INTO phs_users (anchor, connector, nt_fp, hash_ct, hash_iv, hash_tag, key_id, changed_at, updated_at, queued_at, version, attempts, next_attempt_at, last_error, source)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 0, ?, NULL, ?)
       ON CONFLICT (anchor, connector) DO UPDATE SET nt_fp = coalesce(excluded.nt_fp, phs_users.nt_fp), hash_ct = excluded.hash_ct,
         hash_iv = excluded.hash_iv, hash_tag = excluded.hash_tag, key_id = excluded.key_id, changed_at = excluded.changed_at,
         updated_at = excluded.updated_at, queued_at = excluded.queued_at,
         version = CASE WHEN phs_users.next_attempt_at IS NULL THEN 1 ELSE phs_users.version + 1 END,
         attempts = 0, next_attempt_at = excluded.next_attempt_at, last_error = NULL, source = excluded.source
       WHERE phs_users.changed_at IS NULL OR phs_users.changed_at <= excluded.changed_at OR phs_users.changed_at > ?`,
    );
    // The last known hash queued again as it is (a resync, a new cloud object): same seal, new queue time.
    this.requeueStmt = db.prepare<[string, number, string | null, string, string]>(
      `UPDATE phs_users SET queued_at = ?, version = CASE WHEN next_attempt_at IS NULL THEN 1 ELSE version + 1 END,
         attempts = 0, next_attempt_at = ?, last_error = NULL, source = ?
       WHERE anchor = ? AND connector = ? AND hash_ct IS NOT NULL AND changed_at IS NOT NULL`,
    );
    this.dueStmt = db.prepare<[number, number], Row>(
      `SELECT anchor, connector, hash_ct, hash_iv, hash_tag, key_id, changed_at, queued_at, version, attempts, source
       FROM phs_users WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ? ORDER BY next_attempt_at, queued_at LIMIT ?`,
    );
    // An answer acts on the write it was about, not on whatever the row holds now: two
    // deliveries of one anchor can overlap (two processes, or a late answer), and a row completed by
    // one and queued again by a newer change starts at version 1 again. Matching the version alone
    // let the late answer of the first complete the newer change (found by `npm run chaos`, seed
    // 1308652329: a password that never reached the cloud).
    const thisWrite = 'anchor = ? AND version = ? AND queued_at = ? AND hash_iv = ? AND next_attempt_at IS NOT NULL';
    // Stored: this write is done, and so is an older change of the same user that another
    // connector queued (the cloud keeps the newest; sending the older one after it changes nothing).
    this.completeStmt = db.prepare(
      `UPDATE phs_users SET next_attempt_at = NULL, attempts = 0, last_error = NULL
       WHERE (${thisWrite}) OR (anchor = ? AND connector <> ? AND changed_at <= ? AND next_attempt_at IS NOT NULL)`,
    );
    this.retryStmt = db.prepare(`UPDATE phs_users SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE ${thisWrite}`);
    this.dueAfterOutageStmt = db.prepare<[number, number, string]>(
      'UPDATE phs_users SET next_attempt_at = ? WHERE next_attempt_at > ? AND last_error IN (SELECT value FROM json_each(?))',
    );
    this.fpGet = db.prepare<[string, string], { nt_fp: Buffer | null }>('SELECT nt_fp FROM phs_users WHERE connector = ? AND anchor = ?');
    this.fpMany = db.prepare<[string, string], { anchor: string; nt_fp: Buffer | null }>(
      'SELECT anchor, nt_fp FROM phs_users WHERE connector = ? AND anchor IN (SELECT value FROM json_each(?))',
    );
    this.knownAt = db.prepare<[string], { changed_at: string | null }>('SELECT changed_at FROM phs_users WHERE anchor = ?');
    this.fpSet = db.prepare(
      `INSERT INTO phs_users (connector, anchor, nt_fp, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (anchor, connector) DO UPDATE SET nt_fp = excluded.nt_fp, updated_at = excluded.updated_at`,
    );
    this.enqueueTx = db.transaction((changes: readonly OutboxWrite[], nowMs: number) => this.writeChanges(changes, nowMs));
  }

  /**
   * Queues a user's OrgId hash (and remembers it as the last known one). Returns 'stale' and
   * changes nothing when a newer change of this user is already known.
   */
  enqueue(connector: string, anchor: string, hash: string, changedAt: Date, source: string | null): EnqueueResult {
    return this.enqueueMany([{ connector, anchor, hash, changedAt, source }])[0]!;
  }

  /**
   * Queues many changes in ONE transaction, applied in the order given (so of two changes of one
   * user with the same changedAt, the later in the list wins). The result per change, same order.
   * `fp` (the NT hash's keyed fingerprint) is remembered with a change that is queued.
   */
  enqueueMany(changes: readonly OutboxWrite[]): EnqueueResult[] {
    return this.enqueueTx(changes, this.now());
  }

  private writeChanges(changes: readonly OutboxWrite[], nowMs: number): EnqueueResult[] {
    const now = new Date(nowMs).toISOString();
    const latest = new Date(nowMs + MAX_CLOCK_SKEW_MS).toISOString();
    const out: EnqueueResult[] = [];
    for (const c of changes) {
      const sealed = this.keys.seal(c.hash, c.anchor);
      // A change dated beyond the allowed skew (a DC clock ahead) is dated now: kept as it came, it
      // would make every real change of its user "older" until that date.
      let changedAt = c.changedAt.getTime() > nowMs + MAX_CLOCK_SKEW_MS ? now : c.changedAt.toISOString();
      // Positional parameters: binding an object of named ones costs a µs or two per row.
      let written = this.upsert.run(c.anchor, c.connector, c.fp ?? null, sealed.ct, sealed.iv, sealed.tag, sealed.keyId, changedAt, now, now, nowMs, c.source, latest).changes > 0;
      if (!written && c.arrival) {
        // An arriving change older than what is known (the clock was set back) is dated just
        // after it instead; read only then, so the usual change costs no extra look-up.
        changedAt = this.afterKnown(c, nowMs).toISOString();
        written = this.upsert.run(c.anchor, c.connector, c.fp ?? null, sealed.ct, sealed.iv, sealed.tag, sealed.keyId, changedAt, now, now, nowMs, c.source, latest).changes > 0;
      }
      // A newer change of this user is known: nothing changes for this one.
      out.push(written ? 'queued' : 'stale');
    }
    return out;
  }

  /** An arriving change's date when what is known of its user (any connector) is newer: 1 ms after that. */
  private afterKnown(c: OutboxWrite, nowMs: number): Date {
    let known = Number.NaN;
    for (const r of this.knownAt.all(c.anchor)) {
      const t = Date.parse(r.changed_at ?? '');
      // A stored date beyond the allowed skew does not count (the upsert replaces it anyway).
      if (Number.isFinite(t) && t <= nowMs + MAX_CLOCK_SKEW_MS && !(t <= known)) known = t;
    }
    return Number.isFinite(known) && known >= c.changedAt.getTime() ? new Date(known + 1) : c.changedAt;
  }

  /** Items due at `asOf` (default now), oldest first, skipping `exclude` (in flight). */
  due(limit: number, exclude: ReadonlySet<string>, asOf: number = this.now()): OutboxItem[] {
    const rows = this.dueStmt.all(asOf, limit + exclude.size);
    const out: OutboxItem[] = [];
    // One delivery per cloud user at a time: two connectors that both know an anchor (the same
    // directory configured twice) may each have a change waiting; the newest goes (its completion
    // ends the older one).
    const newest = new Map<string, Row>();
    for (const r of rows) {
      const seen = newest.get(r.anchor);
      if (!seen || r.changed_at > seen.changed_at) newest.set(r.anchor, r);
    }
    for (const r of newest.values()) {
      if (exclude.has(r.anchor)) continue;
      out.push({
        anchor: r.anchor,
        connector: r.connector,
        hash: this.keys.open({ ct: r.hash_ct, iv: r.hash_iv, tag: r.hash_tag, keyId: r.key_id }, r.anchor),
        changedAt: r.changed_at,
        queuedAt: r.queued_at,
        version: r.version,
        writeId: r.hash_iv,
        attempts: r.attempts,
        source: r.source,
      });
      if (out.length >= limit) break;
    }
    return out;
  }

  /** The cloud stored this write: forget it (a newer one queued meanwhile stays). */
  complete(w: OutboxWriteRef): void {
    this.completeStmt.run(w.anchor, w.version, w.queuedAt, w.writeId, w.anchor, w.connector, w.changedAt);
  }

  /** Try this write again at `at` (epoch ms), recording why it did not go through. */
  retry(w: OutboxWriteRef, at: number, reason: string): void {
    this.retryStmt.run(at, reason, w.anchor, w.version, w.queuedAt, w.writeId);
  }

  /**
   * Makes due at `at` the items that wait only because the cloud was unavailable (their last error
   * is one of `codes`): the cloud may answer again. Returns how many.
   */
  dueAfterOutage(at: number, codes: Iterable<string>): number {
    return this.dueAfterOutageStmt.run(at, at, JSON.stringify([...codes])).changes;
  }

  /** Makes every waiting item due at `at` (a new credential deserves an attempt now, not after the backoff). */
  dueNow(at: number): number {
    return this.db.prepare('UPDATE phs_users SET next_attempt_at = ? WHERE next_attempt_at > ?').run(at, at).changes;
  }

  /** Runs fn in one transaction (a batch's outcome is written at once). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /**
   * How much waits. `oldestQueuedAt` leaves out changes waiting for their user to be exported
   * (TargetNotExported): a DC-side agent also sends users outside every connector's scope, and
   * those must not read as a stuck delivery.
   */
  depth(): { depth: number; waitingForExport: number; oldestQueuedAt?: string; nextAttemptAt?: number } {
    const d = outboxDepth(this.db);
    return {
      depth: d.depth,
      waitingForExport: d.waitingForExport,
      ...(d.oldestQueuedAt ? { oldestQueuedAt: d.oldestQueuedAt } : {}),
      ...(d.nextAttemptAt !== null ? { nextAttemptAt: d.nextAttemptAt } : {}),
    };
  }

  /** Forgets changes that waited for their user's export longer than `olderThan` (ISO time); returns their anchors. */
  expireUnexported(olderThan: string): { anchor: string; connector: string; queuedAt: string }[] {
    return (
      this.db
        .prepare(
          `UPDATE phs_users SET next_attempt_at = NULL, attempts = 0, last_error = NULL
           WHERE next_attempt_at IS NOT NULL AND last_error = 'TargetNotExported' AND queued_at < ? RETURNING anchor, connector, queued_at`,
        )
        .all(olderThan) as { anchor: string; connector: string; queued_at: string }[]
    ).map((r) => ({ anchor: r.anchor, connector: r.connector, queuedAt: r.queued_at }));
  }

  /** The keyed fingerprint of the user's last NT hash, if any. */
  fingerprint(connector: string, anchor: string): Buffer | undefined {
    return this.fpGet.get(connector, anchor)?.nt_fp ?? undefined;
  }

  /** The keyed fingerprints of many users of one connector at once (the import path's page). */
  fingerprints(connector: string, anchors: readonly string[]): Map<string, Buffer> {
    const out = new Map<string, Buffer>();
    if (anchors.length === 0) return out;
    for (const r of this.fpMany.all(connector, JSON.stringify(anchors))) if (r.nt_fp) out.set(r.anchor, r.nt_fp);
    return out;
  }

  setFingerprint(connector: string, anchor: string, fp: Buffer): void {
    this.fpSet.run(connector, anchor, fp, new Date(this.now()).toISOString());
  }

  /**
   * Password state follows the cloud object: these users just got a new cloud object (created,
   * re-created, adopted or joined to another one) or were re-enabled, so the cloud may hold no hash
   * for them. A change already waiting is made due now; otherwise the last known hash is queued
   * again (the NT fingerprint alone would never queue an unchanged password). Returns the users
   * queued from the last known state.
   */
  requeueForCloudObjects(anchors: readonly string[]): Array<{ connector: string; anchor: string }> {
    if (anchors.length === 0) return [];
    const nowMs = this.now();
    const list = JSON.stringify([...new Set(anchors)]);
    return this.db.transaction(() => {
      // A change already waiting is a new write for the new object: due now, a new version and
      // queue time (an answer still in flight was about the old object and must not complete it,
      // and a change that waited for the export no longer counts as waiting for it).
      this.db
        .prepare(
          `UPDATE phs_users SET next_attempt_at = ?, attempts = 0, version = version + 1, queued_at = ?, last_error = NULL
           WHERE next_attempt_at IS NOT NULL AND anchor IN (SELECT value FROM json_each(?))`,
        )
        .run(nowMs, new Date(nowMs).toISOString(), list);
      // The newest known hash per anchor (several connectors may know one), where nothing waits.
      const rows = this.db
        .prepare(
          `SELECT s.connector, s.anchor FROM phs_users s
           WHERE s.anchor IN (SELECT value FROM json_each(?)) AND s.hash_ct IS NOT NULL AND s.changed_at IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM phs_users o WHERE o.anchor = s.anchor AND o.next_attempt_at IS NOT NULL)
           ORDER BY s.anchor, s.changed_at DESC`,
        )
        .all(list) as Array<{ connector: string; anchor: string }>;
      const queued: Array<{ connector: string; anchor: string }> = [];
      for (const r of rows) {
        if (queued.some((q) => q.anchor === r.anchor)) continue;
        if (this.queueKnownHash(r.connector, r.anchor, 'cloud-object', nowMs)) queued.push({ connector: r.connector, anchor: r.anchor });
      }
      return queued;
    })();
  }

  /** Queues a user's last known (sealed) hash again; true when there was one. */
  private queueKnownHash(connector: string, anchor: string, source: string, nowMs: number): boolean {
    return this.requeueStmt.run(new Date(nowMs).toISOString(), nowMs, source, anchor, connector).changes > 0;
  }

  /** The users with a password state that still exist in a connector space. */
  private existingUsers(): Array<{ connector: string; anchor: string; changed_at: string | null }> {
    this.csUsers ??= new ConnectorSpaceUsers(this.db);
    const users = this.csUsers;
    return (this.db.prepare('SELECT connector, anchor, changed_at FROM phs_users').all() as Array<{ connector: string; anchor: string; changed_at: string | null }>).filter((r) =>
      users.exists(r.connector, r.anchor),
    );
  }

  /**
   * Full password sync from what we know: queues the last known hash of every user (or of the given
   * anchors) again, and forgets the NT fingerprints so polling sources send their current hashes
   * again. Returns the users queued.
   */
  requeueKnown(anchors?: string[]): Array<{ connector: string; anchor: string }> {
    const nowMs = this.now();
    return this.db.transaction(() => {
      // Everyone means the users that still exist in a connector space: a deleted user's last hash
      // is kept in phs_users, but a resync must not queue it (issue 11: --all queued 4 where 3
      // exist). Named anchors were resolved from the connector spaces by the caller.
      const byAnchor = this.db.prepare<[string], { connector: string; anchor: string; changed_at: string | null }>('SELECT connector, anchor, changed_at FROM phs_users WHERE anchor = ?');
      const rows = anchors ? anchors.flatMap((a) => byAnchor.all(a)) : this.existingUsers();
      // Of the connectors that know one user, the newest change is the one to send again.
      rows.sort((a, b) => (a.anchor < b.anchor ? -1 : a.anchor > b.anchor ? 1 : (b.changed_at ?? '').localeCompare(a.changed_at ?? '')));
      const queued: Array<{ connector: string; anchor: string }> = [];
      const clearFp = this.db.prepare('UPDATE phs_users SET nt_fp = NULL WHERE connector = ? AND anchor = ?');
      for (const r of rows) {
        clearFp.run(r.connector, r.anchor);
        if (queued.at(-1)?.anchor === r.anchor) continue;
        if (this.queueKnownHash(r.connector, r.anchor, 'resync', nowMs)) queued.push({ connector: r.connector, anchor: r.anchor });
      }
      return queued;
    })();
  }
}

// ---------------------------------------------------------------------------------------------
// Questions about phs_users from outside: this module owns the table, so status, doctor, the
// service and the cycle ask here instead of writing their own SQL.
// ---------------------------------------------------------------------------------------------

export interface OutboxDepth {
  /** Every queued change. */
  depth: number;
  /** Changes waiting for their user to be exported first (TargetNotExported): not a backlog. */
  waitingForExport: number;
  /** When the oldest change that is not waiting for its export was queued. */
  oldestQueuedAt: string | null;
  /** The most attempts of any change not waiting for its export. */
  attempts: number | null;
  /** The earliest next attempt (epoch ms) of any change. */
  nextAttemptAt: number | null;
}

/**
 * How much waits in the outbox, and for what. Changes waiting for their user's export are counted
 * apart: a DC-side agent also sends users outside every connector's scope, and those must not read
 * as a stuck delivery.
 */
export function outboxDepth(db: Database): OutboxDepth {
  const r = db
    .prepare<[], { n: number; unexported: number | null; oldest: string | null; attempts: number | null; next: number | null }>(
      `SELECT count(*) AS n,
              sum(CASE WHEN last_error = 'TargetNotExported' THEN 1 ELSE 0 END) AS unexported,
              min(CASE WHEN last_error IS NULL OR last_error <> 'TargetNotExported' THEN queued_at END) AS oldest,
              max(CASE WHEN last_error IS NULL OR last_error <> 'TargetNotExported' THEN attempts END) AS attempts,
              min(next_attempt_at) AS next
       FROM phs_users WHERE next_attempt_at IS NOT NULL`,
    )
    .get() ?? { n: 0, unexported: 0, oldest: null, attempts: null, next: null };
  return { depth: r.n, waitingForExport: r.unexported ?? 0, oldestQueuedAt: r.oldest, attempts: r.attempts, nextAttemptAt: r.next };
}

/** The last delivery error of the oldest change not waiting for its export (raw: the caller redacts what it shows). */
export function oldestOutboxError(db: Database): string | null {
  return (
    db
      .prepare<[], { last_error: string | null }>(
        "SELECT last_error FROM phs_users WHERE next_attempt_at IS NOT NULL AND (last_error IS NULL OR last_error <> 'TargetNotExported') ORDER BY queued_at LIMIT 1",
      )
      .get()?.last_error ?? null
  );
}

/** The change of a user waiting in the outbox now: when it was queued, and from where. */
export function waitingChange(db: Database, anchor: string): { connector: string; source: string | null; queuedAt: string } | undefined {
  const r = db
    .prepare<[string], { connector: string; source: string | null; queued_at: string }>(
      'SELECT connector, source, queued_at FROM phs_users WHERE anchor = ? AND next_attempt_at IS NOT NULL ORDER BY queued_at DESC LIMIT 1',
    )
    .get(anchor);
  return r && { connector: r.connector, source: r.source, queuedAt: r.queued_at };
}

/** True when at least one password change waits (cheaper than a count). */
export function outboxHasWork(db: Database): boolean {
  return db.prepare('SELECT 1 FROM phs_users WHERE next_attempt_at IS NOT NULL LIMIT 1').get() !== undefined;
}

/** How many users have a known password state (a hash or an NT fingerprint). */
export function knownPasswordCount(db: Database): number {
  return db.prepare<[], { n: number }>('SELECT count(*) AS n FROM phs_users').get()?.n ?? 0;
}
