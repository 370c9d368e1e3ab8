import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { createMD4 } from 'hash-wasm';
import { md4 } from '../../src/passwords/md4.js';
import { prng } from '../helpers/prng.js';

describe('md4 (plain TypeScript)', () => {
  // RFC 1320, appendix A.5.
  const rfc: [string, string][] = [
    ['', '31d6cfe0d16ae931b73c59d7e0c089c0'],
    ['a', 'bde52cb31de33e46245e05fbdbd6fb24'],
    ['abc', 'a448017aaf21d8525fc10ae87aa6729d'],
    ['message digest', 'd9130a8164549fe818874806e1c7014b'],
    ['abcdefghijklmnopqrstuvwxyz', 'd79e1c308aa5bbcdeea8ed63df412da9'],
    ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', '043f8582f241db351ce627e153e7f0e4'],
    ['12345678901234567890123456789012345678901234567890123456789012345678901234567890', 'e33b4ddc9c38f2199c3e7b164fcc0536'],
  ];
  for (const [input, digest] of rfc) {
    it(`matches RFC 1320 for ${JSON.stringify(input.slice(0, 20))}`, () => {
      assert.equal(md4(Buffer.from(input, 'latin1')).toString('hex'), digest);
    });
  }

  it('agrees with hash-wasm on seeded random inputs of every length from 0 to 600 bytes (each padding boundary)', async () => {
    const ref = await createMD4();
    const rnd = prng(0x5eed_4d4);
    for (let round = 0; round < 3; round++) {
      for (let len = 0; len <= 600; len++) {
        const data = Buffer.from(Array.from({ length: len }, () => Math.floor(rnd() * 256)));
        ref.init();
        ref.update(data);
        assert.equal(md4(data).toString('hex'), ref.digest('hex'), `length ${len}, round ${round}`);
      }
    }
  });

  it('does not change its input, and hashes a view into a larger buffer by its own bytes', () => {
    const big = Buffer.from('xxabcxx', 'latin1');
    const view = big.subarray(2, 5);
    assert.equal(md4(view).toString('hex'), 'a448017aaf21d8525fc10ae87aa6729d');
    assert.equal(big.toString('latin1'), 'xxabcxx');
  });
});
