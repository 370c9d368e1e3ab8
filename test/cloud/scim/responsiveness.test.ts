/**
 * No event-loop monopoly (issue 9, defect 3): while a heavy SCIM request is being worked on, the
 * real cloud directory still answers /healthz. Asserted by order of completion, not by time: the
 * health check sent after the heavy request started must be answered before it finishes. Before
 * the fix a Bulk ran in one synchronous stretch, so the health check always came back last.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { fetchToken } from '../../../src/cloud/admin-api-client.js';
import { startTestCloud, type TestCloud } from '../../helpers/cloud.js';
import { BULK, PATCH_OP, user } from './helpers.js';

let cloud: TestCloud;
let token: string;
before(async () => {
  cloud = await startTestCloud();
  token = await fetchToken(cloud.url, { grant_type: 'password', ...cloud.admin });
});
after(async () => {
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

/** Sends `heavy`, then health checks as soon as the server is working on it; the order they finish in. */
async function race(heavy: () => Promise<number>): Promise<string[]> {
  const order: string[] = [];
  const big = heavy().then((status) => {
    assert.equal(status, 200);
    order.push('heavy');
  });
  // Give the server the request first (it is read and parsed before the work starts).
  await new Promise((r) => setTimeout(r, 50));
  const health = (async () => {
    const res = await request(`${cloud.url}/healthz`);
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    order.push('healthz');
  })();
  await Promise.all([big, health]);
  return order;
}

describe('the cloud stays responsive during heavy SCIM requests', () => {
  test('/healthz is answered while a Bulk of 1,000 creates runs', async () => {
    const ops = (round: number) =>
      Array.from({ length: 1000 }, (_, i) => ({
        method: 'POST',
        path: '/Users',
        bulkId: `r${i}`,
        data: user(`r${round}-${i}@example.com`, { externalId: `r${round}-${i}`, displayName: `R ${i}` }),
      }));
    // Several rounds: one lucky ordering proves nothing.
    for (let round = 0; round < 3; round++) {
      const order = await race(() => scim('POST', '/Bulk', { schemas: [BULK], Operations: ops(round) }));
      assert.deepEqual(order, ['healthz', 'heavy'], `round ${round}`);
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
