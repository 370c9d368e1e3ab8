/**
 * Per-user password sync status (the incumbent's "password hash sync status per user"): what
 * happened to each user's last changes, kept 7 days. Records hold a status, a time and a reason
 * code — never a password or a hash.
 */
import type { Database } from '../store/database.js';

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

export class StatusLog {
  private readonly insert;
  private readonly last;
  private readonly list;

  constructor(
    private readonly db: Database,
    private readonly now: () => number = Date.now,
  ) {
    this.insert = db.prepare('INSERT INTO phs_status (anchor, connector, status, reason, source, at) VALUES (?, ?, ?, ?, ?, ?)');
    this.last = db.prepare<[string], { status: string; reason: string | null }>('SELECT status, reason FROM phs_status WHERE anchor = ? ORDER BY id DESC LIMIT 1');
    this.list = db.prepare<[string, string], PasswordStatusRecord>(
      'SELECT anchor, connector, status, reason, source, at FROM phs_status WHERE anchor = ? AND at >= ? ORDER BY id DESC',
    );
  }

  /**
   * Records a status. A repeat of the user's latest (status, reason) is not written again, so a
   * user waiting through many retries does not fill the table.
   */
  record(anchor: string, connector: string | null, status: PasswordStatus, reason: string | null = null, source: string | null = null): void {
    if (status !== 'Queued' && status !== 'Success') {
      const prev = this.last.get(anchor);
      if (prev && prev.status === status && prev.reason === reason) return;
    }
    this.insert.run(anchor, connector, status, reason, source, new Date(this.now()).toISOString());
  }

  /** Newest first, within the retention window. */
  forAnchor(anchor: string): PasswordStatusRecord[] {
    return this.list.all(anchor, new Date(this.now() - STATUS_RETENTION_MS).toISOString());
  }

  /** Deletes records older than 7 days; returns how many. */
  prune(): number {
    return this.db.prepare('DELETE FROM phs_status WHERE at < ?').run(new Date(this.now() - STATUS_RETENTION_MS).toISOString()).changes;
  }
}

/**
 * For each password delivered since `sinceIso` (a Success in the status log): how long after it
 * was queued (the change noticed) the cloud accepted it, i.e. when the user could sign in with it.
 */
export function deliveryLatencies(db: Database, sinceIso: string): { at: string; seconds: number }[] {
  return db
    .prepare<[string], { at: string; seconds: number | null }>(
      `SELECT s.at AS at, (julianday(s.at) - julianday((SELECT max(q.at) FROM phs_status AS q WHERE q.anchor = s.anchor AND q.status = 'Queued' AND q.at <= s.at))) * 86400.0 AS seconds
         FROM phs_status AS s WHERE s.status = 'Success' AND s.at >= ? ORDER BY s.at`,
    )
    .all(sinceIso)
    .filter((r): r is { at: string; seconds: number } => r.seconds !== null)
    .map((r) => ({ at: r.at, seconds: Math.max(0, r.seconds) }));
}
