/**
 * The password pipeline against a real cloud directory over HTTP (createCloudServer on loopback,
 * cloud.db and idsync.db on disk): PCN intake to sign-in, batches, TargetNotExported, a refused
 * cloud credential, the background loop, resync, handlers, and secrets never showing up.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CloudClient } from '../../src/connectors/cloud/client.js';
import { isIdsyncError } from '../../src/core/errors.js';
import { handleAgentBatch, handlePasswordChangeNotification } from '../../src/passwords/handlers.js';
import { ntHash, orgIdHash } from '../../src/passwords/hash.js';
import type { PasswordPipeline } from '../../src/passwords/pipeline.js';
import { deliveryLatencies } from '../../src/passwords/status.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { startSlowProxy } from '../helpers/slow-proxy.js';
import { addUser, cloudClient, createCloudUser, eventIds, makeEnv, makePipeline, readableState, signIn, type Env } from './sources/fixtures.js';

async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(20);
  }
}

describe('password pipeline (real cloud directory)', () => {
  let cloud: TestCloud;
  let env: Env;
  let client: CloudClient;
  let pipeline: PasswordPipeline;
  const secrets: string[] = [];

  before(async () => {
    cloud = await startTestCloud();
    env = makeEnv();
    env.credentials.set('cloud', cloud.syncSecret);
    client = cloudClient(cloud, env.credentials);
    pipeline = makePipeline(env, () => client);
  });
  after(async () => {
    await pipeline.stop();
    await client.close();
    await cloud.close();
    // Nothing readable by admins ever held a password, an NT hash or an OrgId hash.
    const state = readableState(env.db);
    for (const s of secrets) assert.ok(!state.includes(s), 'a secret leaked into events/status/outbox');
    assert.ok(!state.includes('v1;PPH1'));
    env.db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    const file = readFileSync(env.dbFile).toString('latin1');
    for (const s of secrets) assert.ok(!file.includes(s), 'a secret is stored in idsync.db in the clear');
    env.cleanup();
  });

  it('PCN: a password change becomes a cloud sign-in, and only the hash travelled', async () => {
    const u = addUser(env.db, { sam: 'alice' });
    await createCloudUser(cloud, u);
    const password = 'Alice-New-Passw0rd!';
    const nt = (await ntHash(password)).toString('hex');
    secrets.push(password, nt, nt.toUpperCase());
    const res = await pipeline.acceptPassword('alice', password);
    assert.equal(res.anchor, u.anchor);
    assert.equal(pipeline.status('alice')[0]!.status, 'Queued');
    const counts = await pipeline.deliverOnce();
    assert.deepEqual(counts, { delivered: 1, waiting: 0, failed: 0 });
    assert.equal(pipeline.outbox().depth, 0);
    assert.ok(await signIn(cloud, u.upn, password));
    assert.ok(!(await signIn(cloud, u.upn, 'wrong-password')));
    // status by every name a person may type
    for (const name of ['alice', u.upn, u.dn, u.anchor, 'LAB\\alice']) {
      assert.equal(pipeline.status(name)[0]?.status, 'Success', name);
    }
    const ids = eventIds(env.db);
    for (const id of [650, 656, 657, 651]) assert.ok(ids.includes(id), `event ${id}`);
    const req = env.events.query({ ids: [656] }).at(-1)!;
    assert.equal(req.details.anchor, u.anchor);
    assert.equal(req.details.dn, u.dn);
  });

  it('a notification after the server clock was set back is still the newest: it reaches the cloud and signs in', async () => {
    // The pipeline's clock is pinned, then set back a minute (an NTP step) between two changes of
    // one user, delivered in between so the cloud holds the first one's date.
    let clock = Date.parse('2026-12-06T12:00:00Z');
    const stepped = makePipeline(env, () => client, { now: () => clock });
    const u = addUser(env.db, { sam: 'ntpstep' });
    await createCloudUser(cloud, u);
    secrets.push('Before-Step-P1!', 'After-Step-P2!');
    await stepped.acceptPassword('ntpstep', 'Before-Step-P1!');
    assert.deepEqual(await stepped.deliverOnce(), { delivered: 1, waiting: 0, failed: 0 });
    clock -= 60_000;
    await stepped.acceptPassword('ntpstep', 'After-Step-P2!');
    // On the old code the second change was dated a minute before the first and dropped as stale,
    // while the notification was answered as queued: nothing waited, and P1 kept signing in.
    assert.equal(stepped.outbox().depth, 1, 'the second change is queued');
    assert.deepEqual(await stepped.deliverOnce(), { delivered: 1, waiting: 0, failed: 0 });
    assert.ok(await signIn(cloud, u.upn, 'After-Step-P2!'), 'the newest password signs in');
    assert.ok(!(await signIn(cloud, u.upn, 'Before-Step-P1!')));
    // A third change in the same millisecond-stepped past is newer again.
    await stepped.acceptPassword('ntpstep', 'After-Step-P3!');
    secrets.push('After-Step-P3!');
    assert.deepEqual(await stepped.deliverOnce(), { delivered: 1, waiting: 0, failed: 0 });
    assert.ok(await signIn(cloud, u.upn, 'After-Step-P3!'));
    await stepped.stop();
  });

  it('an unknown user is an error that does not echo the password', async () => {
    const password = 'Nobody-Secret-42';
    secrets.push(password);
    await assert.rejects(pipeline.acceptPassword('nobody', password), (err) => {
      assert.ok(isIdsyncError(err));
      assert.equal(err.code as string, 'PASSWORD_USER_UNKNOWN');
      assert.ok(!JSON.stringify(err.toJSON()).includes(password) && !err.message.includes(password));
      return true;
    });
  });

  it('delivers in batches of at most 50 users', async () => {
    const hash = await orgIdHash('Batch-Passw0rd');
    const users = [];
    for (let i = 0; i < 120; i++) users.push(addUser(env.db, { sam: `batch${i}` }));
    await Promise.all(users.map((u) => createCloudUser(cloud, u)));
    const before = env.events.lastSeq();
    for (const u of users) await pipeline.acceptOrgIdHash(u.connector, u.anchor, hash);
    const counts = await pipeline.deliverOnce();
    assert.equal(counts.delivered, 120);
    const starts = env.events.query({ ids: [650], afterSeq: before });
    assert.ok(starts.length >= 3);
    for (const s of starts) assert.ok((s.details.count as number) <= 50 && (s.details.count as number) >= 1);
    assert.equal(starts.reduce((n, s) => n + (s.details.count as number), 0), 120);
    assert.ok(await signIn(cloud, users[119]!.upn, 'Batch-Passw0rd'));
  });

  it('TargetNotExported: the change waits until the user exists in the cloud, then goes through', async () => {
    const u = addUser(env.db, { sam: 'bob' });
    await pipeline.acceptPassword('bob', 'Bob-Passw0rd-1');
    secrets.push('Bob-Passw0rd-1');
    assert.deepEqual(await pipeline.deliverOnce(), { delivered: 0, waiting: 1, failed: 0 });
    assert.equal(pipeline.outbox().depth, 1);
    assert.equal(pipeline.status('bob')[0]!.status, 'TargetNotExported');
    await createCloudUser(cloud, u); // the next export creates the user
    await sleep(30); // past the (test-sized) backoff
    assert.deepEqual(await pipeline.deliverOnce(), { delivered: 1, waiting: 0, failed: 0 });
    assert.equal(pipeline.status('bob')[0]!.status, 'Success');
    assert.ok(await signIn(cloud, u.upn, 'Bob-Passw0rd-1'));
  });

  it('status history: "Queued" costs no row at intake, and shows from the outbox and then from the outcome', async () => {
    const u = addUser(env.db, { sam: 'hilda' });
    await createCloudUser(cloud, u);
    secrets.push('Hilda-Passw0rd-1');
    const rows = (): { status: string; queued_at: string | null }[] => env.db.prepare('SELECT status, queued_at FROM phs_status WHERE anchor = ? ORDER BY id').all(u.anchor) as { status: string; queued_at: string | null }[];
    await pipeline.acceptPassword('hilda', 'Hilda-Passw0rd-1');
    assert.deepEqual(rows(), [], 'the notification path writes no status row');
    const queuedAt = env.db.prepare('SELECT queued_at FROM phs_users WHERE anchor = ? AND next_attempt_at IS NOT NULL').pluck().get(u.anchor) as string;
    assert.deepEqual(pipeline.status('hilda'), [{ anchor: u.anchor, connector: u.connector, status: 'Queued', reason: null, source: 'pcn', at: queuedAt }]);
    const since = new Date(Date.now() - 1000).toISOString();
    assert.deepEqual(await pipeline.deliverOnce(), { delivered: 1, waiting: 0, failed: 0 });
    assert.deepEqual(rows(), [{ status: 'Success', queued_at: queuedAt }], 'the outcome carries when its change was queued');
    const history = pipeline.status('hilda');
    assert.deepEqual(history.map((r) => [r.status, r.source]), [['Success', 'pcn'], ['Queued', 'pcn']]);
    assert.equal(history[1]!.at, queuedAt);
    // The console's delivery latency reads the queued time from the outcome.
    const latency = deliveryLatencies(env.db, since).find((l) => l.at === history[0]!.at);
    assert.ok(latency, 'the delivery has a latency');
    assert.ok(Math.abs(latency.seconds - (Date.parse(history[0]!.at) - Date.parse(queuedAt)) / 1000) < 0.002, String(latency.seconds));
  });

  it('status history: the same outcome of two different changes is recorded for each, a retry of one change is not', async () => {
    const u = addUser(env.db, { sam: 'ivan' }); // not in the cloud: TargetNotExported
    secrets.push('Ivan-Passw0rd-1', 'Ivan-Passw0rd-2');
    await pipeline.acceptPassword('ivan', 'Ivan-Passw0rd-1');
    assert.deepEqual(await pipeline.deliverOnce(), { delivered: 0, waiting: 1, failed: 0 });
    await sleep(30); // past the (test-sized) backoff: the same change again
    assert.deepEqual(await pipeline.deliverOnce(), { delivered: 0, waiting: 1, failed: 0 });
    assert.deepEqual(pipeline.status('ivan').map((r) => r.status), ['TargetNotExported', 'Queued'], 'a retry of the same change adds nothing');
    await sleep(5);
    await pipeline.acceptPassword('ivan', 'Ivan-Passw0rd-2');
    assert.deepEqual(await pipeline.deliverOnce(), { delivered: 0, waiting: 1, failed: 0 });
    assert.deepEqual(pipeline.status('ivan').map((r) => r.status), ['TargetNotExported', 'Queued', 'TargetNotExported', 'Queued']);
    await createCloudUser(cloud, u);
    await sleep(30);
    assert.deepEqual(await pipeline.deliverOnce(), { delivered: 1, waiting: 0, failed: 0 });
    assert.deepEqual(pipeline.status('ivan').map((r) => r.status), ['Success', 'TargetNotExported', 'Queued', 'TargetNotExported', 'Queued']);
  });

  it('a refused cloud credential: events 115, 0 and 655, items stay queued, a fixed credential delivers them without a restart', async () => {
    const u = addUser(env.db, { sam: 'carol' });
    await createCloudUser(cloud, u);
    env.credentials.set('cloud', 'not-the-secret');
    const before = env.events.lastSeq();
    await pipeline.acceptPassword('carol', 'Carol-Passw0rd-1');
    secrets.push('Carol-Passw0rd-1');
    const counts = await pipeline.deliverOnce();
    assert.equal(counts.failed, 1);
    assert.equal(pipeline.outbox().depth, 1);
    const ids = env.events.query({ afterSeq: before }).map((e) => e.id);
    for (const id of [115, 0, 655, 652]) assert.ok(ids.includes(id), `event ${id} in ${ids.join(',')}`);
    const denied = env.events.query({ ids: [115], afterSeq: before })[0]!;
    assert.match(denied.resolution, /idsync credentials set cloud/);
    assert.equal(pipeline.status('carol')[0]!.status, 'Error');
    assert.match(pipeline.status('carol')[0]!.reason!, /CLOUD_AUTH_FAILED/);
    // the background loop keeps retrying; the administrator fixes the credential
    pipeline.start();
    await sleep(50);
    assert.equal(pipeline.outbox().depth, 1);
    env.credentials.set('cloud', cloud.syncSecret);
    await until(() => pipeline.outbox().depth === 0);
    await pipeline.stop();
    assert.equal(pipeline.status('carol')[0]!.status, 'Success');
    assert.ok(await signIn(cloud, u.upn, 'Carol-Passw0rd-1'));
  });

  it('the loop delivers as soon as a change is accepted (no waiting for the poll)', async () => {
    const u = addUser(env.db, { sam: 'dave' });
    await createCloudUser(cloud, u);
    const fast = makePipeline(env, () => client, { pollMs: 60_000, heartbeatMs: 3_600_000 });
    fast.start();
    try {
      await sleep(20);
      const t0 = Date.now();
      await fast.acceptPassword('dave', 'Dave-Passw0rd-1');
      secrets.push('Dave-Passw0rd-1');
      await until(() => fast.outbox().depth === 0, 5000);
      const ms = Date.now() - t0;
      assert.ok(ms < 2000, `took ${ms} ms`);
      assert.ok(await signIn(cloud, u.upn, 'Dave-Passw0rd-1'));
    } finally {
      await fast.stop();
    }
  });

  it('a slow batch does not hold the others back: a change queued meanwhile is delivered while it is still in flight', async () => {
    const slowUser = addUser(env.db, { sam: 'slowpoke' });
    const quickUser = addUser(env.db, { sam: 'quick' });
    await createCloudUser(cloud, slowUser);
    await createCloudUser(cloud, quickUser);
    // A proxy holds the first batch until released: the one way to keep a batch in flight on demand.
    const proxy = await startSlowProxy(cloud.url);
    const slowClient = cloudClient(cloud, env.credentials, proxy.url);
    const p = makePipeline(env, () => slowClient, { pollMs: 50, heartbeatMs: 3_600_000, concurrency: 2 });
    const release = proxy.holdNext();
    p.start();
    try {
      await p.acceptPassword('slowpoke', 'Slow-Passw0rd-1');
      await until(() => proxy.inFlight === 1, 5000);
      await p.acceptPassword('quick', 'Quick-Passw0rd-1');
      secrets.push('Slow-Passw0rd-1', 'Quick-Passw0rd-1');
      await until(() => p.status('quick')[0]?.status === 'Success', 5000);
      assert.equal(proxy.inFlight, 1, 'the first batch is still held');
      assert.ok(await signIn(cloud, quickUser.upn, 'Quick-Passw0rd-1'));
      release();
      await until(() => p.status('slowpoke')[0]?.status === 'Success', 5000);
      assert.ok(await signIn(cloud, slowUser.upn, 'Slow-Passw0rd-1'));
    } finally {
      release();
      await p.stop();
      await slowClient.close();
      await proxy.close();
    }
  });

  it("a cycle's delivery on the service's pipeline ends only once what the loop had in flight is answered", async () => {
    // In `idsync serve` a cycle shares the service's pipeline: its end-of-cycle delivery skips a user
    // the loop already took, and must still not end before that user's password is answered (the
    // cycle's end is when an administrator, or a test, expects the sign-in to work).
    const u = addUser(env.db, { sam: 'loopheld' });
    await createCloudUser(cloud, u);
    const proxy = await startSlowProxy(cloud.url);
    const slowClient = cloudClient(cloud, env.credentials, proxy.url);
    const p = makePipeline(env, () => slowClient, { pollMs: 50, heartbeatMs: 3_600_000 });
    const release = proxy.holdNext();
    p.start();
    try {
      await p.acceptPassword('loopheld', 'Loop-Held-Passw0rd-1');
      secrets.push('Loop-Held-Passw0rd-1');
      await until(() => proxy.inFlight === 1, 5000); // the loop's batch is held at the cloud's door
      let ended = false;
      const cycleDelivery = p.deliverSettled().then((counts) => {
        ended = true;
        return counts;
      });
      await sleep(300);
      assert.equal(ended, false, "the cycle's delivery waits for the loop's batch");
      release();
      assert.deepEqual(await cycleDelivery, { delivered: 0, waiting: 0, failed: 0 }, 'the user was the loop\'s to deliver');
      assert.equal(p.status('loopheld')[0]?.status, 'Success', 'answered when the cycle ends');
      assert.ok(await signIn(cloud, u.upn, 'Loop-Held-Passw0rd-1'));
    } finally {
      release();
      await p.stop();
      await slowClient.close();
      await proxy.close();
    }
  });

  it('sends a heartbeat (653, 654) when idle, and 655 when the ping is refused', async () => {
    const idle = makePipeline(env, () => client, { pollMs: 20, heartbeatMs: 50 });
    const before = env.events.lastSeq();
    idle.start();
    await until(() => env.events.query({ ids: [654], afterSeq: before }).length > 0);
    await idle.stop();
    assert.ok(env.events.query({ ids: [653], afterSeq: before }).length > 0);
    env.credentials.set('cloud', 'not-the-secret');
    const mid = env.events.lastSeq();
    assert.equal(await idle.ping(), false);
    const ids = env.events.query({ afterSeq: mid }).map((e) => e.id);
    assert.ok(ids.includes(655) && ids.includes(115) && ids.includes(0));
    env.credentials.set('cloud', cloud.syncSecret);
    assert.equal(await idle.ping(), true);
  });

  it('resync re-queues the last known hash (one user or all)', async () => {
    assert.equal(await pipeline.resync({ user: 'alice' }), 1);
    assert.equal(pipeline.status('alice')[0]!.status, 'Queued');
    assert.deepEqual(await pipeline.deliverOnce(), { delivered: 1, waiting: 0, failed: 0 });
    assert.ok(await signIn(cloud, 'alice@lab.test', 'Alice-New-Passw0rd!'));
    const all = await pipeline.resync({ all: true });
    assert.ok(all >= 124, String(all));
    const c = await pipeline.deliverOnce();
    assert.equal(c.delivered, all);
    await assert.rejects(pipeline.resync({ user: 'nobody' }), (e) => isIdsyncError(e) && (e.code as string) === 'PASSWORD_USER_UNKNOWN');
  });

  it('PCN handler: 202 when queued; errors are event 6900 with the reason, never the password', async () => {
    const u = addUser(env.db, { sam: 'erin' });
    await createCloudUser(cloud, u);
    const ok = await handlePasswordChangeNotification(pipeline, { user: 'erin@lab.test', password: 'Erin-Passw0rd-1' });
    secrets.push('Erin-Passw0rd-1');
    assert.equal(ok.statusCode, 202);
    assert.deepEqual(ok.body, { status: 'Queued', anchor: u.anchor });
    const before = env.events.lastSeq();
    const unknown = await handlePasswordChangeNotification(pipeline, { user: 'ghost', password: 'Ghost-Secret-1' });
    secrets.push('Ghost-Secret-1');
    assert.equal(unknown.statusCode, 404);
    assert.equal((unknown.body.error as { code: string }).code, 'PASSWORD_USER_UNKNOWN');
    assert.ok(!JSON.stringify(unknown.body).includes('Ghost-Secret-1'));
    const bad = await handlePasswordChangeNotification(pipeline, { user: 'erin' });
    assert.equal(bad.statusCode, 400);
    const tooLong = await handlePasswordChangeNotification(pipeline, { user: 'erin', password: 'x'.repeat(300) });
    assert.equal(tooLong.statusCode, 400);
    const pcn = env.events.query({ ids: [6900], afterSeq: before });
    assert.equal(pcn.length, 3);
    assert.equal(pcn[0]!.details.code, 'PASSWORD_USER_UNKNOWN');
    await pipeline.deliverOnce();
    assert.ok(await signIn(cloud, u.upn, 'Erin-Passw0rd-1'));
  });

  it('agent batch handler: queues { anchor, orgIdHash, changedAt }; rejects a malformed batch whole', async () => {
    const u = addUser(env.db, { sam: 'frank' });
    await createCloudUser(cloud, u);
    const hash = await orgIdHash('Frank-Passw0rd-1');
    secrets.push('Frank-Passw0rd-1');
    const bad = await handleAgentBatch(pipeline, { items: [{ anchor: u.anchor, orgIdHash: hash }, { anchor: 'x', orgIdHash: 'nope' }] });
    assert.equal(bad.statusCode, 400);
    assert.equal(pipeline.outbox().depth, 0);
    assert.equal((await handleAgentBatch(pipeline, { items: [] })).statusCode, 400);
    const ok = await handleAgentBatch(pipeline, { items: [{ anchor: u.anchor, orgIdHash: hash, changedAt: '2026-05-01T10:00:00Z' }] });
    assert.equal(ok.statusCode, 200);
    assert.deepEqual(ok.body, { accepted: 1 });
    // an older change arriving late does not replace the newer one
    const older = await orgIdHash('Frank-Old-Passw0rd');
    secrets.push('Frank-Old-Passw0rd');
    await handleAgentBatch(pipeline, { items: [{ anchor: u.anchor, orgIdHash: older, changedAt: '2026-04-01T10:00:00Z' }] });
    await pipeline.deliverOnce();
    assert.ok(await signIn(cloud, u.upn, 'Frank-Passw0rd-1'));
    assert.ok(!(await signIn(cloud, u.upn, 'Frank-Old-Passw0rd')));
  });
});
