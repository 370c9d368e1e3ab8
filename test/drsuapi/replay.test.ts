/**
 * The DCE/RPC + NTLM + NDR + DRSUAPI stack against a byte capture of a real session with a lab
 * Samba DC (test/fixtures/drs/session.json, made by test/fixtures/drs/capture.ts): a loopback
 * server plays the DC's side back. With the NTLM randomness fixed as at capture time the client
 * must send exactly the bytes Samba accepted, and must verify, decrypt and reassemble the sealed
 * 10-fragment GetNCChanges reply into the NT hashes of the seeded users.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DrsClient, type ReplicatedUser } from '../../src/drsuapi/client.js';
import { ntOwfV1 } from '../../src/rpc/crypto.js';
import { isIdsyncError } from '../../src/core/errors.js';
import { fixedRandom } from '../fixtures/drs/random.js';

interface Fixture {
  user: string;
  domain: string;
  password: string;
  userPassword: string;
  ncDn: string;
  objects: number;
  users: string[];
  pdus: { dir: 'out' | 'in'; b64: string }[];
}

const fixture = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/drs/session.json'), 'utf8')) as Fixture;
const pdus = fixture.pdus.map((p) => ({ dir: p.dir, bytes: Buffer.from(p.b64, 'base64') }));

/** Plays the DC: checks each client PDU against the capture, answers with the captured replies. */
function replayServer(mutate?: (index: number, pdu: Buffer) => Buffer): Promise<{ server: Server; port: number; mismatches: string[] }> {
  const mismatches: string[] = [];
  const server = createServer((sock) => {
    let i = 0;
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 10 && buf.length >= buf.readUInt16LE(8)) {
        const len = buf.readUInt16LE(8);
        const got = buf.subarray(0, len);
        buf = buf.subarray(len);
        const want = pdus[i];
        if (!want || want.dir !== 'out' || !want.bytes.equals(got)) mismatches.push(`PDU ${i} differs from the capture`);
        i++;
        while (pdus[i]?.dir === 'in') {
          const p = pdus[i] as { bytes: Buffer };
          sock.write(mutate ? mutate(i, Buffer.from(p.bytes)) : p.bytes);
          i++;
        }
      }
    });
    sock.on('error', () => undefined);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, mismatches })));
}

async function replicate(port: number): Promise<ReplicatedUser[]> {
  const client = await DrsClient.connect({ host: '127.0.0.1', port, user: fixture.user, domain: fixture.domain, password: fixture.password, ntlmRandom: fixedRandom('idsync-drs-fixture'), timeoutMs: 10000 });
  const users: ReplicatedUser[] = [];
  try {
    for await (const page of client.changes({ ncDn: fixture.ncDn, maxObjects: 1000 })) users.push(...page.users);
  } finally {
    await client.close();
  }
  return users;
}

describe('DRSUAPI session replayed from a capture', () => {
  let srv: Awaited<ReturnType<typeof replayServer>>;
  before(async () => {
    srv = await replayServer();
  });
  after(() => srv.server.close());

  it('the capture holds a sealed reply in several fragments', () => {
    const responses = pdus.filter((p) => p.dir === 'in' && p.bytes[2] === 2 && p.bytes[3] !== 3);
    assert.ok(responses.length >= 3, `${responses.length} fragments`);
    for (const r of responses) assert.equal(r.bytes[r.bytes.readUInt16LE(8) - r.bytes.readUInt16LE(10) - 7], 6, 'auth level packet privacy');
  });

  it('sends exactly the captured bytes and decrypts every seeded user to MD4(password)', async () => {
    const users = await replicate(srv.port);
    assert.deepEqual(srv.mismatches, []);
    const expected = (await ntOwfV1(fixture.userPassword)).toString('hex');
    const seeded = users.filter((u) => u.sAMAccountName && fixture.users.includes(u.sAMAccountName));
    assert.equal(seeded.length, fixture.users.length);
    for (const u of seeded) {
      assert.equal(u.nt?.toString('hex'), expected, u.sAMAccountName);
      assert.ok(u.dn.includes('OU=capture'), u.dn);
      assert.equal(u.userAccountControl, 512);
      assert.ok(u.rid !== undefined && u.rid > 1000);
    }
    const krbtgt = users.find((u) => u.sAMAccountName === 'krbtgt');
    assert.equal(krbtgt?.rid, 502, 'krbtgt is replicated (the source filters it out, not the client)');
  });

  it('a reply fragment altered in transit is refused (signature check), not decoded', async () => {
    const bad = await replayServer((i, pdu) => {
      if (i === 8) pdu[100] = (pdu[100] as number) ^ 1; // inside the sealed stub of the 3rd fragment
      return pdu;
    });
    try {
      await assert.rejects(replicate(bad.port), (err) => isIdsyncError(err, 'RPC_INTEGRITY_FAILED'));
    } finally {
      bad.server.close();
    }
  });
});
