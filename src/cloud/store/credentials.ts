/**
 * The cloud directory's own credential store: the secrets it needs before it can reach its
 * database (today one, `database`: the PostgreSQL password), sealed in its data directory.
 * `idsync cloud credentials set database` writes it (from stdin); `idsync cloud serve --database`
 * reads it when it connects (the main thread and the SCIM worker each, when they open their pool),
 * unless IDSYNC_CLOUD_DATABASE_PASSWORD is set. It is never printed, logged or put in argv.
 *
 * Sealing: AES-256-GCM with the cloud's key, from IDSYNC_CLOUD_SECRET_KEY (base64, 32 bytes) or
 * `<data>/cloud-secret.key` (created 0600 on first use; refused when others may read it). Each
 * secret is `<data>/<name>.credential` (0600), JSON with the key's fingerprint, so a wrong key is
 * told apart from a damaged file. (The sync service's store, src/credentials/, is the sync side's:
 * the cloud runs on its own and shares no code with it.)
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { IdsyncError } from '../../core/errors.js';

export const CLOUD_SECRET_KEY_ENV = 'IDSYNC_CLOUD_SECRET_KEY';
export const CLOUD_SECRET_KEY_FILE = 'cloud-secret.key';
/** The credentials the cloud knows. */
export const CLOUD_CREDENTIALS = ['database'] as const;
export type CloudCredential = (typeof CLOUD_CREDENTIALS)[number];

const KEY_BYTES = 32;
const MAX_SECRET_BYTES = 64 * 1024;

interface Sealed {
  v: 1;
  keyId: string;
  iv: string;
  tag: string;
  data: string;
  changedAt: string;
}

const keyIdOf = (key: Buffer): string => createHash('sha256').update('idsync-cloud-credential-key\0').update(key).digest('hex').slice(0, 16);
const fileOf = (dataDir: string, name: CloudCredential): string => path.join(dataDir, `${name}.credential`);

function keyError(message: string): IdsyncError {
  return new IdsyncError('SECRET_KEY_INVALID', message, {
    hint: `Give the cloud's key in ${CLOUD_SECRET_KEY_ENV} (base64 of ${KEY_BYTES} bytes) or restore ${CLOUD_SECRET_KEY_FILE} in the data directory (owner-only).`,
  });
}

function decodeKey(text: string, source: string): Buffer {
  const key = /^[A-Za-z0-9+/]+={0,2}$/.test(text.trim()) ? Buffer.from(text.trim(), 'base64') : Buffer.alloc(0);
  if (key.length !== KEY_BYTES) throw keyError(`${source} does not hold a ${KEY_BYTES}-byte key in base64`);
  return key;
}

/** The cloud's key; `create` makes the key file when there is none. */
function loadKey(dataDir: string, env: NodeJS.ProcessEnv, create: boolean): Buffer | undefined {
  const fromEnv = env[CLOUD_SECRET_KEY_ENV];
  if (fromEnv) return decodeKey(fromEnv, `environment variable ${CLOUD_SECRET_KEY_ENV}`);
  const file = path.join(dataDir, CLOUD_SECRET_KEY_FILE);
  if (existsSync(file)) {
    if ((statSync(file).mode & 0o077) !== 0) throw keyError(`key file ${file} is readable by other users; refusing to use it (chmod 600)`);
    return decodeKey(readFileSync(file, 'utf8'), `key file ${file}`);
  }
  if (!create) return undefined;
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(KEY_BYTES);
  writePrivate(file, key.toString('base64') + '\n');
  return key;
}

/** Writes `text` to `file` (mode 0600) through a temporary file, so a reader never sees half of it. */
function writePrivate(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export function isCloudCredential(name: string): name is CloudCredential {
  return (CLOUD_CREDENTIALS as readonly string[]).includes(name);
}

/** Seals `secret` under `name` in the data directory (creating the key on first use). */
export function setCloudCredential(dataDir: string, name: CloudCredential, secret: string, env: NodeJS.ProcessEnv = process.env, now = new Date()): void {
  if (secret.length === 0) throw new IdsyncError('CREDENTIAL_INVALID', 'the secret is empty', { hint: 'Pipe the password on stdin, alone on its line.' });
  if (Buffer.byteLength(secret, 'utf8') > MAX_SECRET_BYTES) throw new IdsyncError('CREDENTIAL_INVALID', `the secret is longer than ${MAX_SECRET_BYTES} bytes`, { hint: 'Check that the input is the secret alone (one line).' });
  const key = loadKey(dataDir, env, true)!;
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(`idsync-cloud-credential\0${name}`));
  const data = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  const sealed: Sealed = { v: 1, keyId: keyIdOf(key), iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64'), changedAt: now.toISOString() };
  writePrivate(fileOf(dataDir, name), JSON.stringify(sealed) + '\n');
}

/** The secret stored under `name`, or undefined when none is. Throws (naming no secret) when it cannot be opened. */
export function getCloudCredential(dataDir: string, name: CloudCredential, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const file = fileOf(dataDir, name);
  if (!existsSync(file)) return undefined;
  const unreadable = (why: string) =>
    new IdsyncError('CREDENTIAL_INVALID', `the cloud credential "${name}" in ${file} ${why}`, { hint: `Set it again: printf %s "$PASSWORD" | idsync cloud credentials set ${name} --data ${dataDir}` });
  let sealed: Sealed;
  try {
    sealed = JSON.parse(readFileSync(file, 'utf8')) as Sealed;
  } catch {
    throw unreadable('is damaged');
  }
  const key = loadKey(dataDir, env, false);
  if (!key) throw keyError(`the cloud credential "${name}" is sealed, but there is no key (${CLOUD_SECRET_KEY_ENV} or ${path.join(dataDir, CLOUD_SECRET_KEY_FILE)})`);
  if (sealed.keyId !== keyIdOf(key)) throw keyError(`the cloud credential "${name}" was sealed with another key than the one in use`);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.iv, 'base64'));
    decipher.setAAD(Buffer.from(`idsync-cloud-credential\0${name}`));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    throw unreadable('is damaged (it does not decrypt)');
  }
}

/** Removes the credential; false when there was none. */
export function deleteCloudCredential(dataDir: string, name: CloudCredential): boolean {
  const file = fileOf(dataDir, name);
  if (!existsSync(file)) return false;
  unlinkSync(file);
  return true;
}

/** The credentials stored, with when each was set (never their values). */
export function listCloudCredentials(dataDir: string): { name: CloudCredential; changedAt: string | undefined }[] {
  return CLOUD_CREDENTIALS.filter((n) => existsSync(fileOf(dataDir, n))).map((name) => {
    try {
      return { name, changedAt: (JSON.parse(readFileSync(fileOf(dataDir, name), 'utf8')) as Sealed).changedAt };
    } catch {
      return { name, changedAt: undefined };
    }
  });
}
