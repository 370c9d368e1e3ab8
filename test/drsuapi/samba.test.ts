/**
 * The DRSUAPI client against a real Samba AD DC started with `server services = ... rpc`:
 * endpoint mapper lookup, NTLMv2 at packet privacy, full and incremental GetNCChanges, the NT
 * hashes checked against MD4(password) AND against what ldbsearch reads from the DC's own
 * database (the independent check lives here, never in the product), missing replication rights,
 * a wrong password and a closed port.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Attribute, Change } from 'ldapts';
import { DrsClient, type ReplicatedUser, type ReplicationState } from '../../src/drsuapi/client.js';
import { RIGHT_GET_CHANGES, RIGHT_GET_CHANGES_ALL } from '../../src/drsuapi/errors.js';
import { isIdsyncError } from '../../src/core/errors.js';
import { ntOwfV1 } from '../../src/rpc/crypto.js';
import { findBinary, skipUnless } from '../helpers/integration.js';
import { deleteAdTree, seedAdUsers, useSambaDC, type SambaDC, type SeededAd } from '../helpers/samba.js';

const run = promisify(execFile);
const PASSWORDS = ['Ünïcødé€9', 'Zz9!'.repeat(64), 'plain-Passw0rd', '日本語のパスワード1', 'x y z w v'];

async function setPassword(dc: SambaDC, dn: string, pw: string): Promise<void> {
  const c = await dc.client();
  try {
    await c.modify(dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'unicodePwd', values: [Buffer.from(`"${pw}"`, 'utf16le')] }) }));
  } finally {
    await c.unbind();
  }
}

/** unicodePwd as the DC's own database holds it (ldbsearch on sam.ldb, as root). */
async function ldbNtHash(dc: SambaDC, sam: string): Promise<string> {
  const ldbsearch = findBinary('ldbsearch');
  assert.ok(ldbsearch, 'ldbsearch is installed with samba');
  const { stdout } = await run(ldbsearch, ['-H', dc.samLdb, `(sAMAccountName=${sam})`, 'unicodePwd'], { maxBuffer: 1 << 20 });
  const m = /^unicodePwd:: (\S+)$/m.exec(stdout);
  assert.ok(m, `ldbsearch shows no unicodePwd for ${sam}`);
  return Buffer.from(m[1] as string, 'base64').toString('hex');
}

async function drain(client: DrsClient, ncDn: string, from?: ReplicationState): Promise<{ users: ReplicatedUser[]; state: ReplicationState; pages: number }> {
  const users: ReplicatedUser[] = [];
  let state: ReplicationState | undefined;
  let pages = 0;
  for await (const page of client.changes({ ncDn, maxObjects: 50, ...(from ? { from } : {}) })) {
    users.push(...page.users);
    state = page.state;
    pages++;
  }
  assert.ok(state);
  return { users, state, pages };
}

