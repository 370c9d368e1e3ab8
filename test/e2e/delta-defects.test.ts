/**
 * Issue 10's defects, one regression test each, against the real Samba AD DC, real slapd and the
 * cloud over HTTP. Each failed on the code before the fix: a delta cycle left the cloud wrong (and
 * said success). After each delta cycle the cloud's group members are compared with what the
 * directory itself lists.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Attribute, Change, type Client } from 'ldapts';
import { runCycle } from '../../src/engine/cycle.js';
import { EngineState } from '../../src/engine/import.js';
import type { RunRecord } from '../../src/engine/runs.js';
import { ShowDeletedControl } from '../../src/ldap/controls.js';
import { guidToString } from '../../src/ldap/guid.js';
import { startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { skipUnless } from '../helpers/integration.js';
import { deleteAdTree, useSambaDC, type SambaDC } from '../helpers/samba.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const ONPREM = 'urn:idsync:params:scim:schemas:extension:onprem:2.0:User';
const importProfile = (run: RunRecord) => run.steps.find((s) => s.step === 'import')?.profile;

async function cloudState(lab: EngineLab) {
  const users = await lab.cloud.all('Users');
  const groups = await lab.cloud.all('Groups');
  const extOf = new Map<string, string>([...users, ...groups].map((r) => [r.id, r.externalId]));
  return {
    users: new Map<string, { userName: string; dn: string; active: boolean }>(users.map((u) => [u.externalId, { userName: u.userName, dn: u[ONPREM].onPremisesDistinguishedName, active: u.active }])),
    /** group displayName → sorted member externalIds */
    members: new Map<string, string[]>(groups.map((g) => [g.displayName, ((g.members ?? []) as { value: string }[]).map((m) => extOf.get(m.value)!).sort()])),
  };
}

async function deltaCycle(lab: EngineLab): Promise<RunRecord> {
  const run = await runCycle(lab.ctx);
  assert.equal(importProfile(run), 'delta');
  assert.equal(run.status, 'success', JSON.stringify(run.errors));
  return run;
}

