/**
 * The key that encrypts the credential store: 32 random bytes, from the environment variable
 * IDSYNC_SECRET_KEY (base64) when it is set, otherwise from `<dataDir>/secret.key` (created on first
 * use with mode 0600). A key file that group or others can read is refused: whoever reads it can
 * decrypt every connector's credential.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { IdsyncError } from '../core/errors.js';
import { fileSystemError, makeDirectory } from '../core/fs-errors.js';

export const SECRET_KEY_FILE = 'secret.key';
export const SECRET_KEY_ENV = 'IDSYNC_SECRET_KEY';
export const SECRET_KEY_BYTES = 32;

export interface LoadedKey {
  key: Buffer;
  /** Where it came from, for messages: the file path or the environment variable's name. */
  source: string;
  /** True when this call created the key file. */
  created: boolean;
}

/** Short, non-secret fingerprint of a key, stored next to each ciphertext to tell "wrong key" apart. */
export function keyId(key: Buffer): string {
  return createHash('sha256').update('idsync-credential-key\0').update(key).digest('hex').slice(0, 16);
}

export function generateKey(): Buffer {
  return randomBytes(SECRET_KEY_BYTES);
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Decodes a base64 key; throws SECRET_KEY_INVALID naming the source (never the value). */
export function decodeKey(text: string, source: string): Buffer {
  const trimmed = text.trim();
  const key = BASE64.test(trimmed) && trimmed.length % 4 === 0 ? Buffer.from(trimmed, 'base64') : undefined;
  if (!key || key.length !== SECRET_KEY_BYTES) {
    throw new IdsyncError('SECRET_KEY_INVALID', `${source} does not hold a ${SECRET_KEY_BYTES}-byte key in base64`, {
      hint: `Generate one with \`head -c ${SECRET_KEY_BYTES} /dev/urandom | base64\`; a key that encrypted existing credentials must be restored from its backup.`,
      details: { source },
    });
  }
  return key;
}

export function encodeKey(key: Buffer): string {
  return key.toString('base64') + '\n';
}

/**
 * Loads the store key: IDSYNC_SECRET_KEY if set (never writes a file then), else the key file,
 * created with mode 0600 when missing.
 */
export function loadOrCreateKey(dataDir: string, env: NodeJS.ProcessEnv = process.env): LoadedKey {
  const fromEnv = env[SECRET_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== '') {
    return { key: decodeKey(fromEnv, `environment variable ${SECRET_KEY_ENV}`), source: SECRET_KEY_ENV, created: false };
  }
  const file = path.join(dataDir, SECRET_KEY_FILE);
  const existing = readKeyFile(file);
  if (existing) return { key: existing, source: file, created: false };
  const key = generateKey();
  if (createKeyFile(file, key)) return { key, source: file, created: true };
  // Another process created it between our read and our write: use theirs.
  const theirs = readKeyFile(file);
  if (!theirs) throw keyFileError(file, 'disappeared while it was being created');
  return { key: theirs, source: file, created: false };
}

/**
 * The store key without creating one (for read-only commands): IDSYNC_SECRET_KEY, else the key file,
 * else undefined.
 */
export function loadExistingKey(dataDir: string, env: NodeJS.ProcessEnv = process.env): LoadedKey | undefined {
  const fromEnv = env[SECRET_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== '') {
    return { key: decodeKey(fromEnv, `environment variable ${SECRET_KEY_ENV}`), source: SECRET_KEY_ENV, created: false };
  }
  const file = path.join(dataDir, SECRET_KEY_FILE);
  const key = readKeyFile(file);
  return key && { key, source: file, created: false };
}

/** Reads and checks a key file; undefined when it does not exist. */
export function readKeyFile(file: string): Buffer | undefined {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw keyFileError(file, `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, err);
  }
  if (!st.isFile()) throw keyFileError(file, 'is not a regular file');
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
    throw new IdsyncError('SECRET_KEY_INVALID', `key file ${file} is readable by other users (mode ${mode}); refusing to use it`, {
      hint: `Restrict it to its owner: \`chmod 600 ${file}\` (and check who may have copied it).`,
      details: { file, mode },
    });
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw keyFileError(file, `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, err);
  }
  return decodeKey(text, `key file ${file}`);
}

/**
 * Creates the key file atomically with mode 0600: written to a private temporary file, then
 * hard-linked into place (fails if it already exists, so two processes never overwrite each other).
 * Returns false when the file already existed.
 */
export function createKeyFile(file: string, key: Buffer): boolean {
  makeDirectory(path.dirname(file), 'cannot create the data directory');
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, encodeKey(key));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    rmSync(tmp, { force: true });
    throw fileSystemError(err, 'cannot write the key file', file);
  }
  try {
    linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw keyFileError(file, `cannot be created (${(err as NodeJS.ErrnoException).code ?? 'error'})`, err);
  } finally {
    unlinkSync(tmp);
  }
}

function keyFileError(file: string, what: string, cause?: unknown): IdsyncError {
  return new IdsyncError('SECRET_KEY_INVALID', `key file ${file} ${what}`, {
    hint: `Check the data directory's permissions, or provide the key in ${SECRET_KEY_ENV} (base64).`,
    details: { file },
    cause,
  });
}
