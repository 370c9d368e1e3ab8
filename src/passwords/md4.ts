/**
 * MD4 (RFC 1320) in plain TypeScript, for the NT hash of one password on the notification path.
 * Node 20's OpenSSL 3 has no MD4; hash-wasm's costs ≈ 5 µs a call in WebAssembly set-up and copies
 * for a ≤ 512-byte input, on the main thread that the PBKDF2 pool competes with. This one works on
 * the input bytes in place and costs well under a microsecond. test/passwords/md4.test.ts checks it
 * against the RFC's vectors and against hash-wasm on seeded random inputs.
 */

const X = new Int32Array(16);

/** MD4 digest (16 bytes) of `data`. */
export function md4(data: Uint8Array): Buffer {
  let a = 0x67452301;
  let b = 0xefcdab89 | 0;
  let c = 0x98badcfe | 0;
  let d = 0x10325476;
  const len = data.length;
  // Padding: 0x80, zeros to 56 mod 64, then the length in bits (little-endian, 64 bits).
  const blocks = ((len + 8) >>> 6) + 1;
  const tail = new Uint8Array(len % 64 < 56 ? 64 : 128);
  const tailStart = len - (len % 64);
  tail.set(data.subarray(tailStart));
  tail[len % 64] = 0x80;
  const bits = len * 8;
  const lenAt = tail.length - 8;
  tail[lenAt] = bits & 0xff;
  tail[lenAt + 1] = (bits >>> 8) & 0xff;
  tail[lenAt + 2] = (bits >>> 16) & 0xff;
  tail[lenAt + 3] = (bits >>> 24) & 0xff;
  tail[lenAt + 4] = Math.floor(bits / 0x100000000) & 0xff;
  for (let blk = 0; blk < blocks; blk++) {
    const off = blk * 64;
    const src = off < tailStart ? data : tail;
    const base = off < tailStart ? off : off - tailStart;
    for (let i = 0; i < 16; i++) {
      const p = base + i * 4;
      X[i] = src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | (src[p + 3]! << 24);
    }
    const aa = a;
    const bb = b;
    const cc = c;
    const dd = d;
    // Round 1: F(x, y, z) = (x & y) | (~x & z)
    for (let i = 0; i < 16; i += 4) {
      a = rotl((a + ((b & c) | (~b & d)) + X[i]!) | 0, 3);
      d = rotl((d + ((a & b) | (~a & c)) + X[i + 1]!) | 0, 7);
      c = rotl((c + ((d & a) | (~d & b)) + X[i + 2]!) | 0, 11);
      b = rotl((b + ((c & d) | (~c & a)) + X[i + 3]!) | 0, 19);
    }
    // Round 2: G(x, y, z) = (x & y) | (x & z) | (y & z), + 0x5a827999
    for (let i = 0; i < 4; i++) {
      a = rotl((a + ((b & c) | (b & d) | (c & d)) + X[i]! + 0x5a827999) | 0, 3);
      d = rotl((d + ((a & b) | (a & c) | (b & c)) + X[i + 4]! + 0x5a827999) | 0, 5);
      c = rotl((c + ((d & a) | (d & b) | (a & b)) + X[i + 8]! + 0x5a827999) | 0, 9);
      b = rotl((b + ((c & d) | (c & a) | (d & a)) + X[i + 12]! + 0x5a827999) | 0, 13);
    }
    // Round 3: H(x, y, z) = x ^ y ^ z, + 0x6ed9eba1, words in the order 0 8 4 12 2 10 6 14 1 9 5 13 3 11 7 15
    for (const i of R3) {
      a = rotl((a + (b ^ c ^ d) + X[i]! + 0x6ed9eba1) | 0, 3);
      d = rotl((d + (a ^ b ^ c) + X[i + 8]! + 0x6ed9eba1) | 0, 9);
      c = rotl((c + (d ^ a ^ b) + X[i + 4]! + 0x6ed9eba1) | 0, 11);
      b = rotl((b + (c ^ d ^ a) + X[i + 12]! + 0x6ed9eba1) | 0, 15);
    }
    a = (a + aa) | 0;
    b = (b + bb) | 0;
    c = (c + cc) | 0;
    d = (d + dd) | 0;
  }
  // The input may be a password: leave none of it in the scratch space.
  X.fill(0);
  tail.fill(0);
  const out = Buffer.allocUnsafe(16);
  out.writeInt32LE(a, 0);
  out.writeInt32LE(b, 4);
  out.writeInt32LE(c, 8);
  out.writeInt32LE(d, 12);
  return out;
}

const R3 = [0, 2, 1, 3];

function rotl(x: number, n: number): number {
  return (x << n) | (x >>> (32 - n));
}
