/**
 * Issue 9, defect 1: password state follows the cloud object. A user whose cloud object is new —
 * deleted and re-created in the source with the same anchor and password, moved out of scope and
 * back, deleted in the cloud and re-provisioned at its next update — signs in with the unchanged
 * password after the next cycle, without `passwords resync`. Real slapd (sambaNTPassword), real
 * cloud directory, sign-in at its token endpoint; production defaults (lockout, deletion threshold).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Client, Control } from 'ldapts';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { openContext, type EngineContext } from '../../src/engine/context.js';
import { runCycle } from '../../src/engine/cycle.js';
import { skipUnless } from '../helpers/integration.js';
import { sambaNtPassword, startSambaNtLab, type SambaNtLab } from '../helpers/passwords.js';
import { signIn } from '../helpers/processes.js';

const USERS = 12;
const pw = (i: number) => `Follow-${i}!pass`;
const cloudUsers = async (lab: SambaNtLab, uid: string) =>
  (await lab.cloud.scim<{ Resources: { id: string; externalId: string }[] }>('GET', `/Users?filter=${encodeURIComponent(`userName eq "${uid}@lab.test"`)}`)).body.Resources;

/** The Relax Rules control: lets the administrator write entryUUID, as a restore from backup does. */
const RELAX = '1.3.6.1.4.1.4203.666.5.12';

