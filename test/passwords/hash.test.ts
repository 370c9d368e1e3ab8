import { strict as assert } from 'node:assert';
import { pbkdf2Sync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isIdsyncError } from '../../src/core/errors.js';
import {
  assertPasswordUsable,
  isOrgIdHash,
  ntHash,
  orgIdHash,
  orgIdHashFromNt,
  parseOrgIdHash,
  verifyOrgIdHash,
} from '../../src/passwords/hash.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
interface Vectors {
  nt_hash: { password: string; nt_hash: string }[];
  orgid: { password: string; salt: string; iterations: number; expected: string }[];
}
const vectors = JSON.parse(readFileSync(path.resolve(repoRoot, 'test/fixtures/phs-vectors.json'), 'utf8')) as Vectors;

describe('NT hash', () => {
  it('the vector file has vectors', () => {
    assert.ok(vectors.nt_hash.length >= 3);
    assert.ok(vectors.orgid.length >= 2);
  });
  for (const v of vectors.nt_hash) {
    it(`matches the published vector for ${JSON.stringify(v.password)}`, async () => {
      assert.equal((await ntHash(v.password)).toString('hex').toUpperCase(), v.nt_hash);
    });
  }
  it('is 16 bytes', async () => {
    assert.equal((await ntHash('anything')).length, 16);
  });
});

describe('OrgId hash', () => {
  for (const v of vectors.orgid) {
    it(`matches the published vector with salt ${v.salt}`, async () => {
      const salt = Buffer.from(v.salt, 'hex');
      assert.equal(await orgIdHash(v.password, { salt, iterations: v.iterations }), v.expected);
    });
    it(`matches the vector with salt ${v.salt} when starting from the NT hash`, async () => {
      const salt = Buffer.from(v.salt, 'hex');
      const nt = await ntHash(v.password);
      assert.equal(await orgIdHashFromNt(nt, { salt, iterations: v.iterations }), v.expected);
    });
    it(`verifies the vector with salt ${v.salt}`, async () => {
      assert.equal(await verifyOrgIdHash(v.password, v.expected), true);
    });
  }

  it('hashing the lower-case NT hex gives a different result for every vector (upper-case is what matches)', async () => {
    for (const v of vectors.orgid) {
      const nt = (await ntHash(v.password)).toString('hex');
      const salt = Buffer.from(v.salt, 'hex');
      const key = (hex: string) => pbkdf2Sync(Buffer.from(hex, 'utf16le'), salt, v.iterations, 32, 'sha256').toString('hex');
      const expectedKey = v.expected.split(',')[3]!.replace(/;$/, '');
      assert.equal(key(nt.toUpperCase()), expectedKey);
      assert.notEqual(key(nt.toLowerCase()), expectedKey);
    }
  });

  it('uses 10 random bytes of salt and 1000 iterations by default, a new salt each time', async () => {
    const a = parseOrgIdHash(await orgIdHash('Pa$$w0rd'))!;
    const b = parseOrgIdHash(await orgIdHash('Pa$$w0rd'))!;
    assert.equal(a.salt.length, 10);
    assert.equal(a.iterations, 1000);
    assert.notDeepEqual(a.salt, b.salt);
  });

  it('works with 100 iterations (older incumbent builds) and verifies with the count from the string', async () => {
    const salt = Buffer.from('a42b92067e4b8123101a', 'hex');
    const h = await orgIdHash('Pa$$w0rd', { salt, iterations: 100 });
    assert.match(h, /^v1;PPH1_MD4,a42b92067e4b8123101a,100,[0-9a-f]{64};$/);
    const nt = (await ntHash('Pa$$w0rd')).toString('hex').toUpperCase();
    const manual = pbkdf2Sync(Buffer.from(nt, 'utf16le'), salt, 100, 32, 'sha256').toString('hex');
    assert.equal(h, `v1;PPH1_MD4,a42b92067e4b8123101a,100,${manual};`);
    assert.notEqual(h, vectors.orgid[0]!.expected);
    assert.equal(await verifyOrgIdHash('Pa$$w0rd', h), true);
  });

  it('rejects an NT hash that is not 16 bytes', async () => {
    await assert.rejects(orgIdHashFromNt(Buffer.alloc(15)), (e) => isIdsyncError(e, 'HASH_INPUT_INVALID'));
  });
});

describe('password checks', () => {
  it('accepts 256 characters and rejects 257 with PASSWORD_TOO_LONG, without the password in the message', async () => {
    assert.doesNotThrow(() => assertPasswordUsable('x'.repeat(256)));
    const long = 'Zq9'.repeat(86); // 258 characters
    await assert.rejects(ntHash(long), (e) => isIdsyncError(e, 'PASSWORD_TOO_LONG') && !e.message.includes('Zq9Zq9'));
    await assert.rejects(orgIdHash(long), (e) => isIdsyncError(e, 'PASSWORD_TOO_LONG'));
  });

  it('rejects lone surrogates (not valid Unicode) with PASSWORD_NOT_TEXT', async () => {
    await assert.rejects(ntHash('abc\uD800'), (e) => isIdsyncError(e, 'PASSWORD_NOT_TEXT'));
    await assert.rejects(ntHash('\uDC00abc'), (e) => isIdsyncError(e, 'PASSWORD_NOT_TEXT'));
    // a proper surrogate pair is fine
    assert.equal((await ntHash('pässwörd😀')).length, 16);
  });
});

describe('verification', () => {
  const stored = vectors.orgid[0]!.expected;

  it('is false for a wrong password', async () => {
    assert.equal(await verifyOrgIdHash('Pa$$w0rD', stored), false);
    assert.equal(await verifyOrgIdHash('', stored), false);
  });

  it('is false for a password that cannot be hashed', async () => {
    assert.equal(await verifyOrgIdHash('x'.repeat(300), stored), false);
  });

  it('is false for malformed strings, and isOrgIdHash says so', async () => {
    const malformed = [
      '',
      'garbage',
      stored.toUpperCase(),
      stored.slice(0, -1), // no final ;
      stored.replace('v1;', 'v2;'),
      stored.replace(',1000,', ',0,'),
      stored.replace(',1000,', ',1000000,'),
      stored.replace('a42b92067e4b8123101a', 'a42b92067e4b8123101'), // odd-length salt
      stored.replace(/,[0-9a-f]{64};$/, ',abcd;'),
      ' ' + stored,
    ];
    for (const m of malformed) {
      assert.equal(isOrgIdHash(m), false, m);
      assert.equal(await verifyOrgIdHash('Pa$$w0rd', m), false, m);
    }
  });
});
