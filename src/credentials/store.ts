/**
 * The one credential store (DESIGN.md §1). Every component that authenticates — import, export,
 * password sync, notification intake — asks this store for its secret at the moment it needs it,
 * through a SecretResolver. Nothing caches a decrypted secret, so a credential saved by
 * `idsync credentials set` in another process is used by the next call of every component of a
 * running service, without a restart: the incumbent's KB 2962509 outage cannot happen.
 *
 * Secrets are encrypted with AES-256-GCM: a fresh 12-byte IV per write, the connector name as
 * additional authenticated data (a ciphertext copied to another connector's row does not decrypt),
 * and the key's fingerprint next to each row (so a wrong key is named as such, not as corruption).
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import path from 'node:path';
import { IdsyncError, isIdsyncError } from '../core/errors.js';
import { withoutSecret } from '../core/secret-text.js';
import type { Database, Migration } from '../store/database.js';
import { keyId, loadExistingKey, loadOrCreateKey, SECRET_KEY_BYTES, SECRET_KEY_ENV, SECRET_KEY_FILE } from './key.js';
import { RefusedSecrets, refusalMigrations, type PresentDecision, type RefusalInput, type RefusalRecord } from './refusals.js';

/** Reads a connector's secret at use time (same shape as connectors/types.ts SecretResolver). */
export type SecretResolver = () => Promise<string | undefined>;

export const credentialMigrations: Migration[] = [
  {
    id: 'credentials/001',
    sql: `
      CREATE TABLE credentials (
        connector       TEXT PRIMARY KEY,
        ciphertext      BLOB NOT NULL,
        iv              BLOB NOT NULL,
        tag             BLOB NOT NULL,
        key_id          TEXT NOT NULL,
        changed_at      TEXT NOT NULL,
        last_test_at    TEXT,
        last_test_ok    INTEGER,
        last_error_code TEXT
      );
    `,
  },
  ...refusalMigrations,
];

export interface CredentialInfo {
  name: string;
  /** ISO time of the last change of the secret. */
  changedAt: string;
  lastTestAt: string | null;
  lastTestOk: boolean | null;
  lastErrorCode: string | null;
}

/** Longest secret accepted (passwords, client secrets, tokens): far above any real one. */
export const MAX_SECRET_BYTES = 64 * 1024;

const IV_BYTES = 12;
const ALGORITHM = 'aes-256-gcm';

interface Row {
  connector: string;
  ciphertext: Buffer;
  iv: Buffer;
  tag: Buffer;
  key_id: string;
  changed_at: string;
  last_test_at: string | null;
  last_test_ok: number | null;
  last_error_code: string | null;
}

export class CredentialStore {
  readonly #db: Database;
  readonly #key: Buffer;
  readonly #keyId: string;
  /** Secrets their directory refused: not presented again until they change (refusals.ts). */
  readonly refusals: RefusedSecrets;

  constructor(db: Database, key: Buffer) {
    if (!Buffer.isBuffer(key) || key.length !== SECRET_KEY_BYTES) {
      throw new IdsyncError('SECRET_KEY_INVALID', `the credential store key must be ${SECRET_KEY_BYTES} bytes`, {
        hint: `Provide a ${SECRET_KEY_BYTES}-byte key in ${SECRET_KEY_FILE} or ${SECRET_KEY_ENV} (base64).`,
      });
    }
    this.#db = db;
    this.#key = Buffer.from(key);
    this.#keyId = keyId(key);
    this.refusals = new RefusedSecrets(db, (name, secret) => this.fingerprint(name, secret));
  }

