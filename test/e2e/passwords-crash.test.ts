/**
 * Issue 3: the sync service killed with SIGKILL while password batches are in flight loses nothing.
 *
 * `idsync serve` (a child process, its idsync.db on disk) syncs 300 users from an LDIF source to the
 * cloud directory, through a small proxy in this process that holds every password-hash batch for
 * a while (a slow cloud), so batches are in flight when the service dies. Password change
 * notifications for all 300 users are posted as fast as possible — several in a row for two thirds
 * of them, so "latest change wins" is exercised — and the service is killed with SIGKILL while the
 * outbox is non-empty and batches are held by the proxy (both asserted). After a restart the
 * outbox drains, and EVERY user signs in with their LATEST password while an earlier one fails.
 * The outputs of every child process and the events/runs/run_errors/phs_status tables are scanned
 * for every password, its NT hash and any OrgId hash string.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openConfiguredStore } from '../helpers/store.js';
import { request } from 'undici';
import { PCN_PATH } from '../../src/passwords/handlers.js';
import { ntHash } from '../../src/passwords/hash.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { inParallel, range } from '../helpers/passwords.js';
import { startSlowProxy, type SlowProxy } from '../helpers/slow-proxy.js';
import { assertNoTestSecrets } from '../helpers/secret-scan.js';
import { captured, setCredentials, signIn, spawnIdsync, stopProc, until, type Proc } from '../helpers/processes.js';

const USERS = 300;
const BASE = 'dc=example,dc=test';
/** Versions per user: 3 for i % 3 == 0, 2 for i % 3 == 1, 1 for the rest (600 changes in all). */
const versionsOf = (i: number): number => (i % 3 === 0 ? 3 : i % 3 === 1 ? 2 : 1);
const passwordOf = (i: number, v: number): string => `Crash-${i}-v${v}!`;
const PASSWORD_RE = /crash-\d+-v\d!/i;
const uuid = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

async function getJson(url: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any -- /status JSON
  const res = await request(url);
  return res.body.json();
}


