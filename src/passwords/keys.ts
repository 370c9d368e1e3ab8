/**
 * Keys for password material at rest, derived from the credential store's data key (the same
 * 32 bytes, `<dataDir>/secret.key` or IDSYNC_SECRET_KEY) with HKDF, one sub-key per purpose:
 *  - `seal`: AES-256-GCM for the OrgId hashes waiting in the outbox and the last known hash per user;
 *  - `fingerprint`: HMAC-SHA256 of an NT hash, to tell "changed since last time" without storing it.
 * Whoever reads idsync.db without the key learns neither the hashes nor anything to crack offline.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomFillSync } from 'node:crypto';
import { IdsyncError } from '../core/errors.js';
import { keyId } from '../credentials/key.js';

const IV_BYTES = 12;
/** IVs are cut from a block of CSPRNG output: one randomFillSync per 512 seals instead of one each (≈ 2.5 µs apiece). */
const IV_BLOCK = IV_BYTES * 512;

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

  constructor(dataKey: Buffer) {
    if (!Buffer.isBuffer(dataKey) || dataKey.length !== 32) {
      throw new IdsyncError('SECRET_KEY_INVALID', 'the password pipeline needs the 32-byte data key of the credential store', {
        hint: 'Open the pipeline with the key from secret.key or IDSYNC_SECRET_KEY (see docs/credentials.md).',
      });
    }
    this.#seal = Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), 'idsync/passwords/seal/v1', 32));
    this.#fingerprint = Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), 'idsync/passwords/fingerprint/v1', 32));
    this.keyId = keyId(dataKey);
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

  /** Keyed fingerprint of an NT hash for one (connector, anchor): equal hashes, equal fingerprints. */
  fingerprint(connector: string, anchor: string, nt: Buffer): Buffer {
    return createHmac('sha256', this.#fingerprint).update(connector).update('\0').update(anchor).update('\0').update(nt).digest();
  }
}