describe('DRSUAPI against a Samba AD DC', { skip: skipUnless('samba') }, () => {
  let dc: SambaDC;
  let seeded: SeededAd;
  const svc = 'drscsvc';
  const svcPassword = 'Svc-Passw0rd!';

  before(async () => {
    dc = await useSambaDC();
    seeded = await seedAdUsers(dc, { ou: 'drsclient', users: PASSWORDS.length, password: 'Initial-1' });
    for (const [i, u] of seeded.users.entries()) await setPassword(dc, u.dn, PASSWORDS[i] as string);
    const c = await dc.client();
    try {
      await c.add(`CN=${svc},${seeded.ouDn}`, {
        objectClass: ['top', 'person', 'organizationalPerson', 'user'],
        sAMAccountName: svc,
        userAccountControl: '512',
        unicodePwd: Buffer.from(`"${svcPassword}"`, 'utf16le'),
      } as unknown as Record<string, string[]>);
    } finally {
      await c.unbind();
    }
  });
  after(async () => {
    await deleteAdTree(dc, seeded.ouDn).catch(() => undefined);
    await dc.stop();
  });

  it('replicates every hash (endpoint mapper, NTLMv2 sealed); each equals MD4(password) and the DC database', async () => {
    const client = await DrsClient.connect({ host: '127.0.0.1', user: 'Administrator', domain: 'LAB', password: dc.adminPassword });
    try {
      const { users, pages } = await drain(client, dc.baseDn);
      assert.ok(pages >= 2, `paged with cMaxObjects=50: ${pages} pages`);
      for (const [i, s] of seeded.users.entries()) {
        const u = users.find((x) => x.sAMAccountName === s.sAMAccountName);
        assert.ok(u?.nt, `${s.sAMAccountName} replicated with a hash`);
        const got = u.nt.toString('hex');
        assert.equal(got, (await ntOwfV1(PASSWORDS[i] as string)).toString('hex'), `MD4 of password ${i}`);
        assert.equal(got, await ldbNtHash(dc, s.sAMAccountName), `ldbsearch for ${s.sAMAccountName}`);
      }
    } finally {
      await client.close();
    }
  });

  it('an incremental call returns only what changed since the saved state', async () => {
    const client = await DrsClient.connect({ host: '127.0.0.1', user: 'Administrator', domain: 'LAB', password: dc.adminPassword });
    try {
      const first = await drain(client, dc.baseDn);
      const quiet = await drain(client, dc.baseDn, first.state);
      assert.equal(quiet.users.filter((u) => u.nt).length, 0, 'nothing changed');
      const target = seeded.users[2]!;
      await setPassword(dc, target.dn, 'Changed-Päss-2');
      const next = await drain(client, dc.baseDn, quiet.state);
      const withHash = next.users.filter((u) => u.nt);
      assert.equal(withHash.length, 1, withHash.map((u) => u.dn).join());
      assert.equal(withHash[0]?.dn, target.dn);
      assert.equal(withHash[0]?.nt?.toString('hex'), (await ntOwfV1('Changed-Päss-2')).toString('hex'));
      assert.equal(withHash[0]?.nt?.toString('hex'), await ldbNtHash(dc, target.sAMAccountName));
    } finally {
      await client.close();
    }
  });

  it('a saved state from another (or a restored) DC starts a full pass instead of trusting its USNs', async () => {
    const client = await DrsClient.connect({ host: '127.0.0.1', user: 'Administrator', domain: 'LAB', password: dc.adminPassword });
    try {
      const first = await drain(client, dc.baseDn);
      const foreign: ReplicationState = { ...first.state, invocationId: '0badc0de-0000-4000-8000-000000000001' };
      const pages: boolean[] = [];
      const users: ReplicatedUser[] = [];
      for await (const page of client.changes({ ncDn: dc.baseDn, maxObjects: 1000, from: foreign })) {
        pages.push(page.full);
        users.push(...page.users);
        assert.equal(page.state.invocationId, first.state.invocationId);
      }
      assert.ok(pages.every((f) => f), 'every page is marked as a full pass');
      for (const s of seeded.users) assert.ok(users.some((u) => u.sAMAccountName === s.sAMAccountName && u.nt), s.sAMAccountName);
    } finally {
      await client.close();
    }
  });

  it('without the replication rights: DRS_ACCESS_DENIED naming both rights and the fix; after granting, it works', async () => {
    const connect = (): Promise<DrsClient> => DrsClient.connect({ host: '127.0.0.1', user: svc, domain: 'LAB', password: svcPassword });
    const client = await connect();
    try {
      await assert.rejects(drain(client, dc.baseDn), (err: unknown) => {
        assert.ok(isIdsyncError(err, 'DRS_ACCESS_DENIED'), String(err));
        assert.match(err.message, new RegExp(RIGHT_GET_CHANGES));
        assert.match(err.message, new RegExp(RIGHT_GET_CHANGES_ALL));
        assert.match(err.hint ?? '', /samba-tool dsacl set/);
        assert.match(err.hint ?? '', /dsacls/);
        return true;
      });
    } finally {
      await client.close();
    }
    const tool = findBinary('samba-tool') as string;
    const { stdout } = await run(findBinary('ldbsearch') as string, ['-H', dc.samLdb, `(sAMAccountName=${svc})`, 'objectSid']);
    const sid = /^objectSid: (S-[\d-]+)$/m.exec(stdout)?.[1];
    assert.ok(sid);
    for (const right of [RIGHT_GET_CHANGES, RIGHT_GET_CHANGES_ALL]) {
      await run(tool, ['dsacl', 'set', `--objectdn=${dc.baseDn}`, `--sddl=(OA;;CR;${right};;${sid})`, '-H', dc.samLdb, `--configfile=${dc.smbConf}`]);
    }
    const granted = await connect();
    try {
      const { users } = await drain(granted, dc.baseDn);
      assert.ok(users.some((u) => u.sAMAccountName === seeded.users[0]?.sAMAccountName && u.nt));
    } finally {
      await granted.close();
    }
  });

  it('a wrong password is an authentication error, not a crash', async () => {
    await assert.rejects(DrsClient.connect({ host: '127.0.0.1', user: svc, domain: 'LAB', password: 'wrong-password', timeoutMs: 20000 }), (err: unknown) => {
      assert.ok(isIdsyncError(err, 'RPC_AUTH_FAILED'), String(err));
      assert.doesNotMatch(err.message, /wrong-password/);
      return true;
    });
  });

  it('a closed port names the port and the firewall fix', async () => {
    await assert.rejects(DrsClient.connect({ host: '127.0.0.1', port: 1, user: svc, domain: 'LAB', password: svcPassword }), (err: unknown) => {
      assert.ok(isIdsyncError(err, 'RPC_UNREACHABLE'));
      assert.match(err.message, /127\.0\.0\.1:1\b/);
      assert.match(err.hint ?? '', /Allow TCP 1\b/);
      return true;
    });
    await assert.rejects(DrsClient.connect({ host: '127.0.0.1', epmPort: 2, user: svc, domain: 'LAB', password: svcPassword }), (err: unknown) => {
      assert.ok(isIdsyncError(err, 'RPC_UNREACHABLE'));
      assert.match(err.message, /endpoint mapper port 127\.0\.0\.1:2\b/);
      return true;
    });
  });
});
