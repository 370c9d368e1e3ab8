/**
 * The legacy primitives NTLM and MS-DRSR still need. Node 20's OpenSSL 3 refuses md4, rc4 and
 * des-ecb unless it is started with --openssl-legacy-provider, which idsync must not require, so:
 * RC4 is written here (a dozen lines, and the NTLM seal needs its state to carry on across
 * messages, which a one-shot cipher call would not give anyway), DES-ECB comes from des.js (a
 * well-kept pure-JS implementation, checked below against FIPS 81 vectors in the tests), MD4 from
 * hash-wasm (already a dependency for the OrgId hash). MD5, HMAC-MD5 and CRC32 are Node's own.
 */
import { createHash, createHmac } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { createMD4 } from 'hash-wasm';
import desjs from 'des.js';

/** RC4 with a state that carries on between calls (NTLM sealing handles are long-lived). */
export class Rc4 {
  private readonly s = new Uint8Array(256);
  private i = 0;
  private j = 0;

  constructor(key: Uint8Array) {
    if (key.length === 0) throw new RangeError('RC4 key must not be empty');
    for (let k = 0; k < 256; k++) this.s[k] = k;
    let j = 0;
    for (let k = 0; k < 256; k++) {
      const sk = this.s[k] as number;
      j = (j + sk + (key[k % key.length] as number)) & 0xff;
      this.s[k] = this.s[j] as number;
      this.s[j] = sk;
    }
  }

  /** Encrypts or decrypts (the same operation) into a new buffer. */
  update(data: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(data.length);
    const s = this.s;
    let i = this.i;
    let j = this.j;
    for (let n = 0; n < data.length; n++) {
      i = (i + 1) & 0xff;
      const si = s[i] as number;
      j = (j + si) & 0xff;
      const sj = s[j] as number;
      s[i] = sj;
      s[j] = si;
      out[n] = (data[n] as number) ^ (s[(si + sj) & 0xff] as number);
    }
    this.i = i;
    this.j = j;
    return out;
  }
}

/** One-shot RC4. */
export function rc4(key: Uint8Array, data: Uint8Array): Buffer {
  return new Rc4(key).update(data);
}

export function md5(...parts: Uint8Array[]): Buffer {
  const h = createHash('md5');
  for (const p of parts) h.update(p);
  return h.digest();
}

export function hmacMd5(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('md5', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

export function crc32(data: Uint8Array): number {
  return zlibCrc32(data) >>> 0;
}

type Md4Hasher = Awaited<ReturnType<typeof createMD4>>;
let md4Hasher: Promise<Md4Hasher> | undefined;

/** MD4 (hash-wasm; its WebAssembly module is instantiated once). */
export async function md4(data: Uint8Array): Promise<Buffer> {
  md4Hasher ??= createMD4();
  const h = await md4Hasher;
  h.init();
  h.update(data);
  return Buffer.from(h.digest('binary'));
}

/** The NT hash of a password: MD4(UTF-16LE(password)). */
export async function ntOwfV1(password: string): Promise<Buffer> {
  return md4(Buffer.from(password, 'utf16le'));
}

/** DES-ECB of one 8-byte block with an 8-byte key (parity bits ignored). */
export function desEcb(key: Uint8Array, block: Uint8Array, mode: 'encrypt' | 'decrypt'): Buffer {
  if (key.length !== 8 || block.length !== 8) throw new RangeError('DES-ECB takes an 8-byte key and an 8-byte block');
  const cipher = desjs.DES.create({ type: mode, key: Array.from(key), padding: false });
  return Buffer.from([...cipher.update(Array.from(block)), ...cipher.final()]);
}

/** Spreads 7 key bytes over 8 (7 bits each, low bit left for parity), as MS-SAMR/LM DES keys do. */
export function expandDesKey(k7: Uint8Array): Buffer {
  if (k7.length !== 7) throw new RangeError('a DES key seed is 7 bytes');
  const b = (n: number): number => k7[n] as number;
  const k = [
    b(0) >> 1,
    ((b(0) & 0x01) << 6) | (b(1) >> 2),
    ((b(1) & 0x03) << 5) | (b(2) >> 3),
    ((b(2) & 0x07) << 4) | (b(3) >> 4),
    ((b(3) & 0x0f) << 3) | (b(4) >> 5),
    ((b(4) & 0x1f) << 2) | (b(5) >> 6),
    ((b(5) & 0x3f) << 1) | (b(6) >> 7),
    b(6) & 0x7f,
  ];
  return Buffer.from(k.map((x) => (x << 1) & 0xff));
}
