/**
 * NDR (DCE 1.1 transfer syntax, 32-bit, little-endian): the writer and the reader that the
 * interface codecs (epm.ts, drsuapi/) are built from. Alignment is relative to the start of the
 * stub. Deferred pointer referents are the codec's business: it writes or reads a structure's
 * scalars first and its referents afterwards, in member order (C706 §14.3.12), so this file only
 * has to supply the primitives, conformant arrays and GUIDs.
 */
import { RpcError } from './errors.js';

export class NdrWriter {
  private buf = Buffer.alloc(256);
  private len = 0;
  private nextRef = 0x20000;

  get length(): number {
    return this.len;
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const b = Buffer.alloc(size);
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }

  align(n: number): this {
    const pad = (n - (this.len % n)) % n;
    this.ensure(pad);
    this.buf.fill(0, this.len, this.len + pad);
    this.len += pad;
    return this;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf.writeUInt8(v, this.len);
    this.len += 1;
    return this;
  }

  u16(v: number): this {
    this.align(2).ensure(2);
    this.buf.writeUInt16LE(v, this.len);
    this.len += 2;
    return this;
  }

  u32(v: number): this {
    this.align(4).ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.len);
    this.len += 4;
    return this;
  }

  u64(v: bigint): this {
    this.align(8).ensure(8);
    this.buf.writeBigUInt64LE(v, this.len);
    this.len += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  /** A GUID in its wire form (first three fields little-endian), aligned to 4. */
  guid(g: string | Uint8Array): this {
    return this.align(4).bytes(typeof g === 'string' ? guidToBytes(g) : g);
  }

  /** A unique/full pointer's referent ID (0 = null). */
  pointer(present: boolean): this {
    if (!present) return this.u32(0);
    const id = this.nextRef;
    this.nextRef += 4;
    return this.u32(id);
  }

  toBuffer(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }
}

export class NdrReader {
  private off = 0;
  /** The structure being decoded, for error messages ("DRS_MSG_GETCHGREPLY_V6.pObjects"). */
  private where: string[] = [];

  constructor(private readonly buf: Buffer) {}

  get offset(): number {
    return this.off;
  }

  get remaining(): number {
    return this.buf.length - this.off;
  }

  /** Runs `fn` with `name` on the structure path used in error messages. */
  in<T>(name: string, fn: () => T): T {
    this.where.push(name);
    try {
      return fn();
    } finally {
      this.where.pop();
    }
  }

  fail(what: string): never {
    const path = this.where.join('.') || 'stub';
    throw new RpcError('RPC_NDR_INVALID', `unexpected NDR data in ${path}: ${what} (at byte ${this.off} of ${this.buf.length})`, {
      hint: 'The server sent a structure this client does not understand. Check that the DC runs a supported Windows Server or Samba version and report the event with the structure name.',
      details: { structure: path, offset: this.off },
    });
  }

  private need(n: number): void {
    if (this.off + n > this.buf.length) this.fail(`needs ${n} more bytes, only ${this.buf.length - this.off} left`);
  }

  align(n: number): this {
    const pad = (n - (this.off % n)) % n;
    this.need(pad);
    this.off += pad;
    return this;
  }

  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.off++);
  }

  u16(): number {
    this.align(2).need(2);
    const v = this.buf.readUInt16LE(this.off);
    this.off += 2;
    return v;
  }

  u32(): number {
    this.align(4).need(4);
    const v = this.buf.readUInt32LE(this.off);
    this.off += 4;
    return v;
  }

  u64(): bigint {
    this.align(8).need(8);
    const v = this.buf.readBigUInt64LE(this.off);
    this.off += 8;
    return v;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }

  guid(): string {
    this.align(4);
    return bytesToGuid(this.bytes(16));
  }

  /** A count from the wire, refused beyond `max` so a corrupt length cannot exhaust memory. */
  count(name: string, max: number): number {
    const n = this.u32();
    if (n > max) this.fail(`${name} = ${n} exceeds ${max}`);
    return n;
  }

  /** A conformant array's max_count must agree with the count field that sizes it. */
  expectConformance(maxCount: number, count: number, name: string): void {
    if (maxCount !== count) this.fail(`conformance ${maxCount} does not match ${name} = ${count}`);
  }
}

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function guidToBytes(g: string): Buffer {
  if (!GUID_RE.test(g)) throw new RangeError(`not a GUID: ${g}`);
  const h = g.replace(/-/g, '');
  const b = Buffer.from(h, 'hex');
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

export function bytesToGuid(b: Uint8Array): string {
  const x = Buffer.from(b);
  const h = (s: number, e: number, rev: boolean): string => {
    const part = Buffer.from(x.subarray(s, e));
    if (rev) part.reverse();
    return part.toString('hex');
  };
  return `${h(0, 4, true)}-${h(4, 6, true)}-${h(6, 8, true)}-${h(8, 10, false)}-${h(10, 16, false)}`;
}

export const NIL_GUID = '00000000-0000-0000-0000-000000000000';
