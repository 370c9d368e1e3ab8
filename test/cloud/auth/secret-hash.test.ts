/** scrypt hashes of account passwords and client secrets. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_SECRET_HASH_PARAMS, hashSecret, verifySecret } from '../../../src/web/secret-hash.js';

describe('secret hashes', () => {
  test('the default parameters are OWASP-grade scrypt and verify the right secret only', async () => {
    assert.ok(DEFAULT_SECRET_HASH_PARAMS.logN >= 15 && DEFAULT_SECRET_HASH_PARAMS.r >= 8);
    const h = await hashSecret('s3cret-Passw0rd');
    assert.match(h, /^scrypt\$15\$8\$3\$[\w-]+\$[\w-]{43}$/);
    assert.ok(!h.includes('s3cret'));
    assert.equal(await verifySecret('s3cret-Passw0rd', h), true);
    assert.equal(await verifySecret('s3cret-Passw0rD', h), false);
  });

  test('each hash has its own salt; the parameters travel in the string', async () => {
    const params = { logN: 10, r: 8, p: 1 };
    const a = await hashSecret('same', params);
    const b = await hashSecret('same', params);
    assert.notEqual(a, b);
    assert.match(a, /^scrypt\$10\$8\$1\$/);
    assert.equal(await verifySecret('same', b), true);
  });

  test('a malformed or absurd stored hash never verifies', async () => {
    for (const stored of ['', 'same', 'scrypt$10$8$1$abc$def', 'scrypt$30$8$1$AAAAAAAAAAAAAAAAAAAAAA$' + 'A'.repeat(43)]) {
      assert.equal(await verifySecret('same', stored), false, stored);
    }
  });
});
