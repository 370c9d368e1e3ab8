/**
 * The configured store as the store module opens it: the SQLite file in the data directory, or the
 * PostgreSQL URL with its password and TLS files read here.
 *
 * The password's chicken-and-egg: every other secret lives in the credential store, which lives in
 * this very database, so the database password cannot. It comes from $IDSYNC_STORE_PASSWORD (set by
 * the service manager) or from `store.passwordFile` — a file readable by its owner only, such as a
 * systemd credential (LoadCredential=, $CREDENTIALS_DIRECTORY) — and is never printed or logged.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { IdsyncError } from '../core/errors.js';
import { DATABASE_FILE, type StoreLocation } from '../store/database.js';
import type { LoadedConfig } from './load.js';

export const STORE_PASSWORD_ENV = 'IDSYNC_STORE_PASSWORD';

export interface StoreLocationOptions {
  env?: NodeJS.ProcessEnv;
  /** SQLite: open this file instead of <dataDir>/idsync.db (`:memory:` for a look at nothing). */
  sqliteFile?: string;
}

export function storeLocation(loaded: LoadedConfig, opts: StoreLocationOptions = {}): StoreLocation {
  const store = loaded.config.store;
  if (store.type === 'sqlite') return { type: 'sqlite', file: opts.sqliteFile ?? path.join(loaded.dataDir, DATABASE_FILE) };
  const env = opts.env ?? process.env;
  const password = store.passwordFile !== undefined ? readPasswordFile(loaded.resolvePath(store.passwordFile)) : env[STORE_PASSWORD_ENV];
  const tls = store.tls;
  return {
    type: 'postgres',
    url: store.url,
    ...(password !== undefined && password !== '' ? { password } : {}),
    ...(tls
      ? {
          tls: {
            ...(tls.caFile !== undefined ? { ca: readPem(loaded.resolvePath(tls.caFile), 'store.tls.caFile') } : {}),
            ...(tls.certFile !== undefined ? { cert: readPem(loaded.resolvePath(tls.certFile), 'store.tls.certFile') } : {}),
            ...(tls.keyFile !== undefined ? { key: readPem(loaded.resolvePath(tls.keyFile), 'store.tls.keyFile', true) } : {}),
            ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
            verify: tls.verify,
          },
        }
      : {}),
    applicationName: 'idsync',
  };
}

/** A secret file others can read is refused, as ssh refuses such a key: its secret may be known. */
function ownerOnly(file: string, what: string): void {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (err) {
    throw new IdsyncError('CONFIG_INVALID', `${what} ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      hint: `Create it (first line: the password) and make it readable by the service's user only: chmod 600 ${file}.`,
    });
  }
  if ((mode & 0o077) !== 0) {
    throw new IdsyncError('CONFIG_INVALID', `${what} ${file} is readable by other users (mode ${(mode & 0o777).toString(8)})`, {
      hint: `chmod 600 ${file}, then change the database password: others could have read it.`,
    });
  }
}

function readPasswordFile(file: string): string {
  ownerOnly(file, 'store.passwordFile');
  const first = readFileSync(file, 'utf8').split(/\r?\n/)[0] ?? '';
  if (first === '') throw new IdsyncError('CONFIG_INVALID', `store.passwordFile ${file} is empty`, { hint: 'Write the database password on its first line.' });
  return first;
}

function readPem(file: string, what: string, secret = false): string {
  if (secret) ownerOnly(file, what);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new IdsyncError('CONFIG_INVALID', `${what} ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { hint: 'Give the path of a PEM file (relative to the configuration file).' });
  }
}
