/**
 * Issue 2's acceptance, end to end with real servers on loopback: a Samba AD DC and an OpenLDAP
 * slapd (both over TLS with their CA), the engine on SQLite, the cloud directory over HTTP.
 * Seeds 1,200 users and 55 groups (nested), checks every user, group and membership through SCIM,
 * then modifies, renames, moves and disables users and checks the next cycle updates exactly those,
 * and that a cycle with no change exports nothing.
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

const AD_USERS = 700;
const AD_GROUPS = 30;
const LDAP_USERS = 500;
const LDAP_GROUPS = 25;
const ONPREM = 'urn:idsync:params:scim:schemas:extension:onprem:2.0:User';

function ldapSeed(base: string): string {
  const out: string[] = [];
  for (let i = 0; i < LDAP_USERS; i++) {
    out.push(
      [
        `dn: uid=lu${i},ou=people,${base}`,
        'objectClass: inetOrgPerson',
        `uid: lu${i}`,
        `cn: Ldap User ${i}`,
        `sn: User${i}`,
        'givenName: Ldap',
        `mail: lu${i}@ldap.test`,
        `title: Analyst`,
        `departmentNumber: D${i % 5}`,
        `employeeNumber: ${5000 + i}`,
        '',
      ].join('\n'),
    );
  }
  for (let j = 0; j < LDAP_GROUPS; j++) {
    const members = Array.from({ length: LDAP_USERS }, (_, i) => i).filter((i) => i % LDAP_GROUPS === j);
    const unique = j % 2 === 1; // half groupOfUniqueNames
    const attr = unique ? 'uniqueMember' : 'member';
    const lines = [`dn: cn=lg${j},ou=groups,${base}`, `objectClass: ${unique ? 'groupOfUniqueNames' : 'groupOfNames'}`, `cn: lg${j}`];
    for (const i of members) lines.push(`${attr}: uid=lu${i},ou=people,${base}`);
    if (j + 1 < LDAP_GROUPS) lines.push(`${attr}: cn=lg${j + 1},ou=groups,${base}`); // nested chain
    out.push(lines.join('\n') + '\n');
  }
  return out.join('\n');
}

const exportOf = (run: RunRecord) => run.steps.find((s) => s.step === 'export')!;

describe('e2e: Samba AD + OpenLDAP → cloud directory', { skip: skipUnless('samba') || skipUnless('slapd') }, () => {
  let dc: SambaDC;
  let slapd: Slapd;
  let lab: EngineLab;
  let cloud: TestCloud;
  let ctx: EngineContext;
  let seeded: SeededAd;

  before(async () => {
    dc = await useSambaDC();
    seeded = await seedAdUsers(dc, { ou: 'e2efoundation', users: AD_USERS, groups: AD_GROUPS, nested: true, disableEvery: 50 });
    const c = await dc.client();
    await c.add(`OU=moved,${seeded.ouDn}`, { objectClass: ['top', 'organizationalUnit'], ou: 'moved' });
    await c.unbind();
    slapd = await startSlapd({ tls: true, seedLdif: ldapSeed('dc=lab,dc=test') });
    lab = await startEngineLab({
      prefix: 'idsync-e2e-',
      connectors: [
        adConnectorConfig(dc, seeded, { pageSize: 200 }),
        { name: 'partners', type: 'ldap', url: slapd.url, bindDn: slapd.adminDn, baseDn: slapd.baseDn, tls: { startTls: true, ca: slapd.caFile }, pageSize: 100 },
      ],
      credentials: { 'corp-ad': dc.adminPassword, partners: slapd.adminPassword },
    });
    ({ cloud, ctx } = lab);
  });

  after(async () => {
    await lab?.close();
    await slapd?.stop();
    await dc?.stop();
  });

  test('the first cycle brings every user, group and membership to the cloud with the right attributes', async () => {
    const run = await runCycle(ctx);
    assert.equal(run.status, 'success', JSON.stringify(run.errors.slice(0, 5)));
    assert.equal(exportOf(run).adds, AD_USERS + AD_GROUPS + LDAP_USERS + LDAP_GROUPS);

    const users = await cloud.all('Users');
    assert.equal(users.length, AD_USERS + LDAP_USERS);
    const byName = new Map(users.map((u) => [u.userName.toLowerCase(), u]));

    // AD users: anchor = base64(objectGUID), attributes, disabled → active false
    const c = await dc.client();
    const guids = new Map<string, string>();
    const res = await c.search(seeded.ouDn, { filter: '(objectClass=user)', attributes: ['objectGUID', 'sAMAccountName'], explicitBufferAttributes: ['objectGUID'], paged: { pageSize: 500 } });
    for (const e of res.searchEntries) guids.set(String(e.sAMAccountName).toLowerCase(), (e.objectGUID as Buffer).toString('base64'));
    await c.unbind();
    for (const u of seeded.users) {
      const cu = byName.get(u.userPrincipalName.toLowerCase());
      assert.ok(cu, `${u.userPrincipalName} is in the cloud`);
      assert.equal(cu.externalId, guids.get(u.sAMAccountName.toLowerCase()));
      assert.equal(cu.active, !u.disabled, `${u.sAMAccountName} active`);
      assert.equal(cu.displayName, `Test User ${u.index}`);
      assert.equal(cu.name.givenName, 'Test');
      assert.equal(cu.name.familyName, `User ${u.index}`);
      assert.equal(cu.emails[0].value, `${u.sAMAccountName}@lab.test`);
      assert.equal(cu.title, 'Engineer');
      assert.equal(cu['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'].department, `Dept ${u.index % 7}`);
      assert.equal(cu[ONPREM].onPremisesSamAccountName, u.sAMAccountName);
      assert.equal(cu[ONPREM].onPremisesDistinguishedName.toLowerCase(), u.dn.toLowerCase());
    }
    // LDAP users
    for (let i = 0; i < LDAP_USERS; i++) {
      const cu = byName.get(`lu${i}@ldap.test`);
      assert.ok(cu, `lu${i} is in the cloud`);
      assert.match(cu.externalId, /^[0-9a-f-]{36}$/);
      assert.equal(cu.displayName, `Ldap User ${i}`);
      assert.equal(cu['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'].employeeNumber, String(5000 + i));
    }

    // groups and memberships (users and nested groups), compared member by member
    const groups = await cloud.all('Groups');
    assert.equal(groups.length, AD_GROUPS + LDAP_GROUPS);
    const groupId = new Map(groups.map((g) => [g.displayName, g.id]));
    const userIdByDn = new Map(seeded.users.map((u) => [u.dn.toLowerCase(), byName.get(u.userPrincipalName.toLowerCase()).id]));
    for (const g of seeded.groups) {
      const cg = groups.find((x) => x.displayName === g.cn);
      assert.ok(cg, `group ${g.cn}`);
      const expected = g.members.map((m) => userIdByDn.get(m.toLowerCase()) ?? groupId.get(/^CN=([^,]+)/i.exec(m)![1]!)).sort();
      assert.deepEqual((cg.members ?? []).map((m: { value: string }) => m.value).sort(), expected, `members of ${g.cn}`);
    }
    for (let j = 0; j < LDAP_GROUPS; j++) {
      const cg = groups.find((x) => x.displayName === `lg${j}`);
      const expected = Array.from({ length: LDAP_USERS }, (_, i) => i)
        .filter((i) => i % LDAP_GROUPS === j)
        .map((i) => byName.get(`lu${i}@ldap.test`).id);
      if (j + 1 < LDAP_GROUPS) expected.push(groupId.get(`lg${j + 1}`));
      assert.deepEqual((cg.members ?? []).map((m: { value: string }) => m.value).sort(), expected.sort(), `members of lg${j}`);
      const nested = (cg.members ?? []).filter((m: { type: string }) => m.type === 'Group');
      assert.equal(nested.length, j + 1 < LDAP_GROUPS ? 1 : 0);
    }
  });

  test('modified, renamed, moved and disabled users are updated in place, and nothing else', async () => {
    const before = new Map((await cloud.all('Users')).map((u) => [u.externalId, u]));
    const [modified, renamed, moved, disabled] = [seeded.users[1]!, seeded.users[2]!, seeded.users[3]!, seeded.users[4]!];
    const c = await dc.client();
    await c.modify(modified.dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: ['Principal Engineer'] }) }));
    await c.modifyDN(renamed.dn, `CN=renamed-${renamed.sAMAccountName}`);
    await c.modifyDN(moved.dn, `CN=${moved.sAMAccountName},OU=moved,${seeded.ouDn}`);
    await c.modify(disabled.dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'userAccountControl', values: ['546'] }) }));
    await c.unbind();
    await slapd.modify(
      [
        'dn: uid=lu1,ou=people,dc=lab,dc=test',
        'changetype: modify',
        'replace: title',
        'title: Senior Analyst',
        '',
        'dn: uid=lu2,ou=people,dc=lab,dc=test',
        'changetype: modrdn',
        'newrdn: uid=lu2-renamed',
        'deleteoldrdn: 0',
        '',
      ].join('\n'),
    );

    const run = await runCycle(ctx);
    assert.equal(run.status, 'success', JSON.stringify(run.errors.slice(0, 5)));
    const e = exportOf(run);
    // six users, and lu2's group: slapd (no refint overlay) still lists the old DN uid=lu2, which
    // names nobody now, so lu2 leaves the group, as a full sync of this directory says
    assert.deepEqual({ adds: e.adds, updates: e.updates, deletes: e.deletes }, { adds: 0, updates: 7, deletes: 0 });

    const after = new Map((await cloud.all('Users')).map((u) => [u.externalId, u]));
    assert.equal(after.size, before.size, 'no user was duplicated or lost');
    for (const [id, u] of after) assert.equal(u.id, before.get(id).id, 'every user keeps its cloud id');
    const find = (sam: string) => [...after.values()].find((u) => u[ONPREM]?.onPremisesSamAccountName === sam);
    assert.equal(find(modified.sAMAccountName).title, 'Principal Engineer');
    assert.match(find(renamed.sAMAccountName)[ONPREM].onPremisesDistinguishedName, /^CN=renamed-/i);
    assert.match(find(moved.sAMAccountName)[ONPREM].onPremisesDistinguishedName, /OU=moved,/i);
    assert.equal(find(disabled.sAMAccountName).active, false);
    const changed = [...after.values()].filter((u) => u.meta.version !== before.get(u.externalId).meta.version);
    assert.equal(changed.length, 6, 'exactly the six changed users were rewritten');
    const lu1 = [...after.values()].find((u) => u.userName === 'lu1@ldap.test');
    assert.equal(lu1.title, 'Senior Analyst');
    assert.ok([...after.values()].some((u) => /uid=lu2-renamed/.test(u[ONPREM]?.onPremisesDistinguishedName ?? '')));
  });

  test('a cycle with no source change exports nothing', async () => {
    const run = await runCycle(ctx);
    assert.equal(run.status, 'success');
    const e = exportOf(run);
    assert.deepEqual([e.adds, e.updates, e.deletes], [0, 0, 0]);
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
