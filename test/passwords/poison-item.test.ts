/**
 * One user the cloud fails on (HTTP 500 to any request carrying that user's item) must not hold
 * back the others, pass after pass, nor be retried at every pass as if the cloud were down.
 *
 * Real parts: the cloud directory over HTTP, idsync.db on disk, the production batch size and
 * backoff. The fault is a small HTTP proxy in front of the real cloud that answers 500 to a
 * password batch naming one externalId: a cloud that fails on one user's item while it stores the
 * others cannot be produced otherwise (the real one has no such defect to trigger). Every other
 * request goes through to the real cloud unchanged.
 */
import { strict as assert } from 'node:assert';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { orgIdHash } from '../../src/passwords/hash.js';
import { DEFAULT_MAX_BACKOFF_MS } from '../../src/passwords/pipeline.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { addUser, cloudClient, createCloudUser, makeEnv, makePipeline, signIn, type Env, type TestUser } from './sources/fixtures.js';

const POISON = 'POISON-anchor';

describe('a user the cloud fails on does not hold back the others', () => {
  let cloud: TestCloud;
  let proxy: Server;
  let proxyUrl = '';
  let env: Env;
  /** Password batches the proxy saw, and how many carried the poisoned user. */
  const seen = { batches: 0, withPoison: 0 };
  /** While true, every password batch fails (the cloud failing every request). */
  let failAll = false;

  before(async () => {
    cloud = await startTestCloud();
    const target = new URL(cloud.url);
    proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (req.url === '/api/v1/passwordHashes') {
          seen.batches++;
          const poisoned = body.includes(POISON);
          if (poisoned) seen.withPoison++;
          if (poisoned || failAll) {
            res.writeHead(500, { 'content-type': 'application/json' });
            res.end('{"error":"server_error"}');
            return;
          }
        }
        const fwd = httpRequest({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        });
        fwd.end(body);
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const addr = proxy.address();
    proxyUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    env = makeEnv();
    env.credentials.set('cloud', cloud.syncSecret);
  });
  after(async () => {
    await new Promise((r) => proxy.close(r));
    await cloud.close();
    env.cleanup();
  });

  it('the others are delivered in the same pass; the poisoned user waits with its own backoff and is not brought forward when the cloud answers', async () => {
    const client = cloudClient(cloud, env.credentials, proxyUrl);
    // Production backoff and batch size (50); one delivery worker, so the order is the outbox's.
    const p = makePipeline(env, client, { baseBackoffMs: 1000, maxBackoffMs: DEFAULT_MAX_BACKOFF_MS, concurrency: 1 });
    try {
      const users: TestUser[] = [];
      for (let i = 0; i < 12; i++) users.push(addUser(env.db, { sam: `pz${i}`, ...(i === 5 ? { anchor: POISON } : {}) }));
      for (const u of users) await createCloudUser(cloud, u);
      for (const u of users) await p.acceptOrgIdHash('corp', u.anchor, await orgIdHash(`Pz-${u.sam}-1`));

      const first = await p.deliverOnce();
      assert.equal(first.delivered, 11, `the 11 others are delivered in the first pass: ${JSON.stringify(first)}`);
      for (const u of users) assert.equal(await signIn(cloud, u.upn, `Pz-${u.sam}-1`), u.anchor !== POISON, `${u.sam} signs in: ${u.anchor !== POISON}`);
      const row = () => env.db.prepare<[string], { attempts: number; next_attempt_at: number; last_error: string }>('SELECT attempts, next_attempt_at, last_error FROM phs_users WHERE anchor = ?').get(POISON)!;
      assert.equal(row().last_error, 'ServerErrorForUser');
      assert.ok(row().next_attempt_at > Date.now(), 'it waits');

      // More changes of other users, and passes in which the cloud answers: the poisoned change is
      // not brought forward (not an outage) and holds nobody back.
      const before = seen.withPoison;
      for (let round = 2; round <= 4; round++) {
        for (const u of users.slice(0, 3)) await p.acceptOrgIdHash('corp', u.anchor, await orgIdHash(`Pz-${u.sam}-${round}`));
        const r = await p.deliverOnce();
        assert.equal(r.delivered, 3, `round ${round}: ${JSON.stringify(r)}`);
      }
      assert.equal(seen.withPoison, before, 'the poisoned change waited out its backoff');
      for (const u of users.slice(0, 3)) assert.equal(await signIn(cloud, u.upn, `Pz-${u.sam}-4`), true);
      const status = await p.status(POISON);
      assert.match(JSON.stringify(status), /ServerErrorForUser/);
    } finally {
      await p.stop();
      await client.close();
    }
  });

  it('when the cloud fails every request, the batch fails as a whole after a few probes (an outage costs a few requests, not one per user)', async () => {
    const client = cloudClient(cloud, env.credentials, proxyUrl);
    const p = makePipeline(env, client, { baseBackoffMs: 1000, maxBackoffMs: DEFAULT_MAX_BACKOFF_MS, concurrency: 1 });
    try {
      const users: TestUser[] = [];
      for (let i = 0; i < 20; i++) users.push(addUser(env.db, { sam: `out${i}` }));
      for (const u of users) await createCloudUser(cloud, u);
      for (const u of users) await p.acceptOrgIdHash('corp', u.anchor, await orgIdHash(`Out-${u.sam}`));
      failAll = true;
      const b0 = seen.batches;
      const r = await p.deliverOnce();
      assert.equal(r.delivered, 0);
      assert.ok(seen.batches - b0 <= 4, `the batch and at most 3 probes: ${seen.batches - b0} requests`);
      const codes = env.db.prepare("SELECT DISTINCT last_error FROM phs_users WHERE next_attempt_at IS NOT NULL AND anchor <> ?").pluck().all(POISON);
      assert.deepEqual(codes, ['CLOUD_SERVER_ERROR'], 'parked as an outage, brought forward when the cloud answers again');
      // The cloud recovers; the next process (the next `idsync sync`) sends them at once.
      failAll = false;
      const next = makePipeline(env, client, { baseBackoffMs: 1000, maxBackoffMs: DEFAULT_MAX_BACKOFF_MS, concurrency: 1 });
      try {
        const after = await next.deliverOnce();
        assert.equal(after.delivered, 20, JSON.stringify(after));
      } finally {
        await next.stop();
      }
      for (const u of users) assert.equal(await signIn(cloud, u.upn, `Out-${u.sam}`), true);
    } finally {
      failAll = false;
      await p.stop();
      await client.close();
    }
  });
});
