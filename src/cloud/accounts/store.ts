/**
 * Cloud accounts (administrators and sync accounts) and OAuth clients of the cloud directory.
 * They are not directory users: they live in their own tables, sign in for API tokens only, and
 * never appear in SCIM.
 *
 * Each account and client carries a `token_version`. Tokens name the version they were issued
 * for and are checked against the current one on every request, so changing a password (or a
 * secret, or deleting the account) revokes every token issued before, at once (KB 2962509).
 * A new account or client starts at a version no earlier one of its name can have had
 * (firstTokenVersion): one deleted and created again under the same name does not bring its old
 * tokens back to life.
 */
import type { Migration } from '../../store/database.js';
import type { Sql } from '../store/sql.js';
import type { Role } from './roles.js';
import { DEFAULT_SECRET_HASH_PARAMS, burnSecretCheck, hashSecret, verifySecret, type SecretHashParams } from '../../web/secret-hash.js';

export const accountsMigrations: Migration[] = [
  {
    id: 'cloud-accounts/001',
    sql: `
      CREATE TABLE cloud_accounts (
        username TEXT PRIMARY KEY COLLATE NOCASE,
        role TEXT NOT NULL CHECK (role IN ('GlobalAdministrator', 'DirectorySynchronizationAccounts')),
        password_hash TEXT NOT NULL,
        token_version INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        password_changed_at TEXT NOT NULL
      );
      CREATE TABLE cloud_clients (
        client_id TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('GlobalAdministrator', 'DirectorySynchronizationAccounts')),
        secret_hash TEXT NOT NULL,
        token_version INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
      );
    `,
  },
];

/** The same on PostgreSQL; user names compare case-insensitively through a unique index on lower(username). */
export const accountsPgMigrations: Migration[] = [
  {
    id: 'cloud-accounts/001',
    sql: `
      CREATE TABLE cloud_accounts (
        username TEXT COLLATE "C" PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('GlobalAdministrator', 'DirectorySynchronizationAccounts')),
        password_hash TEXT NOT NULL,
        token_version INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        password_changed_at TEXT NOT NULL
      );
      CREATE UNIQUE INDEX cloud_accounts_username_lc ON cloud_accounts (lower(username));
      CREATE TABLE cloud_clients (
        client_id TEXT COLLATE "C" PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('GlobalAdministrator', 'DirectorySynchronizationAccounts')),
        secret_hash TEXT NOT NULL,
        token_version INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
      );
    `,
  },
  {
    // firstTokenVersion's values need 64 bits (SQLite's INTEGER has them already).
    id: 'cloud-accounts/002-token-version-bigint',
    sql: `
      ALTER TABLE cloud_accounts ALTER COLUMN token_version TYPE BIGINT;
      ALTER TABLE cloud_clients ALTER COLUMN token_version TYPE BIGINT;
    `,
  },
];

/** What the API shows of an account: never the hash. */
export interface AccountInfo {
  username: string;
  role: Role;
  createdAt: string;
  passwordChangedAt: string;
}

export interface ClientInfo {
  clientId: string;
  role: Role;
  createdAt: string;
}

/** Who a verified credential or token belongs to. */
export interface Principal {
  kind: 'account' | 'client';
  /** Account user name (as stored) or client id. */
  name: string;
  role: Role;
  tokenVersion: number;
}

interface AccountRow {
  username: string;
  role: Role;
  password_hash: string;
  token_version: number;
  created_at: string;
  password_changed_at: string;
}

interface ClientRow {
  client_id: string;
  role: Role;
  secret_hash: string;
  token_version: number;
  created_at: string;
}

/**
 * The token version a new account or client starts at: the creation time in milliseconds × 1,000.
 * An earlier holder of the name reached at most its own start plus one per password change, and it
 * would have needed more than a change per microsecond of its life to reach this. (Starting at 1,
 * a deleted account's tokens opened the next account of the same name.) Below 2^53 until 2255.
 */
