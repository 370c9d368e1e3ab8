/**
 * Issue 3: the initial full password sync of 1,000 users. OpenLDAP holds each user's NT hash in
 * sambaNTPassword (the fastest real source here); the first sync cycle exports the users and their
 * OrgId hashes, after which EVERY one of them signs in to the cloud (password grant at
 * /oauth2/token) with their own password, and `idsync passwords status USER --json` shows Success.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCycle } from '../../src/engine/cycle.js';
import { skipUnless } from '../helpers/integration.js';
import { failedSignIns, startSambaNtLab, type SambaNtLab } from '../helpers/passwords.js';
import { captured, idsync, signIn } from '../helpers/processes.js';
import { assertNoTestSecrets } from '../helpers/secret-scan.js';

const USERS = 1000;
const passwordOf = (i: number): string => `Full-Sync-${i}-Pw!`;

describe('e2e: initial full password sync of 1,000 users (OpenLDAP sambaNTPassword)', { skip: skipUnless('slapd') }, () => {
  let lab: SambaNtLab;

  before(async () => {
    lab = await startSambaNtLab({ count: USERS, uidPrefix: 'fs', cnPrefix: 'Full Sync', passwordOf }, 'idsync-e2e-phs-full-');
  });

  after(async () => {
    await lab?.close();
  });

  test('one cycle: every one of the 1,000 users signs in with their own on-premises password', async () => {
    const { ctx, cloud } = lab;
    const t0 = Date.now();
    const run = await runCycle(ctx);
    const cycleMs = Date.now() - t0;
    assert.equal(run.status, 'success', JSON.stringify(run.errors.slice(0, 5)));
    const outbox = ctx.db.prepare('SELECT count(*) AS n FROM phs_users WHERE next_attempt_at IS NOT NULL').get() as { n: number };
    assert.equal(outbox.n, 0, 'the outbox is empty after the cycle');
    const delivered = ctx.db.prepare("SELECT count(DISTINCT anchor) AS n FROM phs_status WHERE status = 'Success'").get() as { n: number };
    assert.equal(delivered.n, USERS);

    const t1 = Date.now();
    const failed = await failedSignIns(cloud.url, USERS, 8, (i) => [`fs${i}@lab.test`, passwordOf(i)]);
    console.log(`# full password sync of ${USERS} users: cycle ${cycleMs} ms; ${USERS} sign-ins checked in ${Date.now() - t1} ms`);
    assert.deepEqual(failed, [], `${failed.length} users could not sign in`);
    // someone else's password does not work
    assert.equal(await signIn(cloud.url, 'fs1@lab.test', passwordOf(2)), 400);
  });

  test('`idsync passwords status USER --json` shows Success for a sample of users', async () => {
    for (const i of [0, 1, 499, 998, 999]) {
      const r = await idsync(['-c', lab.config, 'passwords', 'status', `fs${i}`, '--json']);
      assert.equal(r.code, 0, r.out);
      const body = JSON.parse(r.out) as { records: { status: string; source: string }[] };
      assert.equal(body.records[0]?.status, 'Success', r.out);
      assert.equal(body.records[0]?.source, 'ldap', r.out);
      assert.ok(!r.out.toLowerCase().includes(passwordOf(i).toLowerCase()));
      assert.doesNotMatch(r.out, /v1;PPH1_MD4/i);
    }
  });

  test('the secret scan: none of the 1,000 passwords or NT hashes, nor a token, in any data file or output', async () => {
    const scanned = await assertNoTestSecrets(
      { passwords: Array.from({ length: USERS }, (_, i) => passwordOf(i)), tokens: { 'cloud sync secret': lab.cloud.syncSecret, 'cloud admin password': lab.cloud.admin.password } },
      { dirs: [lab.dir, lab.cloud.dataDir], texts: captured },
    );
    assert.ok(scanned.files >= 3, `scanned ${scanned.files} files`);
  });
});
