/**
 * Synced password hashes (OrgId strings), one per SCIM user, write-only: no API returns them;
 * only the sign-in check reads them.
 *
 * `changed_at` is when the password changed at the source (or, when the sender does not say,
 * when the hash arrived). A hash older than the stored one is ignored, so a late retry of an old
 * change cannot undo a newer password; a stored date beyond the allowed clock skew (written before
 * dates were bounded) never blocks a real change. A user's hash belongs to the identity its
 * externalId names: a new externalId (the sync joined the user to another source object) drops it.
 */
import { MAX_CLOCK_SKEW_MS } from '../../passwords/hash.js';
import type { Migration } from '../../store/database.js';
import type { Sql } from '../store/sql.js';

export const passwordHashMigrations: Migration[] = [
  {
    id: 'cloud-passwords/001',
    sql: `
      CREATE TABLE user_password_hashes (
        user_id TEXT PRIMARY KEY,
        hash TEXT NOT NULL,
        changed_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    // A deleted user's hash goes with the user (sign-in already fails: it checks the user exists).
    // Couples to the SCIM layer's table, whose migrations run first (see server.ts).
    id: 'cloud-passwords/002',
    sql: `
      DELETE FROM user_password_hashes WHERE user_id NOT IN (SELECT id FROM scim_users);
      CREATE TRIGGER user_password_hashes_follow_user_delete AFTER DELETE ON scim_users
      BEGIN
        DELETE FROM user_password_hashes WHERE user_id = OLD.id;
      END;
    `,
  },
  {
    // The hash is the password of the identity the externalId names: when the externalId changes
    // (a join to another source object), the old identity's password must not sign the user in.
    id: 'cloud-passwords/003-follow-external-id',
    sql: `
      CREATE TRIGGER user_password_hashes_follow_external_id AFTER UPDATE OF external_id ON scim_users
      WHEN OLD.external_id IS NOT NEW.external_id
      BEGIN
        DELETE FROM user_password_hashes WHERE user_id = NEW.id;
      END;
    `,
  },
];

/** The same on PostgreSQL (after scimPgMigrations). */
export const passwordHashPgMigrations: Migration[] = [
  {
    id: 'cloud-passwords/001',
    sql: `
      CREATE TABLE user_password_hashes (
        user_id TEXT COLLATE "C" PRIMARY KEY,
        hash TEXT NOT NULL,
        changed_at TEXT COLLATE "C" NOT NULL,
        updated_at TEXT NOT NULL
      );
    `,
  },
  {
    id: 'cloud-passwords/002',
    sql: `
      CREATE FUNCTION user_password_hashes_follow_user_delete() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        DELETE FROM user_password_hashes WHERE user_id = OLD.id;
        RETURN OLD;
      END $$;
      CREATE TRIGGER user_password_hashes_follow_user_delete AFTER DELETE ON scim_users
        FOR EACH ROW EXECUTE FUNCTION user_password_hashes_follow_user_delete();
    `,
  },
  {
    id: 'cloud-passwords/003-follow-external-id',
    sql: `
      CREATE FUNCTION user_password_hashes_follow_external_id() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        DELETE FROM user_password_hashes WHERE user_id = NEW.id;
        RETURN NEW;
      END $$;
      CREATE TRIGGER user_password_hashes_follow_external_id AFTER UPDATE OF external_id ON scim_users
        FOR EACH ROW WHEN (OLD.external_id IS DISTINCT FROM NEW.external_id)
        EXECUTE FUNCTION user_password_hashes_follow_external_id();
    `,
  },
];

export interface StoredHashInput {
  userId: string;
  hash: string;
  /** ISO date-time of the change at the source. */
  changedAt: string;
}

const UPSERT = `INSERT INTO user_password_hashes (user_id, hash, changed_at, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, changed_at = excluded.changed_at, updated_at = excluded.updated_at
       WHERE excluded.changed_at >= user_password_hashes.changed_at OR user_password_hashes.changed_at > ?`;

export class PasswordHashStore {
  constructor(
    private readonly db: Sql,
    private readonly now: () => number = Date.now,
  ) {}

  /** Stores hashes in one transaction; older changes than the stored one are skipped. */
  async putMany(items: StoredHashInput[]): Promise<void> {
    const nowMs = this.now();
    const updatedAt = new Date(nowMs).toISOString();
    const latest = new Date(nowMs + MAX_CLOCK_SKEW_MS).toISOString();
    await this.db.transaction(async (tx) => {
      for (const it of items) await tx.run(UPSERT, [it.userId, it.hash, it.changedAt, updatedAt, latest]);
    });
  }

  /** For the sign-in check only. */
  async hashFor(userId: string): Promise<string | undefined> {
    return (await this.db.get<{ hash: string }>('SELECT hash FROM user_password_hashes WHERE user_id = ?', [userId]))?.hash;
  }
}