describe('issue 10 on Samba AD: delta cycles keep the cloud right', { skip: skipUnless('samba') }, () => {
  let dc: SambaDC;
  let c: Client;
  let lab: EngineLab;
  const root = 'OU=i10,DC=lab,DC=test';
  const outside = 'OU=i10-out,DC=lab,DC=test';
  const staff = `OU=Staff,${root}`;

  const guidOf = async (dn: string): Promise<string> => {
    const r = await c.search(dn, { scope: 'base', attributes: ['objectGUID'], explicitBufferAttributes: ['objectGUID'] });
    return (r.searchEntries[0]!.objectGUID as Buffer).toString('base64');
  };
  const addUser = async (dn: string, sam: string): Promise<string> => {
    await c.add(dn, {
      objectClass: ['top', 'person', 'organizationalPerson', 'user'],
      sAMAccountName: sam,
      userPrincipalName: `${sam}@lab.test`,
      userAccountControl: '544',
    });
    return guidOf(dn);
  };
  const addMember = (group: string, member: string) => c.modify(group, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [member] }) }));
  /** What AD lists as the group's members, as anchors of objects in scope (the cloud's truth). */
  const adMembers = async (group: string): Promise<string[]> => {
    const r = await c.search(group, { scope: 'base', attributes: ['member'] });
    const v = r.searchEntries[0]!.member;
    const dns = (Array.isArray(v) ? v : v ? [v] : []).map(String).filter((dn) => dn.toLowerCase().endsWith(root.toLowerCase()));
    return (await Promise.all(dns.map(guidOf))).sort();
  };

  before(async () => {
    dc = await useSambaDC();
    await deleteAdTree(dc, root);
    await deleteAdTree(dc, outside);
    c = await dc.client();
    for (const ou of [root, outside, staff, `OU=Temp,${root}`, `OU=Staff2,${root}`]) await c.add(ou, { objectClass: ['top', 'organizationalUnit'], ou: ou.slice(3, ou.indexOf(',')) });
    for (const n of [1, 2, 3, 5]) await addUser(`CN=i10u${n},${staff}`, `i10u${n}`);
    for (const n of [1, 2]) await addUser(`CN=i10t${n},OU=Temp,${root}`, `i10t${n}`);
    for (const n of [2, 4]) await addUser(`CN=i10s${n},OU=Staff2,${root}`, `i10s${n}`);
    for (const g of ['G-Staff', 'G-Temp', 'G-S2', 'G-Z']) await c.add(`CN=${g},${root}`, { objectClass: ['top', 'group'], sAMAccountName: `i10${g}` });
    for (const n of [1, 2, 3, 5]) await addMember(`CN=G-Staff,${root}`, `CN=i10u${n},${staff}`);
    for (const n of [1, 2]) await addMember(`CN=G-Temp,${root}`, `CN=i10t${n},OU=Temp,${root}`);
    for (const n of [2, 4]) await addMember(`CN=G-S2,${root}`, `CN=i10s${n},OU=Staff2,${root}`);
    lab = await startEngineLab({
      // These scenarios move whole OUs out of a small scope on purpose: the percentage part of the
      // default deletion threshold would stop them. The threshold has its own tests; a count stays on.
      sync: { deletionThreshold: 500 },
      prefix: 'idsync-i10-ad-',
      connectors: [{ name: 'ad', type: 'ad', url: dc.url, bindDn: dc.adminUpn, baseDn: dc.baseDn, scope: { include: [root] } }],
      credentials: { ad: dc.adminPassword },
    });
    const first = await runCycle(lab.ctx);
    assert.equal(first.status, 'success', JSON.stringify(first.errors));
  });

  after(async () => {
    await lab?.close();
    await c?.unbind();
    if (dc) {
      await deleteAdTree(dc, root);
      await deleteAdTree(dc, outside);
      await dc.stop();
    }
  });

  test('a new account that takes a deleted member\'s DN does not inherit its group memberships', async () => {
    const dn = `CN=i10u1,${staff}`;
    const old = await guidOf(dn);
    await c.del(dn);
    await deltaCycle(lab);
    const fresh = await addUser(dn, 'i10u1');
    await deltaCycle(lab);
    const s = await cloudState(lab);
    assert.ok(s.users.has(fresh), 'the new account is in the cloud');
    assert.equal(s.users.has(old), false);
    assert.equal(s.members.get('G-Staff')!.includes(fresh), false, 'the stranger is no member of G-Staff');
    assert.deepEqual(s.members.get('G-Staff'), await adMembers(`CN=G-Staff,${root}`));
  });

  test('a deleted and restored account is a member only where AD lists it', async () => {
    const dn = `CN=i10u3,${staff}`;
    const anchor = await guidOf(dn);
    await c.del(dn);
    await deltaCycle(lab);
    const tomb = await c.search(`<GUID=${guidToString(Buffer.from(anchor, 'base64'))}>`, { scope: 'base', attributes: ['1.1'] }, [new ShowDeletedControl()]);
    await c.modify(
      tomb.searchEntries[0]!.dn,
      [
        new Change({ operation: 'delete', modification: new Attribute({ type: 'isDeleted', values: [] }) }),
        new Change({ operation: 'replace', modification: new Attribute({ type: 'distinguishedName', values: [dn] }) }),
        // a tombstone keeps few attributes: the admin who restores it sets the UPN again
        new Change({ operation: 'replace', modification: new Attribute({ type: 'userPrincipalName', values: ['i10u3@lab.test'] }) }),
      ],
      [new ShowDeletedControl()],
    );
    await deltaCycle(lab);
    const s = await cloudState(lab);
    assert.ok(s.users.has(anchor), 'restored: back in the cloud with its anchor');
    assert.deepEqual(s.members.get('G-Staff'), await adMembers(`CN=G-Staff,${root}`));
  });

  test('delete and re-create with the same UPN in one cycle: the new account is exported, the run is honest', async () => {
    const dn = `CN=i10u2,${staff}`;
    const old = await guidOf(dn);
    await c.del(dn);
    const fresh = await addUser(dn, 'i10u2');
    await deltaCycle(lab);
    const s = await cloudState(lab);
    assert.equal(s.users.has(old), false);
    assert.equal(s.users.get(fresh)?.userName, 'i10u2@lab.test');
    assert.deepEqual(s.members.get('G-Staff'), await adMembers(`CN=G-Staff,${root}`));
    const quiet = await deltaCycle(lab);
    assert.equal(quiet.steps.find((x) => x.step === 'export')!.adds, 0, 'nothing left to retry');
  });

  test('an OU moved out of the scope and back in: its users leave the cloud and come back with their memberships', async () => {
    const t = [await guidOf(`CN=i10t1,OU=Temp,${root}`), await guidOf(`CN=i10t2,OU=Temp,${root}`)].sort();
    await c.modifyDN(`OU=Temp,${root}`, `OU=Temp,${outside}`);
    await deltaCycle(lab);
    let s = await cloudState(lab);
    for (const a of t) assert.equal(s.users.has(a), false, 'moved out of scope with its OU');
    assert.deepEqual(s.members.get('G-Temp'), []);
    await c.modifyDN(`OU=Temp,${outside}`, `OU=Temp,${root}`);
    await deltaCycle(lab);
    s = await cloudState(lab);
    for (const a of t) assert.ok(s.users.has(a), 'back in scope with its OU');
    assert.deepEqual(s.members.get('G-Temp'), t);
  });

  test('an OU renamed: the users beneath get their new DN and stay in their groups after a later group change', async () => {
    const s2 = await guidOf(`CN=i10s2,OU=Staff2,${root}`);
    await c.modifyDN(`OU=Staff2,${root}`, 'OU=Staff2b');
    await deltaCycle(lab);
    let s = await cloudState(lab);
    assert.match(s.users.get(s2)!.dn, /^CN=i10s2,OU=Staff2b,/);
    await addMember(`CN=G-S2,${root}`, `CN=i10u5,${staff}`);
    await deltaCycle(lab);
    s = await cloudState(lab);
    assert.equal(s.members.get('G-S2')!.length, 3);
    assert.deepEqual(s.members.get('G-S2'), await adMembers(`CN=G-S2,${root}`));
  });

  test('out of scope and back into a different OU keeps the memberships', async () => {
    const dn = `CN=i10u5,${staff}`;
    const u5 = await guidOf(dn);
    await c.modifyDN(dn, `CN=i10u5,${outside}`);
    await deltaCycle(lab);
    assert.equal((await cloudState(lab)).users.has(u5), false);
    await c.modifyDN(`CN=i10u5,${outside}`, `CN=i10u5,OU=Staff2b,${root}`);
    await deltaCycle(lab);
    const s = await cloudState(lab);
    assert.ok(s.members.get('G-Staff')!.includes(u5));
    assert.ok(s.members.get('G-S2')!.includes(u5));
    assert.deepEqual(s.members.get('G-Staff'), await adMembers(`CN=G-Staff,${root}`));
  });

  test('two Unicode spellings of one name (Zoë, Zoe + U+0308) stay two entries; the group lists only its member', async () => {
    const pre = await addUser(`CN=Zo\u00eb,${staff}`, 'i10zoe1');
    const comb = await addUser(`CN=Zoe\u0308,${staff}`, 'i10zoe2');
    await addMember(`CN=G-Z,${root}`, `CN=Zo\u00eb,${staff}`);
    await deltaCycle(lab);
    const s = await cloudState(lab);
    assert.ok(s.users.has(pre) && s.users.has(comb));
    assert.deepEqual(s.members.get('G-Z'), [pre]);
    // a full sync agrees
    const full = await runCycle(lab.ctx, { full: true });
    assert.equal(full.status, 'success');
    assert.deepEqual((await cloudState(lab)).members.get('G-Z'), [pre]);
  });
});

