/**
 * Hashes for the consoles' own secrets: the cloud directory's account passwords and client secrets,
 * and the sync console's account.
 *
 * scrypt (memory-hard) on libuv's thread pool, never the event loop. The parameters travel in the
 * string, so raising them later only affects new hashes:
 *   scrypt$<log2 N>$<r>$<p>$<salt base64url>$<key base64url>
 * Defaults follow OWASP's password storage guidance (N=2^15, r=8, p=3: 32 MiB, ~0.25 s here).
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

export interface SecretHashParams {
  /** log2 of scrypt's N (CPU/memory cost). */
  logN: number;
  r: number;
  p: number;
}

export const DEFAULT_SECRET_HASH_PARAMS: SecretHashParams = { logN: 15, r: 8, p: 3 };

const KEY_BYTES = 32;
const SALT_BYTES = 16;
const PATTERN = /^scrypt\$(\d{1,2})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9_-]{16,64})\$([A-Za-z0-9_-]{43})$/;

function derive(secret: string, salt: Buffer, params: SecretHashParams): Promise<Buffer> {
  const N = 2 ** params.logN;
  const options: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 128 * N * params.r * 2 + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(secret.normalize('NFC'), salt, KEY_BYTES, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function hashSecret(secret: string, params: SecretHashParams = DEFAULT_SECRET_HASH_PARAMS): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(secret, salt, params);
  return `scrypt$${params.logN}$${params.r}$${params.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

function parse(stored: string): { params: SecretHashParams; salt: Buffer; key: Buffer } | undefined {
  const m = PATTERN.exec(stored);
  if (!m) return undefined;
  const params = { logN: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (params.logN < 10 || params.logN > 20 || params.r < 1 || params.p < 1 || params.p > 16) return undefined;
  return { params, salt: Buffer.from(m[4]!, 'base64url'), key: Buffer.from(m[5]!, 'base64url') };
}

/** Constant-time check of a secret against a stored hash; false for a malformed hash. */
export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const parsed = parse(stored);
  if (!parsed) return false;
  const key = await derive(secret, parsed.salt, parsed.params);
  return key.length === parsed.key.length && timingSafeEqual(key, parsed.key);
}

/**
 * Spends the same time as a real check, for callers that found no stored hash: an unknown name
 * must cost what a wrong password costs, or the timing tells which accounts exist.
 */
export async function burnSecretCheck(secret: string, params: SecretHashParams = DEFAULT_SECRET_HASH_PARAMS): Promise<void> {
  await derive(secret, DUMMY_SALT, params);
}
const DUMMY_SALT = randomBytes(SALT_BYTES);

/** A random secret for generated passwords and client secrets (192 bits, URL-safe). */
export function generateSecret(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}