export function firstTokenVersion(nowMs: number): number {
  return Math.floor(nowMs) * 1000;
}

export type CredentialCheck = { ok: true; principal: Principal } | { ok: false; reason: 'unknown' | 'bad_secret' };

export class AccountStore {
  /** `username = ?` as SQLite's NOCASE column compares it; PostgreSQL compares lower-cased (ASCII, as NOCASE). */
  private readonly byName: string;

  constructor(
    private readonly db: Sql,
    private readonly hashParams: SecretHashParams = DEFAULT_SECRET_HASH_PARAMS,
    private readonly now: () => number = Date.now,
  ) {
    this.byName = db.dialect === 'sqlite' ? 'username = ?' : 'lower(username) = lower(?)';
  }

  private iso(): string {
    return new Date(this.now()).toISOString();
  }

  // ---- accounts ----

  async hasAccount(username: string): Promise<boolean> {
    return (await this.db.get(`SELECT 1 AS x FROM cloud_accounts WHERE ${this.byName}`, [username])) !== undefined;
  }

  async countAdministrators(): Promise<number> {
    const r = await this.db.get<{ n: number }>("SELECT count(*) AS n FROM cloud_accounts WHERE role = 'GlobalAdministrator'");
    return Number(r?.n ?? 0);
  }

  async firstAdministrator(): Promise<string | undefined> {
    const r = await this.db.get<{ username: string }>("SELECT username FROM cloud_accounts WHERE role = 'GlobalAdministrator' ORDER BY created_at, username LIMIT 1");
    return r?.username;
  }

  /** Returns false when the user name is taken (case-insensitively). */
  async createAccount(username: string, password: string, role: Role): Promise<AccountInfo | undefined> {
    const hash = await hashSecret(password, this.hashParams);
    const at = this.iso();
    const changes = await this.db.run(
      'INSERT INTO cloud_accounts (username, role, password_hash, token_version, created_at, password_changed_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
      [username, role, hash, firstTokenVersion(this.now()), at, at],
    );
    return changes === 1 ? { username, role, createdAt: at, passwordChangedAt: at } : undefined;
  }

  /** Sets a new password and revokes every token issued before. Undefined when there is no such account. */
  async setPassword(username: string, password: string): Promise<AccountInfo | undefined> {
    const hash = await hashSecret(password, this.hashParams);
    const row = await this.db.get<AccountRow>(
      `UPDATE cloud_accounts SET password_hash = ?, token_version = token_version + 1, password_changed_at = ? WHERE ${this.byName} RETURNING *`,
      [hash, this.iso(), username],
    );
    return row && accountInfo(row);
  }

  /** Changes a role; takes effect on the account's next request (roles are never read from tokens). */
  async setRole(username: string, role: Role): Promise<AccountInfo | undefined> {
    const row = await this.db.get<AccountRow>(`UPDATE cloud_accounts SET role = ? WHERE ${this.byName} RETURNING *`, [role, username]);
    return row && accountInfo(row);
  }

  async getAccount(username: string): Promise<AccountInfo | undefined> {
    const row = await this.db.get<AccountRow>(`SELECT * FROM cloud_accounts WHERE ${this.byName}`, [username]);
    return row && accountInfo(row);
  }

  async listAccounts(): Promise<AccountInfo[]> {
    return (await this.db.all<AccountRow>('SELECT * FROM cloud_accounts ORDER BY username')).map(accountInfo);
  }

  async deleteAccount(username: string): Promise<boolean> {
    return (await this.db.run(`DELETE FROM cloud_accounts WHERE ${this.byName}`, [username])) === 1;
  }

