/**
 * Cloud accounts (administrators and sync accounts) and OAuth clients of the cloud directory.
 * They are not directory users: they live in their own tables, sign in for API tokens only, and
 * never appear in SCIM.
 *
 * Each account and client carries a `token_version`. Tokens name the version they were issued
 * for and are checked against the current one on every request, so changing a password (or a
 * secret, or deleting the account) revokes every token issued before, at once (KB 2962509).
 */
import type { Database, Migration } from '../../store/database.js';
import type { Role } from './roles.js';
import { DEFAULT_SECRET_HASH_PARAMS, burnSecretCheck, hashSecret, verifySecret, type SecretHashParams } from './secret-hash.js';

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

export type CredentialCheck = { ok: true; principal: Principal } | { ok: false; reason: 'unknown' | 'bad_secret' };

export class AccountStore {
  constructor(
    private readonly db: Database,
    private readonly hashParams: SecretHashParams = DEFAULT_SECRET_HASH_PARAMS,
    private readonly now: () => number = Date.now,
  ) {}

  private iso(): string {
    return new Date(this.now()).toISOString();
  }

  // ---- accounts ----

  hasAccount(username: string): boolean {
    return this.db.prepare('SELECT 1 FROM cloud_accounts WHERE username = ?').get(username) !== undefined;
  }

  countAdministrators(): number {
    return this.db.prepare("SELECT count(*) FROM cloud_accounts WHERE role = 'GlobalAdministrator'").pluck().get() as number;
  }

  firstAdministrator(): string | undefined {
    return this.db
      .prepare("SELECT username FROM cloud_accounts WHERE role = 'GlobalAdministrator' ORDER BY created_at, username LIMIT 1")
      .pluck()
      .get() as string | undefined;
  }

  /** Returns false when the user name is taken (case-insensitively). */
  async createAccount(username: string, password: string, role: Role): Promise<AccountInfo | undefined> {
    const hash = await hashSecret(password, this.hashParams);
    const at = this.iso();
    const res = this.db
      .prepare(
        'INSERT INTO cloud_accounts (username, role, password_hash, created_at, password_changed_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (username) DO NOTHING',
      )
      .run(username, role, hash, at, at);
    return res.changes === 1 ? { username, role, createdAt: at, passwordChangedAt: at } : undefined;
  }

  /** Sets a new password and revokes every token issued before. Undefined when there is no such account. */
  async setPassword(username: string, password: string): Promise<AccountInfo | undefined> {
    const hash = await hashSecret(password, this.hashParams);
    const row = this.db
      .prepare(
        'UPDATE cloud_accounts SET password_hash = ?, token_version = token_version + 1, password_changed_at = ? WHERE username = ? RETURNING *',
      )
      .get(hash, this.iso(), username) as AccountRow | undefined;
    return row && accountInfo(row);
  }

  /** Changes a role; takes effect on the account's next request (roles are never read from tokens). */
  setRole(username: string, role: Role): AccountInfo | undefined {
    const row = this.db.prepare('UPDATE cloud_accounts SET role = ? WHERE username = ? RETURNING *').get(role, username) as AccountRow | undefined;
    return row && accountInfo(row);
  }

  getAccount(username: string): AccountInfo | undefined {
    const row = this.db.prepare('SELECT * FROM cloud_accounts WHERE username = ?').get(username) as AccountRow | undefined;
    return row && accountInfo(row);
  }

  listAccounts(): AccountInfo[] {
    return (this.db.prepare('SELECT * FROM cloud_accounts ORDER BY username').all() as AccountRow[]).map(accountInfo);
  }

  deleteAccount(username: string): boolean {
    return this.db.prepare('DELETE FROM cloud_accounts WHERE username = ?').run(username).changes === 1;
  }

