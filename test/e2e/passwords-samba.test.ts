/**
 * Issue 3, acceptance (a), end to end with real processes: a Samba AD DC, the sync service
 * (`idsync serve`, a child process), the DC-side agent (`idsync agent samba`, a child process that
 * forwards over HTTP with the agent token) and the cloud directory.
 *
 * - a sync cycle (`idsync sync`, AD connector over LDAPS with the DC's CA) exports the seeded users;
 * - the agent's first round is the initial full password sync: every user signs in to the cloud
 *   with the password set on the DC;
 * - a password changed on the DC over LDAPS (unicodePwd replace) reaches the cloud sign-in within
 *   a few seconds: the new password works, the old one is rejected;
 * - a password change notification posted to the service does the same for another user;
 * - no password, NT hash, OrgId hash or the agent token appears in any child's stdout/stderr, nor in
 *   the events, runs, run_errors or phs_status tables.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { checkServerIdentity } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { openConfiguredStore } from '../helpers/store.js';
import { Attribute, Change, Client } from 'ldapts';
import { request } from 'undici';
import { PCN_PATH } from '../../src/passwords/handlers.js';
import { ntHash } from '../../src/passwords/hash.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { adConnectorConfig, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { skipUnless } from '../helpers/integration.js';
import { assertNoTestSecrets } from '../helpers/secret-scan.js';
import { captured, idsync, setCredentials, signIn, signsInWithin, spawnIdsync, stopProc, until, type Proc } from '../helpers/processes.js';
import { deleteAdTree, seedAdUsers, useSambaDC, type SambaDC, type SeededAd } from '../helpers/samba.js';

const OU = 'e2ephssamba';
const CONNECTOR = 'corp-ad';
const USERS = 4;
const INITIAL = 'Initial-Samba-1!';
const CHANGED = 'Changed-OverLdaps-2!';
const PCN_PW = 'Pcn-Posted-3!';

describe('e2e: Samba DC → agent → idsync serve → cloud sign-in', { skip: skipUnless('samba') }, () => {
  let dc: SambaDC;
  let seeded: SeededAd;
  let cloud: TestCloud;
  let lab: EngineLab;
  let dir: string;
  let config: string;
  let serve: Proc | undefined;
  let agent: Proc | undefined;
  let serviceUrl: string;
  const token = randomBytes(24).toString('base64url');

  before(async () => {
    dc = await useSambaDC();
    seeded = await seedAdUsers(dc, { ou: OU, users: USERS, password: INITIAL });
    // Smart lockout off: the test polls the token endpoint with a password that does not work yet.
    cloud = await startTestCloud({ lockout: false });

    lab = await startEngineLab({ prefix: 'idsync-e2e-phs-samba-', connectors: [adConnectorConfig(dc, seeded, { name: CONNECTOR })], cloud, credentials: false });
    ({ dir, configFile: config } = lab);
    writeFileSync(path.join(dir, 'agent.token'), `${token}\n`, { mode: 0o600 });
    await setCredentials(config, [
      [CONNECTOR, dc.adminPassword],
      ['cloud', cloud.syncSecret],
      ['agent', token, ['--no-validate']],
    ]);
  });

  after(async () => {
    await stopProc(agent);
    await stopProc(serve);
    await cloud?.close();
    await lab?.close();
    if (dc) {
      await deleteAdTree(dc, `OU=${OU},${dc.baseDn}`).catch(() => undefined);
      await dc.stop();
    }
  });

  test('a sync cycle over LDAPS exports the seeded users', async () => {
    const r = await idsync(['-c', config, 'sync', '--json']);
    assert.equal(r.code, 0, r.out);
    assert.equal((JSON.parse(r.out) as { status: string }).status, 'success', r.out);
    const names = (cloud.server.db!.prepare('SELECT user_name_lc AS n FROM scim_users').all() as { n: string }[]).map((x) => x.n);
    for (const u of seeded.users) assert.ok(names.includes(u.userPrincipalName.toLowerCase()), `${u.userPrincipalName} is in the cloud`);
  });

  test('idsync serve + the agent over HTTP: the initial full password sync lets every user sign in', async () => {
    serve = spawnIdsync(['-c', config, 'serve', '--port', '0', '--interval', '1h']);
    serviceUrl = await until('serve to listen', () => /listening on (\S+)/.exec(serve!.out.text)?.[1], 20_000);
    agent = spawnIdsync([
      'agent', 'samba', '--ldapi', dc.privLdapiPath, '--base', dc.baseDn, '--state', path.join(dir, 'agent-state'),
      '--forward', serviceUrl, '--token-file', path.join(dir, 'agent.token'), '--connector', CONNECTOR, '--poll-ms', '250', '--json',
    ]);
    for (const u of seeded.users) await signsInWithin(cloud.url, u.userPrincipalName, INITIAL, 20_000);
    // The agent prints "forwarded" once serve has answered; the sign-ins can be faster than this
    // process reads the agent's output on a loaded machine, so wait for the line instead of looking once.
    await until('the agent to report "forwarded"', () => /"event":\s*"forwarded"/.test(agent!.out.text) || undefined, 20_000).catch(() => {
      assert.fail(`the agent never reported "forwarded": ${agent!.out.text.slice(-2000)}`);
    });
  });

  test('a password changed on the DC over LDAPS signs in within a few seconds; the old one is rejected', async () => {
    const u = seeded.users[0]!;
    const c = new Client({
      url: dc.ldapsUrl,
      tlsOptions: { ca: readFileSync(dc.caFile), checkServerIdentity: (_h, cert) => checkServerIdentity(dc.tlsServerName, cert) },
    });
    try {
      await c.bind(dc.adminUpn, dc.adminPassword);
      await c.modify(u.dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'unicodePwd', values: [Buffer.from(`"${CHANGED}"`, 'utf16le')] }) }));
    } finally {
      await c.unbind();
    }
    const t0 = Date.now();
    await signsInWithin(cloud.url, u.userPrincipalName, CHANGED, 10_000);
    console.log(`# password change on the DC (LDAPS) to cloud sign-in: ${Date.now() - t0} ms`);
    assert.equal(await signIn(cloud.url, u.userPrincipalName, INITIAL), 400, 'the old password is rejected');
    // the other users are untouched
    assert.equal(await signIn(cloud.url, seeded.users[2]!.userPrincipalName, INITIAL), 200);

    const st = await idsync(['-c', config, 'passwords', 'status', u.userPrincipalName, '--json']);
    assert.equal(st.code, 0, st.out);
    const records = (JSON.parse(st.out) as { records: { status: string; source: string }[] }).records;
    assert.equal(records[0]?.status, 'Success', st.out);
  });

  test('a password change notification posted to the service: the new password works, the old one not', async () => {
    const u = seeded.users[1]!;
    const res = await request(`${serviceUrl}${PCN_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ user: u.sAMAccountName, password: PCN_PW }),
    });
    const body = (await res.body.json()) as { status?: string };
    assert.equal(res.statusCode, 202, JSON.stringify(body));
    assert.equal(body.status, 'Queued');
    await signsInWithin(cloud.url, u.userPrincipalName, PCN_PW, 10_000);
    assert.equal(await signIn(cloud.url, u.userPrincipalName, INITIAL), 400, 'the old password is rejected');
    // without the token: 401
    const none = await request(`${serviceUrl}${PCN_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: u.sAMAccountName, password: 'x-Other-1!' }) });
    await none.body.dump();
    assert.equal(none.statusCode, 401);
  });

  test('no password, NT hash, OrgId hash or agent token in any output, event, run record or status', async () => {
    assert.equal(await stopProc(agent), 0, agent?.out.text);
    assert.equal(await stopProc(serve), 0, serve?.out.text);
    const secrets: string[] = [token];
    for (const p of [INITIAL, CHANGED, PCN_PW]) secrets.push(p, (await ntHash(p)).toString('hex'));
    const db = openConfiguredStore(config);
    const dumps: { what: string; text: string }[] = [...captured];
    try {
      for (const t of ['events', 'runs', 'run_errors', 'phs_status']) dumps.push({ what: `table ${t}`, text: JSON.stringify(db.prepare(`SELECT * FROM ${t}`).all()) });
      assert.ok((db.prepare("SELECT count(*) AS n FROM phs_status WHERE status = 'Success'").get() as { n: number }).n >= USERS + 2);
    } finally {
      db.close();
    }
    assert.ok(captured.length >= 6, 'the outputs of serve, agent and the CLI commands were captured');
    for (const d of dumps) {
      const text = d.text.toLowerCase();
      for (const s of secrets) assert.ok(!text.includes(s.toLowerCase()), `${d.what} leaks a secret (${s.slice(0, 3)}…)`);
      assert.doesNotMatch(text, /v1;pph1_md4/, `${d.what} holds an OrgId hash`);
    }
    // Every file of both data folders (idsync.db, -wal, -shm, the cloud's database) as raw bytes,
    // every output: each password and NT hash in every encoding, and every token.
    const scanned = await assertNoTestSecrets(
      { passwords: [INITIAL, CHANGED, PCN_PW, 'x-Other-1!'], tokens: { 'agent token': token, 'cloud sync secret': cloud.syncSecret, 'cloud admin password': cloud.admin.password, 'DC admin password': dc.adminPassword } },
      { dirs: [dir, cloud.dataDir], texts: captured, exclude: [{ file: path.join(dir, 'agent.token'), why: 'the token file the operator gives the agent' }] },
    );
    assert.ok(scanned.files >= 3, `scanned ${scanned.files} files`);
  });
});
