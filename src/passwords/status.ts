/**
 * Per-user password sync status (the incumbent's "password hash sync status per user"): what
 * happened to each user's last changes, kept 7 days. Records hold a status, a time and a reason
 * code — never a password or a hash.
 *
 * "Queued" costs no row of its own on the intake paths (one per change was a third of the
 * notification path's writes): while a change waits, its outbox row says when it was queued, and
 * each outcome the delivery records carries that time (`queued_at`). forAnchor shows a "Queued"
 * record from either. Explicit "Queued" rows remain for the queuings that have a reason to tell
 * (a resync, a new cloud object). A change replaced by a newer one before it was delivered leaves
 * no "Queued" of its own: the outbox kept only the newer one.
 */
import type { Database } from '../store/database.js';
import { waitingChange } from './outbox.js';

export type PasswordStatus = 'Queued' | 'Success' | 'Error' | 'TargetNotExported';

export interface PasswordStatusRecord {
  anchor: string;
  connector: string | null;
  status: PasswordStatus;
  /** Error code or explanation (e.g. CLOUD_AUTH_FAILED, InvalidHash), when there is one. */
  reason: string | null;
  /** Where the change came from: pcn, ldap, samba-agent, resync... */
  source: string | null;
  at: string;
}

export const STATUS_RETENTION_MS = 7 * 24 * 3600 * 1000;

interface Row extends PasswordStatusRecord {
  id: number;
  queued_at: string | null;
}

/** An explicit "Queued" row written this soon after a change was queued is that change's. */
const EXPLICIT_QUEUED_MS = 5000;

export class StatusLog {
  private readonly insert;
  private readonly last;
  private readonly list;

  constructor(
    private readonly db: Database,
    private readonly now: () => number = Date.now,
  ) {
    this.insert = db.prepare('INSERT INTO phs_status (anchor, connector, status, reason, source, at, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
    this.last = db.prepare<[string], { status: string; reason: string | null; queued_at: string | null }>(
      'SELECT status, reason, queued_at FROM phs_status WHERE anchor = ? ORDER BY id DESC LIMIT 1',
    );
    this.list = db.prepare<[string, string], Row>(
      'SELECT id, anchor, connector, status, reason, source, at, queued_at FROM phs_status WHERE anchor = ? AND at >= ? ORDER BY id DESC',
    );
  }

  /**
   * Records a status; `queuedAt` is when the change it is about was queued (the delivery's
   * outcomes). A repeat of the latest (status, reason) of the same change is not written again,
   * so a change waiting through many retries does not fill the table.
   */
  record(anchor: string, connector: string | null, status: PasswordStatus, reason: string | null = null, source: string | null = null, queuedAt: string | null = null): void {
    if (status !== 'Queued' && status !== 'Success') {
      const prev = this.last.get(anchor);
      if (prev && prev.status === status && prev.reason === reason && prev.queued_at === queuedAt) return;
    }
    this.insert.run(anchor, connector, status, reason, source, new Date(this.now()).toISOString(), queuedAt);
  }

  /**
   * Newest first, within the retention window: the rows written, with a "Queued" record for each
   * change they are about (just before its first outcome) and for the change waiting now, unless
   * an explicit "Queued" row already tells it.
   */
  forAnchor(anchor: string): PasswordStatusRecord[] {
    const cutoff = new Date(this.now() - STATUS_RETENTION_MS).toISOString();
    const rows = this.list.all(anchor, cutoff);
    const explicit = rows.filter((r) => r.status === 'Queued').map((r) => Date.parse(r.at));
    const told = (queuedAt: string): boolean => {
      const t = Date.parse(queuedAt);
      return explicit.some((at) => at >= t && at - t <= EXPLICIT_QUEUED_MS);
    };
    // (sequence, record): rows by id; a change's "Queued" just below its first outcome's id.
    const out: { seq: number; rec: PasswordStatusRecord }[] = [];
    const firstOutcome = new Map<string, Row>();
    for (const r of rows) {
      out.push({ seq: r.id, rec: strip(r) });
      if (r.queued_at !== null && r.status !== 'Queued') firstOutcome.set(r.queued_at, r); // rows are newest first: the last set is the first outcome
    }
    const waiting = waitingChange(this.db, anchor);
    if (waiting && !firstOutcome.has(waiting.queuedAt) && !told(waiting.queuedAt)) {
      out.push({ seq: Infinity, rec: { anchor, connector: waiting.connector, status: 'Queued', reason: null, source: waiting.source, at: waiting.queuedAt } });
    }
    for (const [queuedAt, r] of firstOutcome) {
      if (queuedAt < cutoff || told(queuedAt)) continue;
      out.push({ seq: r.id - 0.5, rec: { anchor, connector: r.connector, status: 'Queued', reason: null, source: r.source, at: queuedAt } });
    }
    return out.sort((a, b) => b.seq - a.seq).map((x) => x.rec);
  }

  /** Deletes records older than 7 days; returns how many. */
  prune(): number {
    return this.db.prepare('DELETE FROM phs_status WHERE at < ?').run(new Date(this.now() - STATUS_RETENTION_MS).toISOString()).changes;
  }
}

/**
 * For each password delivered since `sinceIso` (a Success in the status log): how long after it
 * was queued (the change noticed) the cloud accepted it, i.e. when the user could sign in with it.
 * The Success row carries its change's queued time (rows written before it did: the latest
 * explicit "Queued" row before it).
 */
export function deliveryLatencies(db: Database, sinceIso: string): { at: string; seconds: number }[] {
  return db
    .prepare<[string], { at: string; seconds: number | null }>(
      `SELECT s.at AS at, (julianday(s.at) - julianday(coalesce(s.queued_at, (SELECT max(q.at) FROM phs_status AS q WHERE q.anchor = s.anchor AND q.status = 'Queued' AND q.at <= s.at)))) * 86400.0 AS seconds
         FROM phs_status AS s WHERE s.status = 'Success' AND s.at >= ? ORDER BY s.at`,
    )
    .all(sinceIso)
    .filter((r): r is { at: string; seconds: number } => r.seconds !== null)
    .map((r) => ({ at: r.at, seconds: Math.max(0, r.seconds) }));
}

function strip(r: Row): PasswordStatusRecord {
  return { anchor: r.anchor, connector: r.connector, status: r.status, reason: r.reason, source: r.source, at: r.at };
}