  /** Checks a password; spends the same time whether or not the account exists. */
  async checkAccountPassword(username: string, password: string): Promise<CredentialCheck> {
    const row = await this.db.get<AccountRow>(`SELECT * FROM cloud_accounts WHERE ${this.byName}`, [username]);
    if (!row) {
      await burnSecretCheck(password, this.hashParams);
      return { ok: false, reason: 'unknown' };
    }
    if (!(await verifySecret(password, row.password_hash))) return { ok: false, reason: 'bad_secret' };
    // Re-read: a password changed while we hashed must not mint a token of the new version.
    const current = await this.accountPrincipal(row.username);
    if (!current) return { ok: false, reason: 'unknown' };
    return current.tokenVersion === row.token_version ? { ok: true, principal: current } : { ok: false, reason: 'bad_secret' };
  }

  async accountPrincipal(username: string): Promise<Principal | undefined> {
    const row = await this.db.get<Pick<AccountRow, 'username' | 'role' | 'token_version'>>(`SELECT username, role, token_version FROM cloud_accounts WHERE ${this.byName}`, [username]);
    return row && { kind: 'account', name: row.username, role: row.role, tokenVersion: row.token_version };
  }

  /**
   * The stored hash a name's password is checked against ('' when there is none), for the smart
   * lockout to bind remembered wrong passwords to it. Never leaves the server.
   */
  async credentialStamp(kind: Principal['kind'], name: string): Promise<string> {
    const row =
      kind === 'account'
        ? await this.db.get<{ h: string }>(`SELECT password_hash AS h FROM cloud_accounts WHERE ${this.byName}`, [name])
        : await this.db.get<{ h: string }>('SELECT secret_hash AS h FROM cloud_clients WHERE client_id = ?', [name]);
    return row?.h ?? '';
  }

  // ---- clients ----

  async createClient(clientId: string, secret: string, role: Role): Promise<ClientInfo | undefined> {
    const hash = await hashSecret(secret, this.hashParams);
    const at = this.iso();
    const changes = await this.db.run('INSERT INTO cloud_clients (client_id, role, secret_hash, token_version, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (client_id) DO NOTHING', [
      clientId,
      role,
      hash,
      firstTokenVersion(this.now()),
      at,
    ]);
    return changes === 1 ? { clientId, role, createdAt: at } : undefined;
  }

  async listClients(): Promise<ClientInfo[]> {
    return (await this.db.all<ClientRow>('SELECT * FROM cloud_clients ORDER BY client_id')).map((r) => ({
      clientId: r.client_id,
      role: r.role,
      createdAt: r.created_at,
    }));
  }

  async deleteClient(clientId: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM cloud_clients WHERE client_id = ?', [clientId])) === 1;
  }

  async checkClientSecret(clientId: string, secret: string): Promise<CredentialCheck> {
    const row = await this.db.get<ClientRow>('SELECT * FROM cloud_clients WHERE client_id = ?', [clientId]);
    if (!row) {
      await burnSecretCheck(secret, this.hashParams);
      return { ok: false, reason: 'unknown' };
    }
    if (!(await verifySecret(secret, row.secret_hash))) return { ok: false, reason: 'bad_secret' };
    const current = await this.clientPrincipal(row.client_id);
    if (!current) return { ok: false, reason: 'unknown' };
    return current.tokenVersion === row.token_version ? { ok: true, principal: current } : { ok: false, reason: 'bad_secret' };
  }

  async clientPrincipal(clientId: string): Promise<Principal | undefined> {
    const row = await this.db.get<Pick<ClientRow, 'client_id' | 'role' | 'token_version'>>('SELECT client_id, role, token_version FROM cloud_clients WHERE client_id = ?', [clientId]);
    return row && { kind: 'client', name: row.client_id, role: row.role, tokenVersion: row.token_version };
  }

  /** The current state of whoever a token names; undefined when it no longer exists. */
  principal(kind: Principal['kind'], name: string): Promise<Principal | undefined> {
    return kind === 'account' ? this.accountPrincipal(name) : this.clientPrincipal(name);
  }
}

function accountInfo(row: AccountRow): AccountInfo {
  return { username: row.username, role: row.role, createdAt: row.created_at, passwordChangedAt: row.password_changed_at };
}
