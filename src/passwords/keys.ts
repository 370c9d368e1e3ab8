/**
 * Keys for password material at rest, derived from the credential store's data key (the same
 * 32 bytes, `<dataDir>/secret.key` or IDSYNC_SECRET_KEY) with HKDF, one sub-key per purpose:
 *  - `seal`: AES-256-GCM for the OrgId hashes waiting in the outbox and the last known hash per user;
 *  - `fingerprint`: HMAC-SHA256 of an NT hash, to tell "changed since last time" without storing it.
 * Whoever reads idsync.db without the key learns neither the hashes nor anything to crack offline.
 */
import * as nodeCrypto from 'node:crypto';
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomFillSync } from 'node:crypto';
import { IdsyncError } from '../core/errors.js';
import { keyId } from '../credentials/key.js';

const IV_BYTES = 12;
/** IVs are cut from a block of CSPRNG output: one randomFillSync per 512 seals instead of one each (≈ 2.5 µs apiece). */
const IV_BLOCK = IV_BYTES * 512;
/** SHA-256's block size: HMAC's key pads are one block (RFC 2104). */
const SHA256_BLOCK = 64;
const SHA256_BYTES = 32;
/** crypto.hash (one-shot digest) came with Node 20.12; on an older Node 20 the fingerprint uses createHmac. */
const oneShotHash = (nodeCrypto as { hash?: (algorithm: string, data: Uint8Array, encoding: 'binary') => string }).hash;

export interface Sealed {
  ct: Buffer;
  iv: Buffer;
  tag: Buffer;
  keyId: string;
}

export class PasswordKeys {
  readonly #seal: Buffer;
  readonly #fingerprint: Buffer;
  /** Fingerprint of the data key (not secret), stored next to each ciphertext. */
  readonly keyId: string;
  #ivs = Buffer.alloc(IV_BLOCK);
  #ivAt = IV_BLOCK;
  /** The fingerprint key XOR HMAC's inner and outer pads. */
  readonly #innerPad: Buffer;
  readonly #outerPad: Buffer;
  /** Where a fingerprint's HMAC input is laid out (grown for a longer anchor). */
  #scratch = Buffer.alloc(SHA256_BLOCK + 256);

  constructor(dataKey: Buffer) {
    if (!Buffer.isBuffer(dataKey) || dataKey.length !== 32) {
      throw new IdsyncError('SECRET_KEY_INVALID', 'the password pipeline needs the 32-byte data key of the credential store', {
        hint: 'Open the pipeline with the key from secret.key or IDSYNC_SECRET_KEY (see docs/credentials.md).',
      });
    }
    this.#seal = Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), 'idsync/passwords/seal/v1', 32));
    this.#fingerprint = Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), 'idsync/passwords/fingerprint/v1', 32));
    this.keyId = keyId(dataKey);
    this.#innerPad = Buffer.alloc(SHA256_BLOCK, 0x36);
    this.#outerPad = Buffer.alloc(SHA256_BLOCK, 0x5c);
    for (let i = 0; i < this.#fingerprint.length; i++) {
      this.#innerPad[i]! ^= this.#fingerprint[i]!;
      this.#outerPad[i]! ^= this.#fingerprint[i]!;
    }
  }

  /** Encrypts `text`, bound to `aad` (the user's anchor): a row copied to another user does not open. */
  seal(text: string, aad: string): Sealed {
    if (this.#ivAt >= IV_BLOCK) {
      randomFillSync(this.#ivs);
      this.#ivAt = 0;
    }
    // A copy: the stored IV must not change when the block is refilled.
    const iv = Buffer.from(this.#ivs.subarray(this.#ivAt, (this.#ivAt += IV_BYTES)));
    const cipher = createCipheriv('aes-256-gcm', this.#seal, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ct = cipher.update(text, 'utf8');
    cipher.final(); // GCM is a stream mode: final() adds no bytes, it computes the tag
    return { ct, iv, tag: cipher.getAuthTag(), keyId: this.keyId };
  }

  /** Decrypts; undefined when the row was written with another key or was altered. */
  open(s: Sealed, aad: string): string | undefined {
    if (s.keyId !== this.keyId) return undefined;
    try {
      const d = createDecipheriv('aes-256-gcm', this.#seal, s.iv);
      d.setAAD(Buffer.from(aad, 'utf8'));
      d.setAuthTag(s.tag);
      return Buffer.concat([d.update(s.ct), d.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }

  /**
   * Keyed fingerprint of an NT hash for one (connector, anchor): equal hashes, equal fingerprints.
   * HMAC-SHA256(fingerprint key, connector ‖ 0 ‖ anchor ‖ 0 ‖ NT hash), the same bytes
   * `createHmac` gives (test/passwords/keys.test.ts checks them against it), built from RFC 2104's
   * two digests with crypto.hash. Why not createHmac: every password change computes one, and each
   * Hmac object and its digest's ArrayBuffer are swept again in V8's next young-generation pause,
   * during which the PBKDF2 pool runs dry; the one-shot digests answer strings and leave nothing
   * to sweep (1.5 µs a call instead of 3, and fewer, shorter pauses; bench/README.md).
   */
  fingerprint(connector: string, anchor: string, nt: Uint8Array): Buffer {
    if (!oneShotHash) return createHmac('sha256', this.#fingerprint).update(connector).update('\0').update(anchor).update('\0').update(nt).digest();
    // UTF-8 needs at most 3 bytes per UTF-16 code unit (a lone surrogate becomes U+FFFD, 3 bytes).
    const most = SHA256_BLOCK + 3 * (connector.length + anchor.length) + 2 + nt.length;
    if (most > this.#scratch.length) {
      this.#scratch.fill(0); // it held a key pad
      this.#scratch = Buffer.alloc(most);
    }
    const s = this.#scratch;
    this.#innerPad.copy(s, 0);
    let at = SHA256_BLOCK + s.write(connector, SHA256_BLOCK, 'utf8');
    s[at++] = 0;
    at += s.write(anchor, at, 'utf8');
    s[at++] = 0;
    const ntAt = at;
    s.set(nt, at);
    at += nt.length;
    // 'binary' is latin1: one character per byte, so the digests pass through strings exactly.
    const inner = oneShotHash('sha256', s.subarray(0, at), 'binary');
    s.fill(0, ntAt, at); // the NT hash does not stay behind in the scratch space
    this.#outerPad.copy(s, 0);
    s.write(inner, SHA256_BLOCK, 'latin1');
    return Buffer.from(oneShotHash('sha256', s.subarray(0, SHA256_BLOCK + SHA256_BYTES), 'binary'), 'latin1');
  }
}
