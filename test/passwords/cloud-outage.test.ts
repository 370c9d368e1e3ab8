/**
 * Issue 9 (`npm run chaos`, seed 778493644, trial 3: "u29 latest password refused"): the cloud was
 * killed while `idsync sync` delivered a password change, so the change was parked for a while
 * (the backoff: our own guess, the cloud said nothing). The cloud came back, `idsync sync` ran
 * again and exited 0 — and left the change in the outbox, because its backoff had not run out: the
 * user's newest password did not sign in until some later run. A change that waits only because
 * the cloud could not be reached must go out as soon as the cloud may answer again: in a new
 * process (the next `idsync sync`) and, in the service, once the cloud answered again.
 *
 * Real parts: the cloud directory over HTTP (cloud.db on disk), idsync.db on disk, production
 * backoff (1 s doubling to 5 min). The outage is a loopback port nothing listens on (a real
 * ECONNREFUSED); the pipeline's clock is pinned so that "the backoff has not run out" does not
 * depend on how fast this machine is.
 */
import { strict as assert } from 'node:assert';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CloudClient } from '../../src/connectors/cloud/client.js';
import { IdsyncError } from '../../src/core/errors.js';
import { DEFAULT_MAX_BACKOFF_MS } from '../../src/passwords/pipeline.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { until } from '../helpers/processes.js';
import { freePort } from '../helpers/slapd.js';
import { addUser, cloudClient, createCloudUser, eventIds, makeEnv, makePipeline, signIn, type Env } from './sources/fixtures.js';

/** The production backoff (the fixtures' default is 1–20 ms). */
const PRODUCTION = { baseBackoffMs: 1000, maxBackoffMs: DEFAULT_MAX_BACKOFF_MS };

