import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Rc4, desEcb, expandDesKey, md4, ntOwfV1, rc4 } from '../../src/rpc/crypto.js';
import { ridDecryptHash, ridEncryptHash, ridFromSid, decryptReplicatedSecret } from '../../src/drsuapi/secrets.js';
import { crc32, md5 } from '../../src/rpc/crypto.js';

describe('legacy crypto without the OpenSSL legacy provider', () => {
  it('MD4 matches RFC 1320 test vectors', async () => {
    const v: [string, string][] = [
      ['', '31d6cfe0d16ae931b73c59d7e0c089c0'],
      ['abc', 'a448017aaf21d8525fc10ae87aa6729d'],
      ['message digest', 'd9130a8164549fe818874806e1c7014b'],
      ['12345678901234567890123456789012345678901234567890123456789012345678901234567890', 'e33b4ddc9c38f2199c3e7b164fcc0536'],
    ];
    for (const [input, hex] of v) assert.equal((await md4(Buffer.from(input))).toString('hex'), hex);
    assert.equal((await ntOwfV1('Password')).toString('hex'), 'a4f49c406510bdcab6824ee7c30fd852'); // MS-NLMP 4.2.2.1.2
  });

  it('RC4 matches the classic vectors, and a long-lived state equals one-shot over the concatenation', () => {
    assert.equal(rc4(Buffer.from('Key'), Buffer.from('Plaintext')).toString('hex'), 'bbf316e8d940af0ad3');
    assert.equal(rc4(Buffer.from('Wiki'), Buffer.from('pedia')).toString('hex'), '1021bf0420');
    assert.equal(rc4(Buffer.from('Secret'), Buffer.from('Attack at dawn')).toString('hex'), '45a01f645fc35b383552544b9bf5');
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 32 }), fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 6 }), (key, parts) => {
        const s = new Rc4(key);
        const streamed = Buffer.concat(parts.map((p) => s.update(p)));
        assert.deepEqual(streamed, rc4(key, Buffer.concat(parts)));
      }),
      { seed: 12, numRuns: 200 },
    );
  });

  it('DES-ECB matches the FIPS 81 / classic vectors both ways', () => {
    const key = Buffer.from('133457799bbcdff1', 'hex');
    assert.equal(desEcb(key, Buffer.from('0123456789abcdef', 'hex'), 'encrypt').toString('hex'), '85e813540f0ab405');
    assert.equal(desEcb(key, Buffer.from('85e813540f0ab405', 'hex'), 'decrypt').toString('hex'), '0123456789abcdef');
    // "Now is the time for all" with key 0123456789abcdef (FIPS 81 appendix B)
    assert.equal(desEcb(Buffer.from('0123456789abcdef', 'hex'), Buffer.from('4e6f772069732074', 'hex'), 'encrypt').toString('hex'), '3fa40e8a984d4815');
  });

  it('7-byte DES key seeds spread to 8 bytes as LM/SAMR do', () => {
    // LM hash "KGS!@#$%" key from 7 zero bytes and from ff..ff
    assert.equal(expandDesKey(Buffer.alloc(7)).toString('hex'), '0000000000000000');
    assert.equal(expandDesKey(Buffer.alloc(7, 0xff)).toString('hex'), 'fefefefefefefefe');
    // LM of the empty password: DES(key=0, "KGS!@#$%") = aad3b435b51404ee
    assert.equal(desEcb(expandDesKey(Buffer.alloc(7)), Buffer.from('KGS!@#$%'), 'encrypt').toString('hex'), 'aad3b435b51404ee');
  });

  it('the RID DES layer round-trips for random RIDs and hashes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.uint8Array({ minLength: 16, maxLength: 16 }), (rid, h) => {
        const hash = Buffer.from(h);
        assert.deepEqual(ridDecryptHash(rid, ridEncryptHash(rid, hash)), hash);
      }),
      { seed: 7, numRuns: 100 },
    );
  });

  it('the session-key layer checks CRC32 and refuses a damaged value', () => {
    const key = Buffer.alloc(16, 7);
    const salt = Buffer.alloc(16, 3);
    const data = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    const crc = Buffer.alloc(4);
    crc.writeUInt32LE(crc32(data));
    const value = Buffer.concat([salt, rc4(md5(key, salt), Buffer.concat([crc, data]))]);
    assert.deepEqual(decryptReplicatedSecret(key, value), data);
    value[30] = (value[30] as number) ^ 0x80;
    assert.throws(() => decryptReplicatedSecret(key, value), /CRC32/);
    assert.throws(() => decryptReplicatedSecret(key, Buffer.alloc(10)), /shorter/);
  });

  it('takes the RID from a binary SID', () => {
    const sid = Buffer.from('010500000000000515000000448794898' + '3c356ecfcd2a2f44f040000', 'hex');
    assert.equal(ridFromSid(sid), 0x44f);
    assert.equal(ridFromSid(Buffer.alloc(4)), undefined);
  });
});
