import { strict as assert } from 'node:assert';
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { PasswordKeys } from '../../src/passwords/keys.js';
import { prng } from '../helpers/prng.js';

/** The fingerprint as defined: HMAC-SHA256 with the HKDF sub-key, computed by Node's own Hmac. */
function reference(dataKey: Buffer, connector: string, anchor: string, nt: Buffer): Buffer {
  const key = Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), 'idsync/passwords/fingerprint/v1', 32));
  return createHmac('sha256', key).update(connector).update('\0').update(anchor).update('\0').update(nt).digest();
}

/** A string of `len` UTF-16 code units drawn from ASCII, Latin-1, CJK and astral characters. */
function randomText(rnd: () => number, len: number): string {
  let s = '';
  while (s.length < len) {
    const kind = Math.floor(rnd() * 4);
    const cp =
      kind === 0 ? 0x20 + Math.floor(rnd() * 95) : kind === 1 ? 0xa0 + Math.floor(rnd() * 96) : kind === 2 ? 0x4e00 + Math.floor(rnd() * 0x5000) : 0x1f300 + Math.floor(rnd() * 0x300);
    s += String.fromCodePoint(cp);
  }
  return s;
}

describe('PasswordKeys.fingerprint', () => {
  it('is the HMAC-SHA256 that createHmac computes, on seeded random names (ASCII to astral, short to past the scratch space) and NT hashes', () => {
    const rnd = prng(0xf1a9e2);
    for (let round = 0; round < 4; round++) {
      const dataKey = Buffer.from(Array.from({ length: 32 }, () => Math.floor(rnd() * 256)));
      const keys = new PasswordKeys(dataKey);
      for (let i = 0; i < 300; i++) {
        // Lengths up to 600 code units: some need the scratch space to grow (up to 1,800 UTF-8 bytes).
        const connector = randomText(rnd, Math.floor(rnd() * (i % 10 === 0 ? 200 : 12)));
        const anchor = randomText(rnd, Math.floor(rnd() * (i % 7 === 0 ? 600 : 40)));
        const nt = Buffer.from(Array.from({ length: 16 }, () => Math.floor(rnd() * 256)));
        const got = keys.fingerprint(connector, anchor, nt);
        assert.deepEqual(got, reference(dataKey, connector, anchor, nt), `round ${round}, item ${i}`);
      }
    }
  });

  it('is that HMAC at the edges of its buffer: 3-byte characters and lone surrogates of every length up to past the scratch space, NULs, NT hashes of other lengths', () => {
    const dataKey = randomBytes(32);
    const check = (keys: PasswordKeys, connector: string, anchor: string, nt: Buffer, what: string): void =>
      assert.deepEqual(keys.fingerprint(connector, anchor, nt), reference(dataKey, connector, anchor, nt), what);
    const nt = randomBytes(16);
    // A fresh instance each time: its buffer is sized for the longest input it has seen, so an
    // estimate one byte short shows only on an instance whose first input is at the bound.
    for (let k = 0; k <= 130; k++) {
      check(new PasswordKeys(dataKey), 'ad', '中'.repeat(k), nt, `'中' × ${k}`);
      check(new PasswordKeys(dataKey), '中'.repeat(k), 'a', nt, `connector '中' × ${k}`);
      check(new PasswordKeys(dataKey), 'ad', '\ud800'.repeat(k), nt, `lone high surrogate × ${k}`);
      check(new PasswordKeys(dataKey), '\udc00'.repeat(k), '\udc00', nt, `lone low surrogate × ${k}`);
    }
    const keys = new PasswordKeys(dataKey);
    check(keys, 'a\0b', '\0', nt, 'NULs in the names');
    check(keys, '', '', nt, 'empty names');
    for (const len of [0, 1, 15, 17, 100]) check(new PasswordKeys(dataKey), 'ad', '中'.repeat(100), randomBytes(len), `an NT hash of ${len} bytes`);
  });

  it('is the same for the same input, and changes with the key, the NT hash and the anchor', () => {
    const keys = new PasswordKeys(randomBytes(32));
    const nt = randomBytes(16);
    const a = keys.fingerprint('ad', 'anchor', nt);
    assert.deepEqual(keys.fingerprint('ad', 'anchor', Buffer.from(nt)), a);
    assert.notDeepEqual(new PasswordKeys(randomBytes(32)).fingerprint('ad', 'anchor', nt), a);
    assert.notDeepEqual(keys.fingerprint('ad', 'anchor', randomBytes(16)), a);
    assert.notDeepEqual(keys.fingerprint('ad', 'anchor2', nt), a);
  });

  it('returns a value of its own: a later fingerprint does not change an earlier one, and the NT hash is left as given', () => {
    const keys = new PasswordKeys(randomBytes(32));
    const nt = randomBytes(16);
    const ntCopy = Buffer.from(nt);
    const first = keys.fingerprint('ad', 'anchor-1', nt);
    const firstCopy = Buffer.from(first);
    // A short input (the same buffer is written again) and a long one (the buffer grows).
    keys.fingerprint('ad', 'anchor-2', randomBytes(16));
    assert.deepEqual(first, firstCopy);
    keys.fingerprint('ad', 'anchor-2'.repeat(200), randomBytes(16));
    assert.deepEqual(first, firstCopy);
    assert.deepEqual(nt, ntCopy);
  });
});
