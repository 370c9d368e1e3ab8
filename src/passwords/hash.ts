/**
 * The password hash sync transform (the incumbent's, reproduced against published vectors in
 * ../shared/vectors):
 *   NT hash    = MD4(UTF-16LE(password))                                    16 bytes
 *   OrgId hash = PBKDF2-HMAC-SHA256(UTF-16LE(UPPER-case hex(NT hash)), salt(10 random bytes), 1000, 32)
 *   written      v1;PPH1_MD4,<salt hex>,<iterations>,<hash hex>;            lower-case hex
 * PBKDF2 runs on libuv's thread pool (async crypto.pbkdf2): it is ~80% of a PHS sync's CPU, and
 * pbkdf2Sync would block the event loop. MD4 is plain TypeScript (md4.ts) because Node 20's OpenSSL 3 has none.
 */
import { pbkdf2, randomFillSync, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { IdsyncError } from '../core/errors.js';
import { md4 } from './md4.js';

const pbkdf2Async = promisify(pbkdf2);

/** Threads of libuv's pool, where crypto.pbkdf2 runs (UV_THREADPOOL_SIZE, default 4, at most 1024). */
export function hashPoolThreads(): number {
  const pool = Number(process.env.UV_THREADPOOL_SIZE);
  return Number.isInteger(pool) && pool > 0 ? Math.min(pool, 1024) : 4;
}

/**
 * How far ahead of the receiver's clock a password change may be dated (AD's Kerberos tolerance,
 * 5 min). Both the sync side (outbox.ts) and the cloud (cloud/passwords) date a later change by its
 * arrival, and never let a stored date beyond it block a real change: kept as it came, one change
 * from a DC whose clock ran ahead would make every real change of its user "older" until that date.
 */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

export const ORGID_ITERATIONS = 1000;
export const ORGID_SALT_BYTES = 10;
export const ORGID_KEY_BYTES = 32;
/** Active Directory's limit on password length, in UTF-16 code units. */
export const MAX_PASSWORD_LENGTH = 256;
/** Verifiers accept older incumbent strings (100) and refuse absurd counts (DoS on sign-in). */
const MIN_VERIFY_ITERATIONS = 1;
const MAX_VERIFY_ITERATIONS = 100_000;

/** Throws PASSWORD_TOO_LONG / PASSWORD_NOT_TEXT; never puts the password in the message. */
export function assertPasswordUsable(password: string): void {
  if (password.length > MAX_PASSWORD_LENGTH) {
    throw new IdsyncError('PASSWORD_TOO_LONG', `password is longer than ${MAX_PASSWORD_LENGTH} characters (Active Directory's limit)`, {
      hint: 'Active Directory refuses such passwords; check the input.',
      details: { length: password.length },
    });
  }
  // A lone surrogate cannot be encoded as UTF-16LE faithfully: the hash would not match AD's.
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(password)) {
    throw new IdsyncError('PASSWORD_NOT_TEXT', 'password is not valid Unicode text', {
      hint: 'Pass the password as UTF-8 text.',
    });
  }
}

/** NT hash (16 bytes) of a password. */
export async function ntHash(password: string): Promise<Buffer> {
  assertPasswordUsable(password);
  const utf16 = Buffer.from(password, 'utf16le');
  const nt = md4(utf16);
  utf16.fill(0); // the password's bytes do not outlive the hash
  return nt;
}

export interface OrgIdOptions {
  salt?: Buffer;
  iterations?: number;
}

/** Salts are cut from a block of CSPRNG output (one randomFillSync per 512 hashes instead of one each). */
const SALT_BLOCK = ORGID_SALT_BYTES * 512;
const salts = Buffer.alloc(SALT_BLOCK);
let saltAt = SALT_BLOCK;
function freshSalt(): Buffer {
  if (saltAt >= SALT_BLOCK) {
    randomFillSync(salts);
    saltAt = 0;
  }
  return Buffer.from(salts.subarray(saltAt, (saltAt += ORGID_SALT_BYTES)));
}

/** OrgId hash string from an NT hash. */
export async function orgIdHashFromNt(nt: Buffer, options: OrgIdOptions = {}): Promise<string> {
  if (nt.length !== 16) {
    throw new IdsyncError('HASH_INPUT_INVALID', `an NT hash is 16 bytes, got ${nt.length}`, {
      hint: 'Pass the NT hash as 32 hexadecimal characters.',
    });
  }
  const salt = options.salt ?? freshSalt();
  const iterations = options.iterations ?? ORGID_ITERATIONS;
  const key = await derive(nt, salt, iterations);
  return `v1;PPH1_MD4,${salt.toString('hex')},${iterations},${key.toString('hex')};`;
}

/** OrgId hash string from a password (NT hash first, then PBKDF2). */
export async function orgIdHash(password: string, options: OrgIdOptions = {}): Promise<string> {
  return orgIdHashFromNt(await ntHash(password), options);
}

function derive(nt: Buffer, salt: Buffer, iterations: number): Promise<Buffer> {
  // The incumbent hashes the UPPER-case hex of the NT hash, as UTF-16LE.
  const material = Buffer.from(nt.toString('hex').toUpperCase(), 'utf16le');
  return pbkdf2Async(material, salt, iterations, ORGID_KEY_BYTES, 'sha256');
}

export interface ParsedOrgIdHash {
  salt: Buffer;
  iterations: number;
  key: Buffer;
}

const ORGID_PATTERN = /^v1;PPH1_MD4,([0-9a-f]{2,128}),(\d{1,7}),([0-9a-f]{64});$/;

/** Parses `v1;PPH1_MD4,<salt>,<iterations>,<hash>;`; returns undefined when malformed. */
export function parseOrgIdHash(value: string): ParsedOrgIdHash | undefined {
  const m = ORGID_PATTERN.exec(value);
  if (!m || m[1]!.length % 2 !== 0) return undefined;
  const iterations = Number(m[2]);
  if (iterations < MIN_VERIFY_ITERATIONS || iterations > MAX_VERIFY_ITERATIONS) return undefined;
  return { salt: Buffer.from(m[1]!, 'hex'), iterations, key: Buffer.from(m[3]!, 'hex') };
}

export function isOrgIdHash(value: string): boolean {
  return parseOrgIdHash(value) !== undefined;
}

/**
 * Checks a password against a stored OrgId hash, with the iteration count the string names.
 * Constant-time comparison of the derived keys.
 */
export async function verifyOrgIdHash(password: string, stored: string): Promise<boolean> {
  const parsed = parseOrgIdHash(stored);
  if (!parsed) return false;
  let nt: Buffer;
  try {
    nt = await ntHash(password);
  } catch {
    return false;
  }
  const key = await derive(nt, parsed.salt, parsed.iterations);
  return key.length === parsed.key.length && timingSafeEqual(key, parsed.key);
}
