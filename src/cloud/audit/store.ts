/**
 * The cloud directory's audit log: one record per sign-in or token attempt and per admin action,
 * kept 30 days. Records name who, from where, what happened and the precise reason, which the
 * HTTP caller is never told. They never hold a password, secret, hash or token: callers pass
 * only identifiers, and `details` is for small secret-free facts (counts, roles).
 */
import type { Migration } from '../../store/database.js';
import type { Sql } from '../store/sql.js';

export const auditMigrations: Migration[] = [
  {
    id: 'cloud-audit/001',
    sql: `
      CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        type TEXT NOT NULL,
        actor TEXT,
        subject TEXT,
        ip TEXT,
        result TEXT NOT NULL CHECK (result IN ('success', 'failure')),
        reason TEXT NOT NULL,
        details TEXT
      );
      CREATE INDEX audit_log_at ON audit_log (at);
      CREATE INDEX audit_log_type_at ON audit_log (type, at);
    `,
  },
];

export const auditPgMigrations: Migration[] = [
  {
    id: 'cloud-audit/001',
    sql: `
      CREATE TABLE audit_log (
        id BIGSERIAL PRIMARY KEY,
        at TEXT COLLATE "C" NOT NULL,
        type TEXT NOT NULL,
        actor TEXT,
        subject TEXT,
        ip TEXT,
        result TEXT NOT NULL CHECK (result IN ('success', 'failure')),
        reason TEXT NOT NULL,
        details TEXT
      );
      CREATE INDEX audit_log_at ON audit_log (at);
      CREATE INDEX audit_log_type_at ON audit_log (type, at);
    `,
  },
];

export const AUDIT_RETENTION_DAYS = 30;

/**
 * - signin:         a synced directory user's password sign-in
 * - token:          an API token request by a cloud account or client
 * - admin:          an administrator's change (accounts, clients)
 * - passwordHashes: a batch of password hashes received
 * - portal:         an administrator's sign-in to the admin portal, and each portal action
 */
export type AuditType = 'signin' | 'token' | 'admin' | 'passwordHashes' | 'portal' | 'syncFence';

/** Why an attempt ended as it did. The caller of the API sees none of these. */
export type AuditReason =
  | 'success'
  | 'unknown_user'
  | 'bad_password'
  | 'no_password_hash'
  | 'user_disabled'
  | 'locked_out'
  /** A repeat of one of the last wrong secrets for the name: refused, not checked, not counted. */
  | 'repeated_bad_secret'
  | 'unknown_client'
  | 'bad_client_secret'
  | 'account_created'
  | 'account_deleted'
  | 'password_changed'
  | 'role_changed'
  | 'client_created'
  | 'client_deleted'
  | 'batch_received'
  | 'portal_signin'
  | 'portal_signout'
  | 'role_not_allowed'
  | 'user_enabled_by_admin'
  | 'user_disabled_by_admin'
  | 'account_unlocked'
  | 'csrf_refused'
  /** A sync service node's write with a fencing token lower than the highest seen (sync-fence/). */
  | 'fenced_token_refused';

export interface AuditEntry {
  type: AuditType;
  /** Who acted: the administrator or sync principal; for sign-ins the name tried. */
  actor?: string | undefined;
  /** What it acted on: the account, client or user name. */
  subject?: string | undefined;
  ip?: string | undefined;
  result: 'success' | 'failure';
  reason: AuditReason;
  details?: Record<string, string | number | boolean> | undefined;
}

export interface AuditRecord extends AuditEntry {
  id: number;
  at: string;
}

export interface AuditQuery {
  type?: string | undefined;
  /** ISO date-time: records at or after it. */
  since?: string | undefined;
  limit?: number | undefined;
}

interface Row {
  id: number;
  at: string;
  type: AuditType;
  actor: string | null;
  subject: string | null;
  ip: string | null;
  result: 'success' | 'failure';
  reason: AuditReason;
  details: string | null;
}

export class AuditLog {
  constructor(
    private readonly db: Sql,
    private readonly now: () => number = Date.now,
  ) {}

  async record(e: AuditEntry): Promise<void> {
    await this.db.run('INSERT INTO audit_log (at, type, actor, subject, ip, result, reason, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
      new Date(this.now()).toISOString(),
      e.type,
      e.actor ?? null,
      e.subject ?? null,
      e.ip ?? null,
      e.result,
      e.reason,
      e.details ? JSON.stringify(e.details) : null,
    ]);
  }

  /** Newest first. */
  async query(q: AuditQuery = {}): Promise<AuditRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.type) {
      where.push('type = ?');
      args.push(q.type);
    }
    if (q.since) {
      where.push('at >= ?');
      args.push(new Date(q.since).toISOString());
    }
    const limit = Math.min(Math.max(q.limit ?? 1000, 1), 10_000);
    const sql = `SELECT * FROM audit_log ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT ${limit}`;
    return (await this.db.all<Row>(sql, args)).map((r) => {
      const rec: AuditRecord = { id: r.id, at: r.at, type: r.type, result: r.result, reason: r.reason };
      if (r.actor !== null) rec.actor = r.actor;
      if (r.subject !== null) rec.subject = r.subject;
      if (r.ip !== null) rec.ip = r.ip;
      if (r.details !== null) rec.details = JSON.parse(r.details) as AuditRecord['details'];
      return rec;
    });
  }

  /** Deletes records older than the retention; returns how many. */
  async prune(retentionDays = AUDIT_RETENTION_DAYS): Promise<number> {
    const cutoff = new Date(this.now() - retentionDays * 86_400_000).toISOString();
    return this.db.run('DELETE FROM audit_log WHERE at < ?', [cutoff]);
  }
}
