/**
 * Issue 5's delta acceptance with real servers: a Samba AD DC and an OpenLDAP slapd (accesslog
 * overlay for deletions), the engine on SQLite, the cloud directory over HTTP. After a full first
 * cycle, each kind of change — add, modify, rename, move out of scope, delete, group membership —
 * flows through a DELTA cycle, and nothing else is exported.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Attribute, Change } from 'ldapts';
import type { EngineContext } from '../../src/engine/context.js';
import { runCycle } from '../../src/engine/cycle.js';
import type { RunRecord } from '../../src/engine/runs.js';
import type { TestCloud } from '../helpers/cloud.js';
import { adConnectorConfig, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { skipUnless } from '../helpers/integration.js';
import { captured } from '../helpers/processes.js';
import { assertNoTestSecrets } from '../helpers/secret-scan.js';
import { seedAdUsers, useSambaDC, type SambaDC, type SeededAd } from '../helpers/samba.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const ONPREM = 'urn:idsync:params:scim:schemas:extension:onprem:2.0:User';
const step = (run: RunRecord, name: string, connector?: string) => run.steps.find((s) => s.step === name && (!connector || s.connector === connector))!;
const exported = (run: RunRecord) => {
  const e = step(run, 'export');
  return { adds: e.adds, updates: e.updates, deletes: e.deletes };
};

function ldapSeed(): string {
  const out: string[] = [];
  for (let i = 0; i < 20; i++) {
    out.push(`dn: uid=d${i},ou=people,dc=lab,dc=test\nobjectClass: inetOrgPerson\nuid: d${i}\ncn: D ${i}\nsn: D${i}\nmail: d${i}@ldap.test\ntitle: Analyst\n`);
  }
  out.push(`dn: cn=dgroup,ou=groups,dc=lab,dc=test\nobjectClass: groupOfNames\ncn: dgroup\nmember: uid=d0,ou=people,dc=lab,dc=test\nmember: uid=d1,ou=people,dc=lab,dc=test\n`);
  out.push('dn: ou=elsewhere,dc=lab,dc=test\nobjectClass: organizationalUnit\nou: elsewhere\n');
  return out.join('\n');
}

describe('e2e: delta cycles against Samba AD and OpenLDAP', { skip: skipUnless('samba') || skipUnless('slapd') }, () => {
  let dc: SambaDC;
  let slapd: Slapd;
  let lab: EngineLab;
  let cloud: TestCloud;
  let ctx: EngineContext;
  let seeded: SeededAd;
  let outside: string;

  before(async () => {
    dc = await useSambaDC();
    seeded = await seedAdUsers(dc, { ou: 'e2edelta', users: 30, groups: 3, nested: true });
    outside = `OU=e2edelta-outside,${dc.baseDn}`;
    const c = await dc.client();
    await c.del(outside).catch(() => undefined);
    await c.add(outside, { objectClass: ['top', 'organizationalUnit'], ou: 'e2edelta-outside' });
    await c.unbind();
    slapd = await startSlapd({ accesslog: true, seedLdif: ldapSeed() });
    lab = await startEngineLab({
      prefix: 'idsync-e2e-delta-',
      connectors: [
        adConnectorConfig(dc, seeded, { name: 'ad', url: dc.url, tls: undefined }),
        { name: 'ldap', type: 'ldap', url: slapd.url, bindDn: slapd.adminDn, baseDn: slapd.baseDn, scope: { include: ['ou=people,dc=lab,dc=test', 'ou=groups,dc=lab,dc=test'] }, delta: { accesslogBase: 'cn=accesslog' } },
      ],
      credentials: { ad: dc.adminPassword, ldap: slapd.adminPassword },
    });
    ({ cloud, ctx } = lab);
  });

  after(async () => {
    await lab?.close();
    await slapd?.stop();
    if (dc) {
      const c = await dc.client();
      await c.del(outside).catch(() => undefined);
      await c.unbind();
      await dc.stop();
    }
  });

  test('the first cycle is a full import; the next one with no change is a delta that exports nothing', async () => {
    const first = await runCycle(ctx);
    assert.equal(first.status, 'success', JSON.stringify(first.errors));
    assert.equal(step(first, 'import', 'ad').profile, 'full');
    assert.equal(exported(first).adds, 30 + 3 + 20 + 1);
    const again = await runCycle(ctx);
    assert.equal(step(again, 'import', 'ad').profile, 'delta');
    assert.equal(step(again, 'import', 'ldap').profile, 'delta');
    assert.deepEqual(exported(again), { adds: 0, updates: 0, deletes: 0 });
  });

  test('AD: add, modify, rename, move out of scope, delete and membership changes, in one delta', async () => {
    const before = await cloud.all('Users');
    const c = await dc.client();
    const [modified, renamed, movedOut, deleted, joiner] = [seeded.users[1]!, seeded.users[2]!, seeded.users[3]!, seeded.users[4]!, seeded.users[5]!];
    await c.add(`CN=newcomer,${seeded.ouDn}`, {
      objectClass: ['top', 'person', 'organizationalPerson', 'user'],
      sAMAccountName: 'e2enewcomer',
      userPrincipalName: 'e2enewcomer@lab.test',
      userAccountControl: '544',
    });
    await c.modify(modified.dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: ['Architect'] }) }));
    await c.modifyDN(renamed.dn, `CN=renamed-${renamed.sAMAccountName}`);
    await c.modifyDN(movedOut.dn, `CN=${movedOut.sAMAccountName},${outside}`);
    await c.del(deleted.dn);
    const group = seeded.groups.find((g) => !g.members.some((m) => m.toLowerCase() === joiner.dn.toLowerCase()))!;
    await c.modify(group.dn, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [joiner.dn] }) }));
    await c.unbind();

    const run = await runCycle(ctx);
    assert.equal(run.status, 'success', JSON.stringify(run.errors));
    assert.equal(step(run, 'import', 'ad').profile, 'delta');
    // +1 newcomer; ~ modified, renamed, the group with the joiner (and the groups that lost the
    // moved/deleted users); -2 (moved out of scope, deleted)
    const e = exported(run);
    assert.equal(e.adds, 1);
    assert.equal(e.deletes, 2);
    const users = await cloud.all('Users');
    const byUpn = new Map(users.map((u) => [u.userName.toLowerCase(), u]));
    assert.ok(byUpn.has('e2enewcomer@lab.test'));
    assert.equal(byUpn.get(modified.userPrincipalName.toLowerCase()).title, 'Architect');
    assert.match(byUpn.get(renamed.userPrincipalName.toLowerCase())[ONPREM].onPremisesDistinguishedName, /^CN=renamed-/i);
    assert.equal(byUpn.has(movedOut.userPrincipalName.toLowerCase()), false, 'moved out of scope: deleted in the cloud');
    assert.equal(byUpn.has(deleted.userPrincipalName.toLowerCase()), false, 'deleted');
    const cloudGroup = (await cloud.all('Groups')).find((g) => g.displayName === group.cn);
    assert.ok(cloudGroup.members.some((m: { value: string }) => m.value === byUpn.get(joiner.userPrincipalName.toLowerCase()).id), 'new member');
    // nothing else: every other user keeps its version (the joiner's moved: its groups[] changed)
    const changedIds = new Set([modified, renamed, joiner].map((u) => byUpn.get(u.userPrincipalName.toLowerCase()).id));
    for (const u of users) {
      const old = before.find((b) => b.id === u.id);
      if (old && !changedIds.has(u.id)) assert.equal(u.meta.version, old.meta.version, `${u.userName} untouched`);
    }
    assert.equal(e.updates - 2 >= 1, true, 'group updates on top of the two users');

    // the renamed member is still a member of its groups after a later change of that group
    const renamedId = byUpn.get(renamed.userPrincipalName.toLowerCase()).id;
    const itsGroup = (await cloud.all('Groups')).find((g) => g.members?.some((m: { value: string }) => m.value === renamedId));
    assert.ok(itsGroup, 'the renamed user is still in its group');
    const c2 = await dc.client();
    const g2 = seeded.groups.find((g) => g.cn === itsGroup.displayName)!;
    await c2.modify(g2.dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'description', values: ['touched'] }) }));
    await c2.unbind();
    const touched = await runCycle(ctx);
    assert.equal(touched.status, 'success');
    const after = (await cloud.all('Groups')).find((g) => g.id === itsGroup.id);
    assert.ok(after.members.some((m: { value: string }) => m.value === renamedId), 'membership survives the group being re-read');
  });

  test('OpenLDAP: add, modify, rename, move out of scope, delete and membership changes, in one delta', async () => {
    await slapd.add('dn: uid=dnew,ou=people,dc=lab,dc=test\nobjectClass: inetOrgPerson\nuid: dnew\ncn: D New\nsn: New\nmail: dnew@ldap.test\n');
    await slapd.modify(
      [
        'dn: uid=d1,ou=people,dc=lab,dc=test\nchangetype: modify\nreplace: title\ntitle: Lead\n',
        'dn: uid=d2,ou=people,dc=lab,dc=test\nchangetype: modrdn\nnewrdn: uid=d2r\ndeleteoldrdn: 0\n',
        'dn: uid=d3,ou=people,dc=lab,dc=test\nchangetype: modrdn\nnewrdn: uid=d3\ndeleteoldrdn: 1\nnewsuperior: ou=elsewhere,dc=lab,dc=test\n',
        'dn: uid=d4,ou=people,dc=lab,dc=test\nchangetype: delete\n',
        'dn: cn=dgroup,ou=groups,dc=lab,dc=test\nchangetype: modify\nadd: member\nmember: uid=d5,ou=people,dc=lab,dc=test\n',
      ].join('\n'),
    );
    const run = await runCycle(ctx);
    assert.equal(run.status, 'success', JSON.stringify(run.errors));
    assert.equal(step(run, 'import', 'ldap').profile, 'delta');
    assert.equal(step(run, 'import', 'ad').profile, 'delta');
    assert.deepEqual(exported(run), { adds: 1, updates: 3, deletes: 2 }); // d1, d2r, dgroup; d3 out of scope, d4 deleted
    const users = await cloud.all('Users');
    const byName = new Map(users.map((u) => [u.userName, u]));
    assert.ok(byName.has('dnew@ldap.test'));
    assert.equal(byName.get('d1@ldap.test').title, 'Lead');
    assert.match(byName.get('d2@ldap.test')[ONPREM].onPremisesDistinguishedName, /^uid=d2r,/);
    assert.equal(byName.has('d3@ldap.test'), false);
    assert.equal(byName.has('d4@ldap.test'), false);
    const g = (await cloud.all('Groups')).find((x) => x.displayName === 'dgroup');
    assert.ok(g.members.some((m: { value: string }) => m.value === byName.get('d5@ldap.test').id));
    const quiet = await runCycle(ctx);
    assert.deepEqual(exported(quiet), { adds: 0, updates: 0, deletes: 0 });
  });

  test('the secret scan: no directory or cloud secret in any file of the data folders or any output', async () => {
    // slapd's admin password ("secret") is too short to search for without false matches.
    const scanned = await assertNoTestSecrets(
      { tokens: { 'DC admin password': dc.adminPassword, 'cloud sync secret': cloud.syncSecret, 'cloud admin password': cloud.admin.password } },
      { dirs: [lab.dir, cloud.dataDir], texts: captured },
    );
    assert.ok(scanned.files >= 3, `scanned ${scanned.files} files`);
  });
});