describe('e2e: password state follows the cloud object (sambaNTPassword → cloud sign-in)', { skip: skipUnless('slapd') }, () => {
  let lab: SambaNtLab;
  let ctx: EngineContext;

  before(async () => {
    lab = await startSambaNtLab({ count: USERS, uidPrefix: 'fw', cnPrefix: 'Fw', passwordOf: pw }, 'idsync-phs-follow-');
    await lab.slapd.add('dn: ou=leavers,dc=lab,dc=test\nobjectClass: organizationalUnit\nou: leavers\n');
    // Scope: ou=people only, so a move to ou=leavers takes a user out of scope.
    lab.ctx.close();
    writeFileSync(
      lab.config,
      stringify({
        dataDir: './data',
        connectors: [{ name: 'ldap', type: 'ldap', url: lab.slapd.url, bindDn: lab.slapd.adminDn, baseDn: lab.slapd.baseDn, scope: { include: ['ou=people,dc=lab,dc=test'] } }],
        cloud: { url: lab.cloud.url, auth: { type: 'client_credentials', clientId: lab.cloud.syncClientId } },
      }),
    );
    ctx = openContext(loadConfig(lab.config));
    ctx.credentials.set('ldap', lab.slapd.adminPassword);
    ctx.credentials.set('cloud', lab.cloud.syncSecret);
    const run = await runCycle(ctx);
    assert.equal(run.status, 'success', JSON.stringify(run.errors));
    assert.equal(await signIn(lab.cloud.url, 'fw0@lab.test', pw(0)), 200);
  });

  after(async () => {
    ctx?.close();
    await lab?.close();
  });

  test('deleted and re-created with the same entryUUID and password: signs in after the next cycle', async () => {
    const dn = 'uid=fw1,ou=people,dc=lab,dc=test';
    const client = new Client({ url: lab.slapd.url });
    await client.bind(lab.slapd.adminDn, lab.slapd.adminPassword);
    try {
      const { searchEntries } = await client.search(dn, { scope: 'base', attributes: ['entryUUID'] });
      const uuid = String(searchEntries[0]?.entryUUID);
      await client.del(dn);
      // Without the accesslog overlay a delta import cannot see deletions: a full cycle does.
      const gone = await runCycle(ctx, { full: true });
      assert.equal(gone.status, 'success', JSON.stringify(gone.errors));
      assert.equal((await cloudUsers(lab, 'fw1')).length, 0, 'deleted in the cloud');

      await client.add(
        dn,
        {
          objectClass: ['inetOrgPerson', 'sambaSamAccount'],
          uid: 'fw1',
          cn: 'Fw 1',
          sn: '1',
          mail: 'fw1@lab.test',
          sambaSID: 'S-1-5-21-1-2-3-1001',
          sambaNTPassword: await sambaNtPassword(pw(1)),
          entryUUID: uuid,
        },
        [new Control(RELAX, { critical: true })],
      );
    } finally {
      await client.unbind();
    }
    const back = await runCycle(ctx);
    assert.equal(back.status, 'success', JSON.stringify(back.errors));
    const now = await cloudUsers(lab, 'fw1');
    assert.equal(now.length, 1);
    assert.notEqual(now[0]?.id, undefined);
    assert.equal(await signIn(lab.cloud.url, 'fw1@lab.test', pw(1)), 200, 'the unchanged password works on the new cloud object');
  });

  test('moved out of scope and back: signs in after the next cycle', async () => {
    await lab.slapd.modify('dn: uid=fw2,ou=people,dc=lab,dc=test\nchangetype: modrdn\nnewrdn: uid=fw2\ndeleteoldrdn: 1\nnewsuperior: ou=leavers,dc=lab,dc=test\n');
    const out = await runCycle(ctx);
    assert.equal(out.status, 'success', JSON.stringify(out.errors));
    assert.equal((await cloudUsers(lab, 'fw2')).length, 0, 'out of scope: deleted in the cloud');
    await lab.slapd.modify('dn: uid=fw2,ou=leavers,dc=lab,dc=test\nchangetype: modrdn\nnewrdn: uid=fw2\ndeleteoldrdn: 1\nnewsuperior: ou=people,dc=lab,dc=test\n');
    const back = await runCycle(ctx);
    assert.equal(back.status, 'success', JSON.stringify(back.errors));
    assert.equal((await cloudUsers(lab, 'fw2')).length, 1);
    assert.equal(await signIn(lab.cloud.url, 'fw2@lab.test', pw(2)), 200);
  });

  test('deleted in the cloud, re-provisioned by the next update from the source: signs in after that cycle', async () => {
    const id = (await cloudUsers(lab, 'fw3'))[0]?.id;
    assert.ok(id);
    assert.equal((await lab.cloud.scim('DELETE', `/Users/${id}`)).status, 204);
    await lab.slapd.modify('dn: uid=fw3,ou=people,dc=lab,dc=test\nchangetype: modify\nreplace: title\ntitle: Engineer\n');
    const run = await runCycle(ctx);
    assert.equal(run.status, 'success', JSON.stringify(run.errors));
    const now = await cloudUsers(lab, 'fw3');
    assert.equal(now.length, 1);
    assert.notEqual(now[0]?.id, id, 'a new cloud object');
    assert.equal(await signIn(lab.cloud.url, 'fw3@lab.test', pw(3)), 200);
  });

  test('deletionAction disable: disabled when it leaves the scope, adopted and re-enabled when it returns, signs in', async () => {
    ctx.close();
    const text = readFileSync(lab.config, 'utf8');
    writeFileSync(lab.config, `${text}sync:\n  deletionAction: disable\n`);
    ctx = openContext(loadConfig(lab.config));
    await lab.slapd.modify('dn: uid=fw5,ou=people,dc=lab,dc=test\nchangetype: modrdn\nnewrdn: uid=fw5\ndeleteoldrdn: 1\nnewsuperior: ou=leavers,dc=lab,dc=test\n');
    const out = await runCycle(ctx);
    assert.equal(out.status, 'success', JSON.stringify(out.errors));
    const disabled = await lab.cloud.scim<{ Resources: { id: string; active: boolean }[] }>('GET', `/Users?filter=${encodeURIComponent('userName eq "fw5@lab.test"')}`);
    assert.equal(disabled.body.Resources[0]?.active, false, 'disabled, kept');
    assert.notEqual(await signIn(lab.cloud.url, 'fw5@lab.test', pw(5)), 200, 'a disabled user cannot sign in');
    await lab.slapd.modify('dn: uid=fw5,ou=leavers,dc=lab,dc=test\nchangetype: modrdn\nnewrdn: uid=fw5\ndeleteoldrdn: 1\nnewsuperior: ou=people,dc=lab,dc=test\n');
    const back = await runCycle(ctx);
    assert.equal(back.status, 'success', JSON.stringify(back.errors));
    const enabled = await lab.cloud.scim<{ Resources: { id: string; active: boolean }[] }>('GET', `/Users?filter=${encodeURIComponent('userName eq "fw5@lab.test"')}`);
    assert.equal(enabled.body.Resources[0]?.active, true);
    assert.equal(enabled.body.Resources[0]?.id, disabled.body.Resources[0]?.id, 'the same cloud object, adopted again');
    assert.equal(await signIn(lab.cloud.url, 'fw5@lab.test', pw(5)), 200);
  });

  test('the other users were not touched and a quiet cycle queues nothing', async () => {
    assert.equal(await signIn(lab.cloud.url, 'fw4@lab.test', pw(4)), 200);
    const run = await runCycle(ctx);
    assert.equal(run.status, 'success');
    assert.equal((ctx.db.prepare('SELECT COUNT(*) AS n FROM phs_users WHERE next_attempt_at IS NOT NULL').get() as { n: number }).n, 0);
  });
});
