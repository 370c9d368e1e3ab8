/**
 * Active Directory binary identifiers.
 *
 * objectGUID is 16 bytes in Microsoft's mixed-endian GUID layout: the first three groups are
 * little-endian. The incumbent's ImmutableId (our AD anchor) is base64 of the raw 16 bytes.
 */
import { IdsyncError } from '../core/errors.js';

/** 16 raw objectGUID bytes -> "2a1b3c4d-...". */
export function guidToString(bytes: Uint8Array): string {
  if (bytes.length !== 16) {
    throw new IdsyncError('OBJECT_INVALID', `an objectGUID must be 16 bytes, got ${bytes.length}`);
  }
  const h = Buffer.from(bytes).toString('hex');
  return [
    h.slice(6, 8) + h.slice(4, 6) + h.slice(2, 4) + h.slice(0, 2),
    h.slice(10, 12) + h.slice(8, 10),
    h.slice(14, 16) + h.slice(12, 14),
    h.slice(16, 20),
    h.slice(20),
  ].join('-');
}

/** "2a1b3c4d-..." (braces optional) -> the 16 raw objectGUID bytes. */
export function guidFromString(guid: string): Buffer {
  const m = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i.exec(guid.trim());
  if (!m) throw new IdsyncError('OBJECT_INVALID', `"${guid.slice(0, 60)}" is not a GUID`);
  const [, a, b, c, d, e] = m as unknown as [string, string, string, string, string, string];
  const le = (hex: string): string => (hex.match(/../g) as string[]).reverse().join('');
  return Buffer.from(le(a) + le(b) + le(c) + d + e, 'hex');
}

/** The AD anchor (ImmutableId): base64 of the raw GUID bytes. */
export function guidToImmutableId(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

/** Binary objectSid -> "S-1-5-21-...". */
export function sidToString(bytes: Uint8Array): string {
  const b = Buffer.from(bytes);
  if (b.length < 8) throw new IdsyncError('OBJECT_INVALID', `an objectSid must be at least 8 bytes, got ${b.length}`);
  const revision = b[0] as number;
  const count = b[1] as number;
  if (b.length !== 8 + count * 4) {
    throw new IdsyncError('OBJECT_INVALID', `an objectSid with ${count} sub-authorities must be ${8 + count * 4} bytes, got ${b.length}`);
  }
  const authority = b.readUIntBE(2, 6);
  const parts = [`S-${revision}-${authority}`];
  for (let k = 0; k < count; k++) parts.push(String(b.readUInt32LE(8 + k * 4)));
  return parts.join('-');
}

/** "S-1-5-21-..." -> binary objectSid. */
export function sidFromString(sid: string): Buffer {
  const m = /^S-(\d+)-(\d+)((?:-\d+)*)$/i.exec(sid.trim());
  if (!m) throw new IdsyncError('OBJECT_INVALID', `"${sid.slice(0, 80)}" is not a SID`);
  const subs = (m[3] ?? '').split('-').filter(Boolean).map(Number);
  const out = Buffer.alloc(8 + subs.length * 4);
  out[0] = Number(m[1]);
  out[1] = subs.length;
  out.writeUIntBE(Number(m[2]), 2, 6);
  subs.forEach((s, k) => out.writeUInt32LE(s, 8 + k * 4));
  return out;
}