describe('e2e: idsync serve killed with SIGKILL while password batches are in flight', () => {
  let cloud: TestCloud;
  let lab: EngineLab;
  let proxy: SlowProxy;
  let dir: string;
  let config: string;
  let serve: Proc | undefined;
  const token = randomBytes(24).toString('base64url');
  let outboxAtKill = 0;

  const startServe = async (): Promise<string> => {
    const p = spawnIdsync(['-c', config, 'serve', '--port', '0', '--interval', '1h']);
    serve = p;
    return until('serve to listen', () => /listening on (\S+)/.exec(p.out.text)?.[1], 20_000);
  };

  before(async () => {
    cloud = await startTestCloud();
    proxy = await startSlowProxy(cloud.url);
    const ldif = ['version: 1', ''];
    for (let i = 0; i < USERS; i++) {
      ldif.push(`dn: uid=cu${i},ou=people,${BASE}`, 'objectClass: inetOrgPerson', `uid: cu${i}`, `cn: Crash User ${i}`, `sn: u${i}`, `mail: cu${i}@example.test`, `entryUUID: ${uuid(i + 1)}`, '');
    }
    lab = await startEngineLab({ prefix: 'idsync-e2e-phs-crash-', connectors: [ldifConnector()], cloud, cloudUrl: proxy.url, files: { 'source.ldif': ldif.join('\n') }, credentials: false });
    ({ dir, configFile: config } = lab);
    await setCredentials(config, [
      ['cloud', cloud.syncSecret],
      ['agent', token, ['--no-validate']],
    ]);
  });

  after(async () => {
    await stopProc(serve, 'SIGKILL');
    await proxy?.close();
    await cloud?.close();
    await lab?.close();
  });

  test('PCNs for 300 users, SIGKILL with a non-empty outbox and batches in flight', async () => {
    const url = await startServe();
    await until('the first cycle', async () => ((await getJson(`${url}/status`)).cycle?.last?.status === 'success' ? true : undefined), 30_000);
    assert.equal((await cloud.all('Users')).length, USERS);

    proxy.delayMs = 400; // a slow cloud: every batch stays in flight 0.4 s, so some land before the kill
    const post = async (i: number, v: number): Promise<void> => {
      const res = await request(`${url}${PCN_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ user: `cu${i}`, password: passwordOf(i, v) }),
      });
      const text = await res.body.text();
      assert.equal(res.statusCode, 202, text);
    };
    // Round v posts version v for every user that has one; a round starts after the previous one
    // was accepted, so each user's versions are strictly ordered in time.
    const t0 = Date.now();
    for (let v = 1; v <= 3; v++) {
      await inParallel(range(USERS).filter((i) => versionsOf(i) >= v), 16, (i) => post(i, v));
    }
    const postMs = Date.now() - t0;

    // Kill at a moment when a batch is held by the proxy and the outbox is not empty.
    let depth = 0;
    let inFlight = 0;
    const killBy = Date.now() + 5000;
    do {
      depth = (await getJson(`${url}/status`)).passwords.outboxDepth as number;
      inFlight = proxy.inFlight;
      if (depth > 0 && inFlight > 0) break;
      await sleep(5);
    } while (Date.now() < killBy);
    serve!.child.kill('SIGKILL');
    const code = await serve!.exited;
    assert.equal(serve!.child.signalCode, 'SIGKILL', `exit ${code}`);

    const db = openConfiguredStore(config);
    try {
      outboxAtKill = (db.prepare('SELECT count(*) AS n FROM phs_users WHERE next_attempt_at IS NOT NULL').get() as { n: number }).n;
      const done = (db.prepare("SELECT count(DISTINCT anchor) AS n FROM phs_status WHERE status = 'Success'").get() as { n: number }).n;
      console.log(`# 600 PCNs accepted in ${postMs} ms; at the kill: /status outboxDepth ${depth}, ${inFlight} batches in flight (${proxy.held} sent in all), ${done} users delivered; outbox rows after the kill: ${outboxAtKill}`);
    } finally {
      db.close();
    }
    assert.ok(depth > 0, 'the outbox was non-empty just before the kill');
    assert.ok(inFlight > 0, 'password batches were in flight at the kill');
    assert.ok(outboxAtKill > 0, 'the outbox survived the kill with undelivered changes');
  });

  test('after a restart the outbox drains and every user signs in with the latest password only', async () => {
    proxy.delayMs = 0;
    const url = await startServe();
    await until('the outbox to drain', async () => ((await getJson(`${url}/status`)).passwords.outboxDepth === 0 ? true : undefined), 60_000, 200);
    await sleep(200); // a batch held by the proxy from before the kill may still land; latest wins in the cloud too

    const failures: string[] = [];
    await inParallel(range(USERS), 8, async (i) => {
      const v = versionsOf(i);
      const who = `cu${i}@example.test`;
      if ((await signIn(cloud.url, who, passwordOf(i, v))) !== 200) failures.push(`cu${i}: latest (v${v}) rejected`);
      if (v > 1 && (await signIn(cloud.url, who, passwordOf(i, v - 1))) !== 400) failures.push(`cu${i}: earlier (v${v - 1}) accepted`);
    });
    assert.deepEqual(failures, []);

    const status = await getJson(`${url}/status`);
    assert.equal(status.passwords.outboxDepth, 0);
    serve!.child.kill('SIGTERM');
    assert.equal(await serve!.exited, 0, serve!.out.text.slice(-2000));
  });

  test('no password, NT hash or OrgId hash in any output, event, run record or status', async () => {
    const nts = new Set<string>();
    for (let i = 0; i < USERS; i++) for (let v = 1; v <= versionsOf(i); v++) nts.add((await ntHash(passwordOf(i, v))).toString('hex'));
    const db = openConfiguredStore(config);
    const dumps = [...captured];
    try {
      for (const t of ['events', 'runs', 'run_errors', 'phs_status']) dumps.push({ what: `table ${t}`, text: JSON.stringify(db.prepare(`SELECT * FROM ${t}`).all()) });
    } finally {
      db.close();
    }
    assert.ok(captured.length >= 4);
    for (const d of dumps) {
      const text = d.text.toLowerCase();
      assert.doesNotMatch(text, PASSWORD_RE, `${d.what} holds a password`);
      assert.doesNotMatch(text, /v1;pph1_md4/, `${d.what} holds an OrgId hash`);
      assert.ok(!text.includes(token.toLowerCase()), `${d.what} holds the agent token`);
      for (const run of text.match(/[0-9a-f]{32,}/g) ?? []) {
        for (let k = 0; k + 32 <= run.length; k++) assert.ok(!nts.has(run.slice(k, k + 32)), `${d.what} holds an NT hash`);
      }
    }
    // Every file of both data folders as raw bytes (the outbox survived a SIGKILL: its -wal too),
    // every output: all 600 passwords and NT hashes in every encoding, and the tokens.
    const passwords = range(USERS).flatMap((i) => range(versionsOf(i)).map((v) => passwordOf(i, v + 1)));
    const scanned = await assertNoTestSecrets(
      { passwords, tokens: { 'agent token': token, 'cloud sync secret': cloud.syncSecret, 'cloud admin password': cloud.admin.password } },
      { dirs: [dir, cloud.dataDir], texts: captured },
    );
    assert.ok(scanned.files >= 3, `scanned ${scanned.files} files`);
  });
});
