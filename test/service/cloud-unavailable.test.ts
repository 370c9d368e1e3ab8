/**
 * Issue 8: an unavailable cloud is not a wrong password. `idsync serve` (a child process) delivers
 * password changes to a real cloud directory through a small loopback proxy — the fault injector:
 * a healthy cloud cannot be made to answer 503 otherwise — that answers 503 with `Retry-After` to
 * every request for 60 s while 20 password change notifications are queued. Asserted: no event
 * 115, 0 or 655 and no credential advice anywhere (events, service output); the unavailable event
 * (6112) appears and health degrades; once the cloud answers again, 6111 follows and every queued
 * change signs in. The sync account's credential is never refused, so nothing is recorded against it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { PCN_PATH } from '../../src/passwords/handlers.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { inParallel, range } from '../helpers/passwords.js';
import { idsync, setCredentials, signIn, spawnIdsync, stopProc, until, type Proc } from '../helpers/processes.js';

const USERS = 21;
const OUTAGE_MS = 60_000;
const BASE = 'dc=example,dc=test';
const uuid = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const CREDENTIAL_ADVICE = /credentials set|password is incorrect|user name or password/i;

interface EventJson {
  seq: number;
  id: number;
  time: string;
  message: string;
  resolution: string;
  details: Record<string, unknown>;
}

describe('service: a cloud answering 503 for 60 s is unavailable, not a refused credential', () => {
  let cloud: TestCloud;
  let proxy: FaultProxy;
  let lab: EngineLab;
  let config: string;
  let serve: Proc | undefined;
  let url: string;
  const token = randomBytes(24).toString('base64url');

  const status = async (): Promise<{ cycle: { last: { status: string } | null }; degraded: { check: string }[]; passwords: { outboxDepth: number } }> => {
    const res = await request(`${url}/status`);
    return (await res.body.json()) as never;
  };
  const pcn = async (i: number, password: string): Promise<void> => {
    const res = await request(`${url}${PCN_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ user: `ou${i}`, password }),
    });
    const text = await res.body.text();
    assert.equal(res.statusCode, 202, text);
  };
  const eventsSince = async (seq: number): Promise<EventJson[]> => {
    const r = await idsync(['-c', config, 'events', '--json', '--limit', '10000']);
    assert.equal(r.code, 0, r.out);
    return (JSON.parse(r.out) as EventJson[]).filter((e) => e.seq > seq);
  };

  before(async () => {
    cloud = await startTestCloud();
    proxy = await startFaultProxy(cloud.url);
    const ldif = ['version: 1', ''];
    for (let i = 0; i < USERS; i++) {
      ldif.push(`dn: uid=ou${i},ou=people,${BASE}`, 'objectClass: inetOrgPerson', `uid: ou${i}`, `cn: Outage User ${i}`, `sn: u${i}`, `mail: ou${i}@example.test`, `entryUUID: ${uuid(i + 1)}`, '');
    }
    lab = await startEngineLab({ prefix: 'idsync-svc-503-', connectors: [ldifConnector()], cloud, cloudUrl: proxy.url, files: { 'source.ldif': ldif.join('\n') }, credentials: false });
    config = lab.configFile;
    await setCredentials(config, [
      ['cloud', cloud.syncSecret],
      ['agent', token, ['--no-validate']],
    ]);
    const p = spawnIdsync(['-c', config, 'serve', '--port', '0', '--interval', '1h']);
    serve = p;
    url = await until('serve to listen', () => /listening on (\S+)/.exec(p.out.text)?.[1], 20_000);
    await until('the first cycle', async () => ((await status()).cycle.last?.status === 'success' ? true : undefined), 30_000, 200);
    await pcn(0, 'Before-Outage-0!');
    await until('the first change to be delivered', () => cloud.holdsPassword('ou0@example.test', 'Before-Outage-0!'), 15_000, 100);
    assert.equal(await signIn(cloud.url, 'ou0@example.test', 'Before-Outage-0!'), 200);
  });

  after(async () => {
    await stopProc(serve);
    await proxy?.close();
    await cloud?.close();
    await lab?.close();
  });

  test('20 changes queued during 60 s of 503: no 115/0/655, no credential advice; 6112, then 6111 and every change delivered', async () => {
    const before = await eventsSince(0);
    const seq0 = before.reduce((m, e) => Math.max(m, e.seq), 0);
    const outputBefore = serve!.out.text.length;

    proxy.down = { retryAfter: 5 };
    const t0 = Date.now();
    await inParallel(range(USERS).slice(1), 5, (i) => pcn(i, `During-Outage-${i}!`));
    const degraded = await until('health to name the unavailable cloud', async () => {
      const s = await status();
      return s.degraded.some((d) => d.check === 'cloud-availability') ? s : undefined;
    }, 30_000, 250);
    assert.ok(!degraded.degraded.some((d) => d.check === 'cloud-credential'), 'the credential is not suspected');
    assert.ok(degraded.passwords.outboxDepth >= USERS - 1, 'the changes wait in the outbox');
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - t0)));
    assert.ok(proxy.refused503 > 0);
    assert.equal(await cloud.holdsPassword('ou1@example.test', 'During-Outage-1!'), false, 'nothing got through the outage');

    proxy.down = undefined;
    const recovered = Date.now();
    // Polled in the cloud's store, then one real sign-in each (polling sign-ins would trip the lockout).
    await inParallel(range(USERS).slice(1), 5, async (i) => {
      await until(`ou${i}'s change in the cloud`, () => cloud.holdsPassword(`ou${i}@example.test`, `During-Outage-${i}!`), 30_000, 100);
    });
    for (const i of range(USERS).slice(1)) assert.equal(await signIn(cloud.url, `ou${i}@example.test`, `During-Outage-${i}!`), 200, `ou${i} signs in`);
    console.log(`# ${proxy.refused503} requests answered 503 during the outage; every change delivered ${Date.now() - recovered} ms after it ended`);

    const recoveredEvent = await until('6111 for the cloud', async () => {
      const list = await eventsSince(seq0);
      return list.find((e) => e.id === 6111 && e.details.check === 'cloud-availability');
    }, 20_000, 250);
    const events = await eventsSince(seq0);
    const unavailable = events.filter((e) => e.id === 6112);
    assert.ok(unavailable.length >= 1, 'the unavailable event was written');
    assert.ok(unavailable.length <= 3, `said once per outage, not per batch (${unavailable.length})`);
    assert.match(unavailable[0]!.message, /unavailable/);
    assert.ok(recoveredEvent.seq > unavailable[0]!.seq, '6111 follows 6112');
    for (const id of [115, 0, 655, 652]) assert.deepEqual(events.filter((e) => e.id === id).map((e) => e.message), [], `no event ${id}`);
    for (const e of events) assert.doesNotMatch(`${e.message} ${e.resolution}`, CREDENTIAL_ADVICE, `event ${e.id} gives credential advice`);
    assert.doesNotMatch(serve!.out.text.slice(outputBefore), CREDENTIAL_ADVICE, 'the service output gives no credential advice');

    // Nothing was recorded against the credential, and `credentials list` says its test is fine.
    const list = await idsync(['-c', config, 'credentials', 'list', '--json']);
    const cloudCred = (JSON.parse(list.out) as { credentials: { connector: string; lastTestOk: boolean | null }[] }).credentials.find((c) => c.connector === 'cloud');
    assert.notEqual(cloudCred?.lastTestOk, false);
  });
});