describe('a password change parked while the cloud was unreachable goes out as soon as the cloud answers', () => {
  let cloud: TestCloud;
  let env: Env;
  let live: CloudClient;
  let dead: CloudClient;
  let clock = Date.parse('2026-12-06T12:00:00Z');
  const now = () => clock;

  let deadPort = 0;

  before(async () => {
    cloud = await startTestCloud();
    deadPort = await freePort();
  });
  after(async () => {
    await cloud.close();
  });
  // Each case its own idsync.db: a change one case leaves queued must not show up in the next.
  beforeEach(() => {
    env = makeEnv();
    env.credentials.set('cloud', cloud.syncSecret);
    live = cloudClient(cloud, env.credentials);
    dead = cloudClient(cloud, env.credentials, `http://127.0.0.1:${deadPort}`);
  });
  afterEach(async () => {
    await live.close();
    await dead.close();
    env.cleanup();
  });

  const nextAttemptIn = (anchor: string): number | undefined => {
    const r = env.db.prepare<[string], { next_attempt_at: number }>('SELECT next_attempt_at FROM phs_users WHERE anchor = ? AND next_attempt_at IS NOT NULL').get(anchor);
    return r && r.next_attempt_at - clock;
  };

  it('the next process (`idsync sync` after the cloud came back) delivers it at once, not after its backoff', async () => {
    const u = addUser(env.db, { sam: 'chaos29' });
    await createCloudUser(cloud, u);
    const first = makePipeline(env, () => live, { ...PRODUCTION, now });
    await first.acceptPassword('chaos29', 'Chaos-29-old-password!');
    assert.deepEqual(await first.deliverOnce(), { delivered: 1, waiting: 0, failed: 0 });

    // The change, then the cloud is gone while it is delivered (the killed run).
    clock += 60_000;
    const killed = makePipeline(env, () => dead, { ...PRODUCTION, now });
    await killed.acceptPassword('chaos29', 'Chaos-29-new-password!');
    assert.deepEqual(await killed.deliverOnce(), { delivered: 0, waiting: 0, failed: 1 });
    const wait = nextAttemptIn(u.anchor);
    assert.ok(wait !== undefined && wait > 1, `the change is parked for its backoff (${wait} ms)`);

    // The cloud is back; the next run comes before the backoff ran out (on a fast machine it does).
    clock += 1;
    const recovery = makePipeline(env, () => live, { ...PRODUCTION, now });
    assert.deepEqual(await recovery.deliverOnce(), { delivered: 1, waiting: 0, failed: 0 }, 'the parked change goes out in the next run');
    assert.equal(recovery.outbox().depth, 0);
    assert.ok(await signIn(cloud, u.upn, 'Chaos-29-new-password!'), 'the newest password signs in');
    assert.ok(!(await signIn(cloud, u.upn, 'Chaos-29-old-password!')), 'the one it replaced does not');
    for (const p of [first, killed, recovery]) await p.stop();
  });

  it('in one process (the service): once the cloud answers again, what waited for it goes out without waiting for its backoff', async () => {
    const a = addUser(env.db, { sam: 'chaos30' });
    const b = addUser(env.db, { sam: 'chaos31' });
    await createCloudUser(cloud, a);
    await createCloudUser(cloud, b);
    let client = dead;
    const service = makePipeline(env, () => client, { ...PRODUCTION, now });
    clock += 60_000;
    await service.acceptPassword('chaos30', 'Chaos-30-password!');
    assert.deepEqual(await service.deliverOnce(), { delivered: 0, waiting: 0, failed: 1 });
    assert.ok(nextAttemptIn(a.anchor)! > 1);

    // Still down: a pass in the outage leaves the parked change alone (no hammering).
    clock += 1;
    assert.deepEqual(await service.deliverOnce(), { delivered: 0, waiting: 0, failed: 0 });

    // Back: the first answer (here a new change's batch) shows it; the next pass takes the parked one.
    client = live;
    await service.acceptPassword('chaos31', 'Chaos-31-password!');
    assert.deepEqual(await service.deliverOnce(), { delivered: 1, waiting: 0, failed: 0 });
    clock += 1;
    assert.deepEqual(await service.deliverOnce(), { delivered: 1, waiting: 0, failed: 0 }, 'the change parked during the outage goes out now');
    assert.ok(await signIn(cloud, a.upn, 'Chaos-30-password!'));
    await service.stop();
  });

  it("a batch sent before the cloud's 429 and answered after it does not override the 429's Retry-After", async () => {
    const a = addUser(env.db, { sam: 'chaos33' });
    const b = addUser(env.db, { sam: 'chaos34' });
    await createCloudUser(cloud, a);
    await createCloudUser(cloud, b);
    // The real cloud, except that it answers a's batch with 429 and Retry-After: 600 s (a rate
    // limit on demand cannot be had from the real cloud: the only part made up), and that b's
    // batch, sent at the same time, is answered after that 429.
    const sent: string[] = [];
    const throttled = Object.create(live) as CloudClient;
    throttled.api = async (method, path, body) => {
      const ids = (body as { items: { externalId: string }[] }).items.map((i) => i.externalId);
      sent.push(...ids);
      if (ids.includes(a.anchor)) {
        throw new IdsyncError('CLOUD_UNAVAILABLE', 'the cloud directory is unavailable (HTTP 429)', { details: { status: 429, retryAfterMs: 600_000 } });
      }
      await sleep(50);
      return live.api(method, path, body);
    };
    const service = makePipeline(env, () => throttled, { ...PRODUCTION, now, batchSize: 1, concurrency: 2 });
    clock += 60_000;
    await service.acceptPassword('chaos33', 'Chaos-33-password!');
    await service.acceptPassword('chaos34', 'Chaos-34-password!');
    assert.deepEqual(await service.deliverOnce(), { delivered: 1, waiting: 0, failed: 1 });
    assert.equal(nextAttemptIn(a.anchor), 600_000, 'a waits as the cloud asked');
    // The next poll, a second later: a still waits (on the old code b's late success ended the
    // outage and brought a forward, 599 s early, with a second 6112 for the same outage).
    clock += 1000;
    sent.length = 0;
    assert.deepEqual(await service.deliverOnce(), { delivered: 0, waiting: 0, failed: 0 });
    assert.deepEqual(sent, []);
    assert.equal(eventIds(env.db).filter((id) => id === 6112).length, 1);
    await service.stop();
  });

  it('a service started again (leader again in HA) brings the parked changes forward at once, as a new process does', async () => {
    const a = addUser(env.db, { sam: 'chaos35' });
    await createCloudUser(cloud, a);
    let client = dead;
    const service = makePipeline(env, () => client, { ...PRODUCTION, now });
    clock += 60_000;
    await service.acceptPassword('chaos35', 'Chaos-35-password!');
    assert.deepEqual(await service.deliverOnce(), { delivered: 0, waiting: 0, failed: 1 });
    assert.ok(nextAttemptIn(a.anchor)! > 1);
    // Its first term ends in the outage (another node leads meanwhile, the cloud comes back);
    // started again, its loop's first pass delivers what was parked, without waiting for the backoff.
    service.start();
    await service.stop();
    client = live;
    clock += 1;
    service.start();
    await until('the parked change delivered', () => service.outbox().depth === 0, 10_000, 20);
    assert.ok(await signIn(cloud, a.upn, 'Chaos-35-password!'));
    await service.stop();
  });

  it('a change waiting for another reason (its user not exported yet) keeps its backoff', async () => {
    const c = addUser(env.db, { sam: 'chaos32' });
    // Not in the cloud: TargetNotExported keeps its backoff (the export brings it forward, not an answer).
    const service = makePipeline(env, () => live, { ...PRODUCTION, now });
    clock += 60_000;
    await service.acceptPassword('chaos32', 'Chaos-32-password!');
    assert.deepEqual(await service.deliverOnce(), { delivered: 0, waiting: 1, failed: 0 });
    const wait = nextAttemptIn(c.anchor)!;
    clock += 1;
    const next = makePipeline(env, () => live, { ...PRODUCTION, now });
    assert.deepEqual(await next.deliverOnce(), { delivered: 0, waiting: 0, failed: 0 }, 'TargetNotExported waits for its backoff');
    assert.equal(nextAttemptIn(c.anchor), wait - 1);
    for (const p of [service, next]) await p.stop();
  });
});
