/**
 * Replicated secret attributes (MS-DRSR 4.1.10.6.12 and 5.43): a value is
 *   salt[16] ‖ RC4(MD5(sessionKey ‖ salt))[ CRC32(data) ‖ data ]
 * where sessionKey is the NTLM exported session key of the RPC connection. For unicodePwd the
 * data is then the NT hash under the RID-keyed DES layer of MS-SAMR 2.2.11.1.3/2.2.11.1.1.
 * Results are returned in fresh buffers that the caller passes on and drops; nothing is kept.
 */
import { crc32, desEcb, expandDesKey, md5, rc4 } from '../rpc/crypto.js';
import { DrsError } from './errors.js';

/** Removes the session-key layer; throws DRS_SECRET_INVALID when the checksum does not match. */
export function decryptReplicatedSecret(sessionKey: Buffer, value: Buffer): Buffer {
  if (value.length < 20) throw new DrsError('DRS_SECRET_INVALID', `a replicated secret is ${value.length} bytes, shorter than salt and checksum`);
  const salt = value.subarray(0, 16);
  const plain = rc4(md5(sessionKey, salt), value.subarray(16));
  const data = plain.subarray(4);
  if (plain.readUInt32LE(0) !== crc32(data)) {
    throw new DrsError('DRS_SECRET_INVALID', 'a replicated secret failed its CRC32 check (wrong session key or damaged reply)', {
      hint: 'idsync reconnects and repeats the pass; if it persists, the DC and idsync disagree on the session key (report it).',
    });
  }
  return Buffer.from(data);
}

/** The two DES keys MS-SAMR derives from a RID (little-endian bytes r0..r3). */
export function ridKeys(rid: number): [Buffer, Buffer] {
  const r = Buffer.alloc(4);
  r.writeUInt32LE(rid >>> 0);
  const [r0, r1, r2, r3] = [r[0] as number, r[1] as number, r[2] as number, r[3] as number];
  return [expandDesKey(Buffer.from([r0, r1, r2, r3, r0, r1, r2])), expandDesKey(Buffer.from([r3, r0, r1, r2, r3, r0, r1]))];
}

/** Removes the RID DES layer from a 16-byte hash. */
export function ridDecryptHash(rid: number, enc: Buffer): Buffer {
  if (enc.length !== 16) throw new DrsError('DRS_SECRET_INVALID', `an encrypted NT hash is ${enc.length} bytes, expected 16`);
  const [k1, k2] = ridKeys(rid);
  return Buffer.concat([desEcb(k1, enc.subarray(0, 8), 'decrypt'), desEcb(k2, enc.subarray(8, 16), 'decrypt')]);
}

/** The inverse of ridDecryptHash (tests). */
export function ridEncryptHash(rid: number, hash: Buffer): Buffer {
  const [k1, k2] = ridKeys(rid);
  return Buffer.concat([desEcb(k1, hash.subarray(0, 8), 'encrypt'), desEcb(k2, hash.subarray(8, 16), 'encrypt')]);
}

/** The NT hash from a replicated unicodePwd value. */
export function decryptNtHash(sessionKey: Buffer, rid: number, value: Buffer): Buffer {
  return ridDecryptHash(rid, decryptReplicatedSecret(sessionKey, value));
}

/** The RID: the last sub-authority of a binary SID. */
export function ridFromSid(sid: Buffer): number | undefined {
  if (sid.length < 12) return undefined;
  const n = sid[1] as number;
  if (n < 1 || sid.length < 8 + 4 * n) return undefined;
  return sid.readUInt32LE(8 + 4 * (n - 1));
}