  /** Checks a password; spends the same time whether or not the account exists. */
  async checkAccountPassword(username: string, password: string): Promise<CredentialCheck> {
    const row = this.db.prepare('SELECT * FROM cloud_accounts WHERE username = ?').get(username) as AccountRow | undefined;
    if (!row) {
      await burnSecretCheck(password, this.hashParams);
      return { ok: false, reason: 'unknown' };
    }
    if (!(await verifySecret(password, row.password_hash))) return { ok: false, reason: 'bad_secret' };
    // Re-read: a password changed while we hashed must not mint a token of the new version.
    const current = this.accountPrincipal(row.username);
    if (!current) return { ok: false, reason: 'unknown' };
    return current.tokenVersion === row.token_version ? { ok: true, principal: current } : { ok: false, reason: 'bad_secret' };
  }

  accountPrincipal(username: string): Principal | undefined {
    const row = this.db.prepare('SELECT username, role, token_version FROM cloud_accounts WHERE username = ?').get(username) as
      | Pick<AccountRow, 'username' | 'role' | 'token_version'>
      | undefined;
    return row && { kind: 'account', name: row.username, role: row.role, tokenVersion: row.token_version };
  }

  /**
   * The stored hash a name's password is checked against ('' when there is none), for the smart
   * lockout to bind remembered wrong passwords to it. Never leaves the server.
   */
  credentialStamp(kind: Principal['kind'], name: string): string {
    const sql = kind === 'account' ? 'SELECT password_hash FROM cloud_accounts WHERE username = ?' : 'SELECT secret_hash FROM cloud_clients WHERE client_id = ?';
    return (this.db.prepare(sql).pluck().get(name) as string | undefined) ?? '';
  }

  // ---- clients ----

  async createClient(clientId: string, secret: string, role: Role): Promise<ClientInfo | undefined> {
    const hash = await hashSecret(secret, this.hashParams);
    const at = this.iso();
    const res = this.db
      .prepare('INSERT INTO cloud_clients (client_id, role, secret_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (client_id) DO NOTHING')
      .run(clientId, role, hash, at);
    return res.changes === 1 ? { clientId, role, createdAt: at } : undefined;
  }

  listClients(): ClientInfo[] {
    return (this.db.prepare('SELECT * FROM cloud_clients ORDER BY client_id').all() as ClientRow[]).map((r) => ({
      clientId: r.client_id,
      role: r.role,
      createdAt: r.created_at,
    }));
  }

  deleteClient(clientId: string): boolean {
    return this.db.prepare('DELETE FROM cloud_clients WHERE client_id = ?').run(clientId).changes === 1;
  }

  async checkClientSecret(clientId: string, secret: string): Promise<CredentialCheck> {
    const row = this.db.prepare('SELECT * FROM cloud_clients WHERE client_id = ?').get(clientId) as ClientRow | undefined;
    if (!row) {
      await burnSecretCheck(secret, this.hashParams);
      return { ok: false, reason: 'unknown' };
    }
    if (!(await verifySecret(secret, row.secret_hash))) return { ok: false, reason: 'bad_secret' };
    const current = this.clientPrincipal(row.client_id);
    if (!current) return { ok: false, reason: 'unknown' };
    return current.tokenVersion === row.token_version ? { ok: true, principal: current } : { ok: false, reason: 'bad_secret' };
  }

  clientPrincipal(clientId: string): Principal | undefined {
    const row = this.db.prepare('SELECT client_id, role, token_version FROM cloud_clients WHERE client_id = ?').get(clientId) as
      | Pick<ClientRow, 'client_id' | 'role' | 'token_version'>
      | undefined;
    return row && { kind: 'client', name: row.client_id, role: row.role, tokenVersion: row.token_version };
  }

  /** The current state of whoever a token names; undefined when it no longer exists. */
  principal(kind: Principal['kind'], name: string): Principal | undefined {
    return kind === 'account' ? this.accountPrincipal(name) : this.clientPrincipal(name);
  }
}

function accountInfo(row: AccountRow): AccountInfo {
  return { username: row.username, role: row.role, createdAt: row.created_at, passwordChangedAt: row.password_changed_at };
}
