/**
 * Issue 4's acceptance: the incumbent's KB 2962509 outage — password sync silently using an old
 * cloud credential after an administrator changed it — made impossible. Real parts throughout: a
 * Samba AD DC with the DC-side agent, the sync service as a daemon (`idsync service start`), the
 * cloud directory over HTTP, the CLI as an administrator uses it.
 *
 *  a. password hash sync works;
 *  b. the sync account's password is changed in the cloud: the next batch fails, events 115 and 655
 *     appear with their resolution, `idsync doctor` names the fix, `idsync service status` is
 *     degraded, and password changes made meanwhile wait in the outbox;
 *  f. a password change notification posted meanwhile is accepted, queued (never in plaintext);
 *  c. `idsync credentials set cloud` with the new password: within seconds every waiting change is
 *     delivered and each user signs in with the latest password — no restart, nothing lost;
 *  d. a wrong password is refused with a clear message and the working credential is kept;
 *  e. the same outage across `idsync service restart`, fixed with `idsync configure`
 *     (non-interactively): nothing lost either.
 * (g, the interactive wizard in a real terminal, is test/cli/wizard-pty.test.ts.)
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { checkServerIdentity } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { Attribute, Change, Client } from 'ldapts';
import { request } from 'undici';
import { fetchToken } from '../../src/cloud/admin-api-client.js';
import { PCN_PATH } from '../../src/passwords/handlers.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { adConnectorConfig, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { skipUnless } from '../helpers/integration.js';
import { assertNoTestSecrets } from '../helpers/secret-scan.js';
import { captured, idsync, setCredentials, signIn, signsInWithin, spawnIdsync, stopProc, until, type Proc } from '../helpers/processes.js';
import { deleteAdTree, seedAdUsers, useSambaDC, type SambaDC, type SeededAd } from '../helpers/samba.js';
import { freePort } from '../helpers/slapd.js';

const OU = 'e2ekb2962509';
const INITIAL = 'Initial-Kb-1!';
const SYNC_ACCOUNT = 'sync-account';
const P1 = 'Cloud-Sync-Password-1';
const P2 = 'Cloud-Sync-Password-2';
const P3 = 'Cloud-Sync-Password-3';

interface EventJson {
  id: number;
  message: string;
  resolution: string;
}

describe('e2e: KB 2962509 — a changed cloud credential never silently stops password sync', { skip: skipUnless('samba') }, () => {
  let dc: SambaDC;
  let seeded: SeededAd;
  let cloud: TestCloud;
  let lab: EngineLab;
  let dir: string;
  let config: string;
  let agent: Proc | undefined;
  let serviceUrl: string;
  const token = randomBytes(24).toString('base64url');
  const cli = (args: string[], input?: string) => idsync(['-c', config, ...args], input);

  async function setDcPassword(dn: string, password: string): Promise<void> {
    const c = new Client({ url: dc.ldapsUrl, tlsOptions: { ca: readFileSync(dc.caFile), checkServerIdentity: (_h, cert) => checkServerIdentity(dc.tlsServerName, cert) } });
    try {
      await c.bind(dc.adminUpn, dc.adminPassword);
      await c.modify(dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'unicodePwd', values: [Buffer.from(`"${password}"`, 'utf16le')] }) }));
    } finally {
      await c.unbind();
    }
  }

  async function changeSyncAccountPassword(password: string): Promise<void> {
    const adminToken = await fetchToken(cloud.url, { grant_type: 'password', ...cloud.admin });
    const res = await request(`${cloud.url}/admin/v1/accounts/${SYNC_ACCOUNT}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
      body: JSON.stringify({ password }),
    });
    await res.body.dump();
    assert.equal(res.statusCode, 200);
  }

  /** The newest password-sync status of a user (Success, Error, TargetNotExported, Queued...). */
  const latestStatus = async (user: string) => {
    const r = await cli(['passwords', 'status', user, '--json']);
    return (JSON.parse(r.out) as { records: { status: string }[] }).records[0]?.status;
  };

  const outboxDepth = async () => {
    const r = await cli(['service', 'status', '--json']);
    const s = JSON.parse(r.out) as { health?: { passwords?: { outboxDepth: number } }; offline?: { outboxDepth: number } };
    return s.health?.passwords?.outboxDepth ?? s.offline?.outboxDepth ?? 0;
  };

  before(async () => {
    dc = await useSambaDC();
    seeded = await seedAdUsers(dc, { ou: OU, users: 4, password: INITIAL });
    cloud = await startTestCloud({ lockout: false });
    // The incumbent's way: a cloud account (user name and password) with the sync role.
    const adminToken = await fetchToken(cloud.url, { grant_type: 'password', ...cloud.admin });
    const created = await request(`${cloud.url}/admin/v1/accounts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
      body: JSON.stringify({ username: SYNC_ACCOUNT, password: P1, role: 'DirectorySynchronizationAccounts' }),
    });
    await created.body.dump();
    assert.equal(created.statusCode, 201);

    lab = await startEngineLab({ prefix: 'idsync-e2e-kb-', connectors: [adConnectorConfig(dc, seeded)], cloud, cloudConfig: { auth: { type: 'password', username: SYNC_ACCOUNT } }, credentials: false });
    ({ dir, configFile: config } = lab);
    writeFileSync(path.join(dir, 'agent.token'), `${token}\n`, { mode: 0o600 });
    await setCredentials(config, [
      ['corp-ad', dc.adminPassword],
      ['cloud', P1],
      ['agent', token, ['--no-validate']],
    ]);
    const port = await freePort();
    serviceUrl = `http://127.0.0.1:${port}`;
    const started = await cli(['service', 'start', '--port', String(port), '--interval', '1h']);
    assert.equal(started.code, 0, started.out);
    agent = spawnIdsync([
      'agent', 'samba', '--ldapi', dc.privLdapiPath, '--base', dc.baseDn, '--state', path.join(dir, 'agent-state'),
      '--forward', serviceUrl, '--token-file', path.join(dir, 'agent.token'), '--connector', 'corp-ad', '--poll-ms', '250',
    ]);
  });

  after(async () => {
    await stopProc(agent);
    if (config) await cli(['service', 'stop']);
    await cloud?.close();
    await lab?.close();
    if (dc) {
      await deleteAdTree(dc, `OU=${OU},${dc.baseDn}`).catch(() => undefined);
      await dc.stop();
    }
  });

  test('a. password hash sync works: a changed password signs in to the cloud', async () => {
    for (const u of seeded.users) await signsInWithin(cloud.url, u.userPrincipalName, INITIAL, 30_000);
    await setDcPassword(seeded.users[0]!.dn, 'Before-Outage-1!');
    await signsInWithin(cloud.url, seeded.users[0]!.userPrincipalName, 'Before-Outage-1!', 10_000);
  });

  test('b/f. the cloud password changes: 115 and 655 with their fix, doctor names it, status degraded, changes wait', async () => {
    await changeSyncAccountPassword(P2);
    await setDcPassword(seeded.users[1]!.dn, 'During-Outage-1!');
    await setDcPassword(seeded.users[2]!.dn, 'During-Outage-2!');
    // f. a password change notification during the outage is accepted and queued
    const pcn = await request(`${serviceUrl}${PCN_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ user: seeded.users[3]!.sAMAccountName, password: 'Pcn-During-Outage-3!' }),
    });
    const pcnBody = (await pcn.body.json()) as { status?: string };
    assert.equal(pcn.statusCode, 202, JSON.stringify(pcnBody));
    assert.equal(pcnBody.status, 'Queued');

    const events = await until(
      'events 115 and 655',
      async () => {
        const r = await cli(['events', '--id', '115,655', '--json']);
        const list = JSON.parse(r.out) as EventJson[];
        return list.some((e) => e.id === 115) && list.some((e) => e.id === 655) ? list : undefined;
      },
      20_000,
      250,
    );
    for (const id of [115, 655]) {
      const e = events.find((x) => x.id === id)!;
      assert.match(e.resolution, /idsync credentials set cloud/, `event ${id} says how to fix it`);
    }
    assert.match(events.find((x) => x.id === 115)!.message, /Access to the cloud directory has been denied/);

    const doctor = await cli(['doctor', '--json']);
    assert.equal(doctor.code, 1, 'doctor reports a problem');
    const findings = (JSON.parse(doctor.out) as { ok: boolean; findings: { status: string; eventId?: number; fix?: string }[] }).findings;
    const cloudFinding = findings.find((f) => f.status === 'error' && f.eventId === 115);
    assert.ok(cloudFinding, doctor.out);
    assert.match(cloudFinding.fix ?? '', /idsync credentials set cloud/);

    const status = await until(
      'degraded status',
      async () => {
        const r = await cli(['service', 'status', '--json']);
        const s = JSON.parse(r.out) as { running: boolean; healthy: boolean; health?: { status: string; degraded: { check: string }[] } };
        return s.health?.status === 'degraded' ? s : undefined;
      },
      20_000,
      250,
    );
    assert.equal(status.running, true);
    assert.ok(status.health!.degraded.some((d) => d.check === 'cloud-credential'));
    // The DC is shared with other tests: the agent also forwards users outside this connector's
    // scope, so count this test's users, not the whole outbox.
    for (const u of seeded.users.slice(1)) assert.notEqual(await latestStatus(u.userPrincipalName), 'Success', `${u.sAMAccountName}'s change waits`);
    assert.ok((await outboxDepth()) >= 3, 'the changes wait in the outbox');
    assert.equal(await signIn(cloud.url, seeded.users[1]!.userPrincipalName, 'During-Outage-1!'), 400, 'not delivered yet');

    // The notification's password is not stored in plaintext anywhere in the data directory.
    for (const f of readdirSync(path.join(dir, 'data'))) {
      const bytes = readFileSync(path.join(dir, 'data', f));
      assert.ok(!bytes.includes(Buffer.from('Pcn-During-Outage-3!')), `${f} holds the password in plaintext`);
      assert.ok(!bytes.includes(Buffer.from('Pcn-During-Outage-3!', 'utf16le')), `${f} holds the password in UTF-16`);
    }
  });

  test('c. `idsync credentials set cloud` with the new password: everything waiting is delivered within seconds, no restart', async () => {
    const pidBefore = JSON.parse(readFileSync(path.join(dir, 'data', 'idsync.pid'), 'utf8')).pid as number;
    const set = await cli(['credentials', 'set', 'cloud'], `${P2}\n`);
    assert.equal(set.code, 0, set.out);
    const t0 = Date.now();
    await signsInWithin(cloud.url, seeded.users[1]!.userPrincipalName, 'During-Outage-1!', 15_000);
    await signsInWithin(cloud.url, seeded.users[2]!.userPrincipalName, 'During-Outage-2!', 15_000);
    await signsInWithin(cloud.url, seeded.users[3]!.userPrincipalName, 'Pcn-During-Outage-3!', 15_000);
    console.log(`# queued changes delivered ${Date.now() - t0} ms after the credential was set`);
    assert.equal(await signIn(cloud.url, seeded.users[2]!.userPrincipalName, INITIAL), 400, 'the old password no longer works');
    for (const u of seeded.users.slice(1)) assert.equal(await latestStatus(u.userPrincipalName), 'Success', `${u.sAMAccountName} delivered`);
    assert.equal(JSON.parse(readFileSync(path.join(dir, 'data', 'idsync.pid'), 'utf8')).pid, pidBefore, 'no restart');
    const healthy = await until(
      'the service to report healthy again',
      async () => {
        const r = await cli(['service', 'status', '--json']);
        const s = JSON.parse(r.out) as { health?: { status: string; degraded: { check: string }[] } };
        return s.health && !s.health.degraded.some((d) => d.check === 'cloud-credential') ? s.health : undefined;
      },
      15_000,
      250,
    );
    assert.ok(healthy, 'the cloud-credential finding is gone once the credential works');
  });

  test('d. a wrong cloud password is refused with a clear message and the working credential is kept', async () => {
    const wrong = await cli(['credentials', 'set', 'cloud'], 'Not-The-Password-9\n');
    assert.equal(wrong.code, 3);
    assert.match(wrong.out, /CREDENTIAL_INVALID/);
    assert.match(wrong.out, /user name or password is incorrect|refused/i);
    assert.doesNotMatch(wrong.out, /Not-The-Password-9/);
    await setDcPassword(seeded.users[0]!.dn, 'After-Refusal-1!');
    await signsInWithin(cloud.url, seeded.users[0]!.userPrincipalName, 'After-Refusal-1!', 10_000);
  });

  test('e. the same outage across `idsync service restart`, fixed with `idsync configure`: nothing lost', async () => {
    await changeSyncAccountPassword(P3);
    await setDcPassword(seeded.users[1]!.dn, 'Across-Restart-1!');
    const waiting = seeded.users[1]!.userPrincipalName;
    await until('the change to be queued', async () => ((await latestStatus(waiting)) !== 'Success' ? true : undefined), 15_000, 250);
    const restarted = await cli(['service', 'restart', '--port', serviceUrl.split(':').pop()!, '--interval', '1h']);
    assert.equal(restarted.code, 0, restarted.out);
    assert.notEqual(await latestStatus(waiting), 'Success', 'the queued change survived the restart, undelivered');
    assert.equal(await signIn(cloud.url, waiting, 'Across-Restart-1!'), 400);
    const configured = await cli(['configure', '--task', 'update-cloud-credentials', '--password-stdin'], `${P3}\n`);
    assert.equal(configured.code, 0, configured.out);
    await signsInWithin(cloud.url, seeded.users[1]!.userPrincipalName, 'Across-Restart-1!', 15_000);
    assert.equal(await signIn(cloud.url, seeded.users[1]!.userPrincipalName, 'During-Outage-1!'), 400);
    // every user signs in with their latest password
    const latest = ['After-Refusal-1!', 'Across-Restart-1!', 'During-Outage-2!', 'Pcn-During-Outage-3!'];
    for (const [i, pw] of latest.entries()) assert.equal(await signIn(cloud.url, seeded.users[i]!.userPrincipalName, pw), 200, `user ${i}`);
  });

  test('f. the secret scan: no password, NT hash or token in the data folders, the service log or any output', async () => {
    const passwords = [INITIAL, P1, P2, P3, 'Not-The-Password-9', 'Before-Outage-1!', 'During-Outage-1!', 'During-Outage-2!', 'Pcn-During-Outage-3!', 'After-Refusal-1!', 'Across-Restart-1!'];
    const scanned = await assertNoTestSecrets(
      { passwords, tokens: { 'agent token': token, 'cloud admin password': cloud.admin.password, 'DC admin password': dc.adminPassword } },
      { dirs: [dir, cloud.dataDir], texts: captured, exclude: [{ file: path.join(dir, 'agent.token'), why: 'the token file the operator gives the agent' }] },
    );
    assert.ok(scanned.files >= 3, `scanned ${scanned.files} files`);
  });
});