describe('issue 10 on OpenLDAP', { skip: skipUnless('slapd') }, () => {
  const seed = [
    'dn: ou=i10,dc=lab,dc=test\nobjectClass: organizationalUnit\nou: i10\n',
    'dn: ou=out,dc=lab,dc=test\nobjectClass: organizationalUnit\nou: out\n',
    'dn: ou=temp,ou=i10,dc=lab,dc=test\nobjectClass: organizationalUnit\nou: temp\n',
    ...[1, 2].map((n) => `dn: uid=t${n},ou=temp,ou=i10,dc=lab,dc=test\nobjectClass: inetOrgPerson\nuid: t${n}\ncn: T ${n}\nsn: T\nmail: t${n}@ldap.test\n`),
    ...[1, 2, 3].map((n) => `dn: uid=u${n},ou=i10,dc=lab,dc=test\nobjectClass: inetOrgPerson\nuid: u${n}\ncn: U ${n}\nsn: U\nmail: u${n}@ldap.test\n`),
    'dn: cn=gtemp,ou=i10,dc=lab,dc=test\nobjectClass: groupOfNames\ncn: gtemp\nmember: uid=t1,ou=temp,ou=i10,dc=lab,dc=test\n',
  ].join('\n');

  describe('with the accesslog', () => {
    let slapd: Slapd;
    let lab: EngineLab;
    before(async () => {
      slapd = await startSlapd({ accesslog: true, baseOus: false, seedLdif: seed });
      lab = await startEngineLab({
        // These scenarios move whole OUs out of a small scope on purpose: the percentage part of the
        // default deletion threshold would stop them. The threshold has its own tests; a count stays on.
        sync: { deletionThreshold: 500 },
        prefix: 'idsync-i10-ldap-',
        connectors: [{ name: 'ldap', type: 'ldap', url: slapd.url, bindDn: slapd.adminDn, baseDn: slapd.baseDn, scope: { include: ['ou=i10,dc=lab,dc=test'] }, delta: { accesslogBase: 'cn=accesslog' } }],
        credentials: { ldap: slapd.adminPassword },
      });
      assert.equal((await runCycle(lab.ctx)).status, 'success');
    });
    after(async () => {
      await lab?.close();
      await slapd?.stop();
    });

    test('a subtree moved out of the scope (modrdn) and back: its users leave and return', async () => {
      await slapd.modify('dn: ou=temp,ou=i10,dc=lab,dc=test\nchangetype: modrdn\nnewrdn: ou=temp\ndeleteoldrdn: 1\nnewsuperior: ou=out,dc=lab,dc=test\n');
      await deltaCycle(lab);
      let s = await cloudState(lab);
      const names = () => [...s.users.values()].map((u) => u.userName).sort();
      assert.deepEqual(names(), ['u1@ldap.test', 'u2@ldap.test', 'u3@ldap.test']);
      await slapd.modify('dn: ou=temp,ou=out,dc=lab,dc=test\nchangetype: modrdn\nnewrdn: ou=temp\ndeleteoldrdn: 1\nnewsuperior: ou=i10,dc=lab,dc=test\n');
      await deltaCycle(lab);
      s = await cloudState(lab);
      assert.deepEqual(names(), ['t1@ldap.test', 't2@ldap.test', 'u1@ldap.test', 'u2@ldap.test', 'u3@ldap.test']);
      // the group still lists t1's DN, which names t1 again
      assert.equal(s.members.get('gtemp')!.length, 1);
    });

    test('a subtree renamed: the users beneath get their new DN', async () => {
      await slapd.modify('dn: ou=temp,ou=i10,dc=lab,dc=test\nchangetype: modrdn\nnewrdn: ou=temp2\ndeleteoldrdn: 1\n');
      await deltaCycle(lab);
      const s = await cloudState(lab);
      const t2 = [...s.users.values()].find((u) => u.userName === 't2@ldap.test')!;
      assert.equal(t2.dn, 'uid=t2,ou=temp2,ou=i10,dc=lab,dc=test');
      // slapd (no refint overlay) keeps the old DN in the group: it names nobody now
      assert.deepEqual(s.members.get('gtemp'), []);
    });

    test('a cycle that leaves an object unexported is not a success, and the object is retried until it goes out', async () => {
      // a cloud-only user holds the userName the new source user needs
      const taken = await lab.cloud.scim('POST', '/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'u9@ldap.test' });
      assert.equal(taken.status, 201);
      await slapd.add('dn: uid=u9,ou=i10,dc=lab,dc=test\nobjectClass: inetOrgPerson\nuid: u9\ncn: U 9\nsn: U\nmail: u9@ldap.test\n');
      const first = await runCycle(lab.ctx);
      assert.equal(first.status, 'completed-with-errors');
      assert.ok(first.errors.some((e) => e.code === 'CLOUD_CONFLICT'), JSON.stringify(first.errors));
      assert.ok(first.errors.some((e) => e.code === 'EXPORT_PENDING'));
      const again = await runCycle(lab.ctx);
      assert.equal(again.status, 'completed-with-errors', 'still not exported: still not a success');
      assert.equal((await lab.cloud.scim('DELETE', `/Users/${taken.body.id}`)).status, 204);
      const fixed = await runCycle(lab.ctx);
      assert.equal(fixed.status, 'success', JSON.stringify(fixed.errors));
      assert.ok([...(await cloudState(lab)).users.values()].some((u) => u.userName === 'u9@ldap.test'));
    });
  });

  test('without the accesslog, a scheduled full import finds deletions (delta.fullImportInterval)', async () => {
    const slapd = await startSlapd({ baseOus: false, seedLdif: seed });
    const lab = await startEngineLab({
      // These scenarios move whole OUs out of a small scope on purpose: the percentage part of the
      // default deletion threshold would stop them. The threshold has its own tests; a count stays on.
      sync: { deletionThreshold: 500 },
      prefix: 'idsync-i10-ldapnolog-',
      connectors: [{ name: 'ldap', type: 'ldap', url: slapd.url, bindDn: slapd.adminDn, baseDn: slapd.baseDn, scope: { include: ['ou=i10,dc=lab,dc=test'] }, delta: { fullImportInterval: '1h' } }],
      credentials: { ldap: slapd.adminPassword },
    });
    try {
      assert.equal(importProfile(await runCycle(lab.ctx)), 'full');
      await slapd.modify('dn: uid=u3,ou=i10,dc=lab,dc=test\nchangetype: delete\n');
      const delta = await runCycle(lab.ctx);
      assert.equal(importProfile(delta), 'delta');
      assert.ok([...(await cloudState(lab)).users.values()].some((u) => u.userName === 'u3@ldap.test'), 'a delta cannot see the deletion');
      // The interval passes: the recorded last full import is moved an hour back, rather than a short
      // interval waited out (a 2 s interval made the delta above a scheduled full import on a busy machine).
      const lastFull = new EngineState(lab.ctx.db);
      lastFull.set('last_full_import:ldap', new Date(Date.parse(lastFull.get('last_full_import:ldap')!) - 3_600_000).toISOString());
      const scheduled = await runCycle(lab.ctx);
      assert.equal(importProfile(scheduled), 'scheduled-full');
      assert.equal(scheduled.status, 'success');
      assert.equal([...(await cloudState(lab)).users.values()].some((u) => u.userName === 'u3@ldap.test'), false, 'the scheduled full import found it');
      assert.ok(lab.ctx.events.query({}).some((e) => e.id === 6020));
      assert.equal(importProfile(await runCycle(lab.ctx)), 'delta', 'then deltas again');
    } finally {
      await lab.close();
      await slapd.stop();
    }
  });
});
