/** NTLMv2 with key exchange and sealing against the worked example of MS-NLMP 4.2.4. */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { authenticate, decodeChallenge, encodeNegotiate, CLIENT_FLAGS, NtlmSecurityContext } from '../../src/rpc/ntlm.js';
import { isIdsyncError } from '../../src/core/errors.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const av = (id: number, value: Buffer): Buffer => {
  const h = Buffer.alloc(4);
  h.writeUInt16LE(id, 0);
  h.writeUInt16LE(value.length, 2);
  return Buffer.concat([h, value]);
};
// MS-NLMP 4.2.4: NetBIOS domain "Domain", NetBIOS server "Server", then MsvAvEOL
const targetInfo = Buffer.concat([av(2, Buffer.from('Domain', 'utf16le')), av(1, Buffer.from('Server', 'utf16le')), av(0, Buffer.alloc(0))]);

function challengeMessage(flags: number, withTimestamp?: Buffer): Buffer {
  const ti = withTimestamp ? Buffer.concat([targetInfo.subarray(0, targetInfo.length - 4), av(7, withTimestamp), av(0, Buffer.alloc(0))]) : targetInfo;
  const head = Buffer.alloc(48);
  head.write('NTLMSSP\0', 0, 'latin1');
  head.writeUInt32LE(2, 8);
  head.writeUInt32LE(flags >>> 0, 20);
  hex('0123456789abcdef').copy(head, 24);
  head.writeUInt16LE(ti.length, 40);
  head.writeUInt16LE(ti.length, 42);
  head.writeUInt32LE(48, 44);
  return Buffer.concat([head, ti]);
}

/** The example's fixed randomness: ClientChallenge aa×8, then RandomSessionKey 55×16. */
const exampleRandom = (n: number): Buffer => Buffer.alloc(n, n === 8 ? 0xaa : 0x55);
const zeroTime = (): Buffer => Buffer.alloc(8);
const creds = { user: 'User', domain: 'Domain', password: 'Password' };

function field(msg: Buffer, at: number): Buffer {
  const len = msg.readUInt16LE(at);
  const off = msg.readUInt32LE(at + 4);
  return msg.subarray(off, off + len);
}

describe('NTLM (MS-NLMP 4.2.4 example)', () => {
  it('the negotiate message asks for sign, seal, 128-bit, ESS and key exchange', () => {
    const m = encodeNegotiate();
    assert.equal(m.readUInt32LE(12), CLIENT_FLAGS);
    assert.equal(CLIENT_FLAGS & 0x40000000, 0x40000000);
    assert.equal(CLIENT_FLAGS & 0x20, 0x20);
  });

  it('computes the NTLMv2 response, LMv2 response and encrypted session key of the example', async () => {
    const ch = decodeChallenge(challengeMessage(0xe28a8233));
    const { message, context } = await authenticate(creds, ch, exampleRandom, zeroTime);
    const nt = field(message, 20);
    assert.equal(nt.subarray(0, 16).toString('hex'), '68cd0ab851e51c96aabc927bebef6a1c'); // NTProofStr
    assert.equal(field(message, 12).toString('hex'), '86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa'); // LMv2
    assert.equal(field(message, 52).toString('hex'), 'c5dad2544fc9799094ce1ce90bc9d03e'); // EncryptedRandomSessionKey
    assert.equal(field(message, 36).toString('utf16le'), 'User');
    assert.equal(context.exportedSessionKey.toString('hex'), '55'.repeat(16));
  });

  it('seals and signs "Plaintext" as the example does (sequence number 0)', () => {
    const ctx = new NtlmSecurityContext(Buffer.alloc(16, 0x55));
    const plain = Buffer.from('Plaintext', 'utf16le');
    const { sealed, signature } = ctx.seal(plain, plain);
    assert.equal(sealed.toString('hex'), '54e50165bf1936dc996020c1811b0f06fb5f');
    assert.equal(signature.toString('hex'), '010000007fb38ec5c55d497600000000');
  });

  it('with a server timestamp the LM response is Z(24) and the timestamp goes into the blob', async () => {
    const ts = hex('0090d336b734c301');
    const { message } = await authenticate(creds, decodeChallenge(challengeMessage(0xe28a8233, ts)), exampleRandom, zeroTime);
    assert.equal(field(message, 12).toString('hex'), '00'.repeat(24));
    assert.deepEqual(field(message, 20).subarray(24, 32), ts);
  });

  it('refuses a server that does not offer sealing with key exchange', async () => {
    await assert.rejects(authenticate(creds, decodeChallenge(challengeMessage(0x00088207)), exampleRandom, zeroTime), (e) => isIdsyncError(e, 'RPC_AUTH_FAILED'));
  });

  it('a receive context verifies what the peer sealed and rejects a replay', () => {
    // the server side of a context is the client side with the directions swapped; emulate it by
    // sealing with one context and unsealing with a mirror built from the same key
    const key = Buffer.alloc(16, 0x11);
    const a = new NtlmSecurityContext(key);
    const msg = Buffer.from('stub data, padded');
    const { sealed, signature } = a.seal(msg, msg);
    const mirror = new NtlmSecurityContext(key) as unknown as { serverSeal: unknown; clientSeal: unknown; serverSign: unknown; clientSign: unknown };
    [mirror.serverSeal, mirror.serverSign] = [mirror.clientSeal, mirror.clientSign];
    const b = mirror as unknown as NtlmSecurityContext;
    assert.deepEqual(b.unseal(sealed, signature, (p) => p), msg);
    assert.throws(() => b.unseal(sealed, signature, (p) => p), (e) => isIdsyncError(e, 'RPC_INTEGRITY_FAILED'));
  });
});
