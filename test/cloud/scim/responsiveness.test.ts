/**
 * No event-loop monopoly (issue 9, defect 3): while a heavy SCIM request is being worked on, the
 * real cloud directory still answers /healthz. Asserted by order of events, not by time: a health
 * check sent while the Bulk is seen half done must be answered before it finishes. Before the fix a
 * Bulk ran in one synchronous stretch, so it was never seen half done.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, request } from 'undici';
import { fetchToken } from '../../../src/cloud/admin-api-client.js';
import { startTestCloud, type TestCloud } from '../../helpers/cloud.js';
import { BULK, PATCH_OP, user } from './helpers.js';

let cloud: TestCloud;
let token: string;
let healthClient: Client;
before(async () => {
  cloud = await startTestCloud();
  healthClient = new Client(cloud.url);
  token = await fetchToken(cloud.url, { grant_type: 'password', ...cloud.admin });
});
after(async () => {
  await healthClient.close();
  await cloud.close();
});

async function scim(method: 'POST' | 'PATCH', p: string, body: unknown): Promise<number> {
  const res = await request(`${cloud.url}/scim/v2${p}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' },
    body: JSON.stringify(body),
  });
  await res.body.dump();
  return res.statusCode;
}

describe('the cloud stays responsive during heavy SCIM requests', () => {
  // It reads cloud.db while the Bulk runs: SQLite's case (on PostgreSQL every operation awaits the database anyway).
  test('/healthz is answered while a Bulk of 1,000 creates runs', { skip: process.env.IDSYNC_CLOUD_TEST_STORE === 'postgres' && 'reads cloud.db directly (SQLite)' }, async () => {
    const ops = (round: number) =>
      Array.from({ length: 1000 }, (_, i) => ({
        method: 'POST',
        path: '/Users',
        bulkId: `r${round}-${i}`,
        data: user(`r${round}-${i}@example.com`, {
          externalId: `r${round}-${i}`,
          displayName: `R ${i}`,
          // Heavy operations, so the Bulk outlasts a health check's few turns of the event loop by far.
          emails: Array.from({ length: 100 }, (_, j) => ({ value: `r${round}-${i}-${j}@example.com`, type: 'work' })),
        }),
      }));
    const created = cloud.server.db!.prepare('SELECT count(*) AS n FROM scim_users WHERE external_id LIKE ?');
    // A kept-alive connection of its own, opened before: accepting a new one is not what this is about.
    const warm = await healthClient.request({ method: 'GET', path: '/healthz' });
    await warm.body.dump();
    // Several rounds: one lucky ordering proves nothing.
    for (let round = 0; round < 3; round++) {
      let done = false;
      const big = scim('POST', '/Bulk', { schemas: [BULK], Operations: ops(round) }).then((status) => {
        assert.equal(status, 200);
        done = true;
      });
      // The cloud runs in this process: a turn of the event loop that sees the Bulk half done proves
      // the Bulk let go of the loop mid-way (before the fix it ran in one synchronous stretch, so
      // no turn could ever see 0 < n < 1000). A health check sent at that moment must be answered
      // before the Bulk ends. Ordered by events, not by time.
      let midway = false;
      while (!done && !midway) {
        await new Promise((r) => setImmediate(r));
        const { n } = created.get(`r${round}-%`) as { n: number };
        midway = n > 0 && n < 1000;
      }
      assert.ok(midway, `round ${round}: the Bulk never let go of the event loop mid-way`);
      const res = await healthClient.request({ method: 'GET', path: '/healthz' });
      await res.body.dump();
      assert.equal(res.statusCode, 200);
      assert.equal(done, false, `round ${round}: /healthz was answered only after the Bulk`);
      await big;
    }
  });

  test('a PATCH of 10,000 operations is applied (linear), and health checks wait for at most that one request', async () => {
    const created = await cloud.scim('POST', '/Users', user('patch-target'));
    const ops = Array.from({ length: 10_000 }, (_, j) => ({ op: 'add', path: 'emails', value: [{ value: `p${j % 1000}@example.com` }] }));
    assert.equal(await scim('PATCH', `/Users/${created.body.id}`, { schemas: [PATCH_OP], Operations: ops }), 200);
    const after = await cloud.scim('GET', `/Users/${created.body.id}`);
    assert.equal(after.body.emails.length, 1000);
  });
});