  /**
   * A keyed digest of a secret (HMAC-SHA256 with the store key): tells whether a secret changed
   * without keeping anything an attacker with the database alone could test guesses against.
   */
  fingerprint(name: string, secret: string): string {
    return createHmac('sha256', this.#key).update('idsync-secret-fingerprint\0').update(name).update('\0').update(secret).digest('base64url');
  }

  /** Fingerprint of the key in use (not secret). */
  get keyId(): string {
    return this.#keyId;
  }

  /** Decrypts the connector's secret now (no cache). Undefined when none is set. */
  get(name: string): string | undefined {
    const row = this.#db.prepare('SELECT * FROM credentials WHERE connector = ?').get(name) as Row | undefined;
    if (!row) return undefined;
    return this.#decrypt(row);
  }

  has(name: string): boolean {
    return this.#db.prepare('SELECT 1 FROM credentials WHERE connector = ?').get(name) !== undefined;
  }

  /** Saves (or replaces) a connector's secret without validating it. Clears the last test result. */
  set(name: string, secret: string): void {
    this.#write(name, secret, null);
  }

  /**
   * Validates a NEW secret against its directory, then saves it. When the directory refuses it, the
   * working secret stays as it was (nothing is written) and a CREDENTIAL_INVALID error says why.
   */
  async setValidated(name: string, secret: string, validate: (secret: string) => Promise<void>): Promise<void> {
    checkName(name);
    checkSecret(secret);
    try {
      await validate(secret);
    } catch (err) {
      const cause = err instanceof Error ? err : new Error(String(err));
      const causeCode = isIdsyncError(err) ? err.code : undefined;
      const reason = withoutSecret(cause.message, secret);
      const kept = this.has(name) ? 'the saved credential is kept' : 'nothing was saved';
      throw new IdsyncError('CREDENTIAL_INVALID', `the new credential for connector "${name}" was not accepted: ${reason} (${kept})`, {
        hint: (isIdsyncError(err) && err.hint ? withoutSecret(err.hint, secret) + ' ' : '') + 'Check the secret and try again; it is saved only once its directory accepts it.',
        details: { connector: name, ...(causeCode ? { causeCode } : {}) },
        cause: err,
      });
    }
    this.#write(name, secret, { at: new Date().toISOString(), ok: true, errorCode: null });
  }

  /** Removes a connector's secret; returns whether there was one. */
  delete(name: string): boolean {
    return this.#db.prepare('DELETE FROM credentials WHERE connector = ?').run(name).changes > 0;
  }

  /**
   * Moves a connector's credential to a new name (`idsync connectors rename`). The name is the
   * cipher's associated data, so the secret is re-sealed under the new one (in memory only, never
   * printed); its change time and last test result are kept. The refusal of the stored secret moves
   * with it (re-fingerprinted under the new name); refusals of secrets no longer stored are dropped,
   * since only the stored secret is ever presented. Run it inside the caller's transaction.
   * Returns whether there was a credential to move.
   */
  rename(from: string, to: string): boolean {
    checkName(to);
    const row = this.#db.prepare('SELECT * FROM credentials WHERE connector = ?').get(from) as Row | undefined;
    if (!row) {
      this.refusals.forget(from);
      return false;
    }
    const secret = this.#decrypt(row);
    const sealed = this.#seal(to, secret);
    // A plain INSERT: a credential already stored under the new name is a clash, not overwritten.
    this.#db
      .prepare(
        `INSERT INTO credentials (connector, ciphertext, iv, tag, key_id, changed_at, last_test_at, last_test_ok, last_error_code)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(to, sealed.ciphertext, sealed.iv, sealed.tag, this.#keyId, row.changed_at, row.last_test_at, row.last_test_ok, row.last_error_code);
    this.#db.prepare('DELETE FROM credentials WHERE connector = ?').run(from);
    this.refusals.move(from, this.fingerprint(from, secret), to, this.fingerprint(to, secret));
    return true;
  }

  /** Forgets a connector's credential and the refusals recorded against it (`idsync connectors forget`). */
  forget(name: string): boolean {
    this.refusals.forget(name);
    return this.delete(name);
  }

  /** Every stored credential's metadata, by name. Never the secrets. */
  list(): CredentialInfo[] {
    const rows = this.#db
      .prepare('SELECT connector, changed_at, last_test_at, last_test_ok, last_error_code FROM credentials ORDER BY connector')
      .all() as Row[];
    return rows.map((r) => ({
      name: r.connector,
      changedAt: r.changed_at,
      lastTestAt: r.last_test_at,
      lastTestOk: r.last_test_ok === null ? null : r.last_test_ok === 1,
      lastErrorCode: r.last_error_code,
    }));
  }

  /** Metadata of one credential, or undefined. */
  info(name: string): CredentialInfo | undefined {
    return this.list().find((c) => c.name === name);
  }

  /** Records the outcome of a test of the stored secret; returns false if none is stored. */
  recordTest(name: string, ok: boolean, errorCode?: string): boolean {
    const res = this.#db
      .prepare('UPDATE credentials SET last_test_at = ?, last_test_ok = ?, last_error_code = ? WHERE connector = ?')
      .run(new Date().toISOString(), ok ? 1 : 0, ok ? null : (errorCode ?? 'INTERNAL'), name);
    return res.changes > 0;
  }

  /**
   * What a client needs to never present a refused secret twice (refusals.ts): whether a secret may
   * be presented now, and where to record the directory's answer.
   */
  guard(name: string, recheckMs?: number): {
    mayPresent(secret: string): PresentDecision;
    refused(secret: string, refusal: RefusalInput): RefusalRecord;
    accepted(): void;
  } {
    return {
      mayPresent: (secret) => this.refusals.mayPresent(name, secret, recheckMs),
      refused: (secret, refusal) => this.refusals.recordRefusal(name, secret, refusal, recheckMs),
      accepted: () => this.refusals.recordAccepted(name),
    };
  }

  /** The recorded refusal of the stored secret, if its directory refused it (nothing is presented). */
  refusal(name: string): RefusalRecord | undefined {
    const secret = this.get(name);
    return secret === undefined ? undefined : this.refusals.refusalOf(name, secret);
  }

  /** The refusal of the stored secret while it is recorded and not due for a re-probe, else undefined. */
  refusedNow(name: string): RefusalRecord | undefined {
    const r = this.refusal(name);
    return r !== undefined && Date.parse(r.nextAttemptAt) > Date.now() ? r : undefined;
  }

  /** What connectors hold: reads the store at every call (DESIGN.md §1). */
  resolver(name: string): SecretResolver {
    return async () => this.get(name);
  }

  #write(name: string, secret: string, test: { at: string; ok: boolean; errorCode: string | null } | null): void {
    checkName(name);
    checkSecret(secret);
    const { ciphertext, iv, tag } = this.#seal(name, secret);
    this.#db
      .prepare(
        `INSERT INTO credentials (connector, ciphertext, iv, tag, key_id, changed_at, last_test_at, last_test_ok, last_error_code)
         VALUES (@connector, @ciphertext, @iv, @tag, @key_id, @changed_at, @last_test_at, @last_test_ok, @last_error_code)
         ON CONFLICT (connector) DO UPDATE SET
           ciphertext = excluded.ciphertext, iv = excluded.iv, tag = excluded.tag, key_id = excluded.key_id,
           changed_at = excluded.changed_at, last_test_at = excluded.last_test_at,
           last_test_ok = excluded.last_test_ok, last_error_code = excluded.last_error_code`,
      )
      .run({
        connector: name,
        ciphertext,
        iv,
        tag,
        key_id: this.#keyId,
        changed_at: new Date().toISOString(),
        last_test_at: test?.at ?? null,
        last_test_ok: test ? (test.ok ? 1 : 0) : null,
        last_error_code: test?.errorCode ?? null,
      });
  }

  /** The secret sealed with the data key, bound to the connector's name (its associated data). */
  #seal(name: string, secret: string): { ciphertext: Buffer; iv: Buffer; tag: Buffer } {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv(ALGORITHM, this.#key, iv);
    cipher.setAAD(Buffer.from(name, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    return { ciphertext, iv, tag: cipher.getAuthTag() };
  }

  #decrypt(row: Row): string {
    if (row.key_id !== this.#keyId) {
      throw new IdsyncError(
        'SECRET_KEY_INVALID',
        `the credential of connector "${row.connector}" was encrypted with another key (key id ${row.key_id}; the key in use is ${this.#keyId})`,
        {
          hint: `Use the ${SECRET_KEY_FILE} file (or ${SECRET_KEY_ENV}) this data directory was set up with, or set the credential again with \`idsync credentials set ${row.connector}\`.`,
          details: { connector: row.connector, storedKeyId: row.key_id, keyId: this.#keyId },
        },
      );
    }
    try {
      const decipher = createDecipheriv(ALGORITHM, this.#key, row.iv);
      decipher.setAAD(Buffer.from(row.connector, 'utf8'));
      decipher.setAuthTag(row.tag);
      return Buffer.concat([decipher.update(row.ciphertext), decipher.final()]).toString('utf8');
    } catch {
      // The key is right (same id) yet authentication failed: the row was altered or copied from
      // another connector. No OpenSSL text: it would mean nothing to an administrator.
      throw new IdsyncError('CREDENTIAL_INVALID', `the stored credential of connector "${row.connector}" cannot be decrypted: it was altered or copied from another connector`, {
        hint: `Set it again with \`idsync credentials set ${row.connector}\`.`,
        details: { connector: row.connector },
      });
    }
  }
}

/**
 * Loads (or creates) the store key for a data directory and opens the store on `db`. With
 * `create: false` no key file is written: without one, the store opens on a throwaway key, so
 * listing works and reading a secret fails as "encrypted with another key".
 */
export function openCredentialStore(db: Database, dataDir: string, env: NodeJS.ProcessEnv = process.env, opts: { create?: boolean } = {}): CredentialStore {
  const existing = loadExistingKey(dataDir, env);
  if (opts.create === false) return new CredentialStore(db, existing?.key ?? randomBytes(SECRET_KEY_BYTES));
  // No key here, but secrets stored with one: this process lacks the key the service has (its
  // $IDSYNC_SECRET_KEY, or a secret.key elsewhere). A new key would make every stored secret
  // unreadable, and a secret set with it unreadable to the service.
  const stored = existing ? undefined : db.prepare<[], { key_id: string }>('SELECT key_id FROM credentials LIMIT 1').get()?.key_id;
  if (stored !== undefined) {
    throw new IdsyncError('SECRET_KEY_INVALID', `the credential store holds secrets encrypted with key ${stored}, and this process has no key (neither ${SECRET_KEY_ENV} nor ${path.join(dataDir, SECRET_KEY_FILE)})`, {
      hint: `Run the command with the key the service uses (${SECRET_KEY_ENV}, e.g. from its environment file, or its ${SECRET_KEY_FILE}). If that key is lost, delete the stored credentials (\`idsync credentials delete NAME\`) and set them again.`,
      details: { storedKeyId: stored },
    });
  }
  return new CredentialStore(db, loadOrCreateKey(dataDir, env).key);
}

function checkName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > 200) {
    throw new IdsyncError('CREDENTIAL_INVALID', 'a credential needs a connector name (1 to 200 characters)', {
      hint: 'Use the connector name from the configuration file, or "cloud".',
    });
  }
}

function checkSecret(secret: string): void {
  if (typeof secret !== 'string' || secret.length === 0) {
    throw new IdsyncError('CREDENTIAL_INVALID', 'the secret is empty', { hint: 'Provide the password or client secret.' });
  }
  if (Buffer.byteLength(secret, 'utf8') > MAX_SECRET_BYTES) {
    throw new IdsyncError('CREDENTIAL_INVALID', `the secret is longer than ${MAX_SECRET_BYTES} bytes`, {
      hint: 'Check that the input is the secret alone (one line).',
    });
  }
}
