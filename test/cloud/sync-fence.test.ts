/**
 * The cloud directory's fence for a sync service on several nodes (src/cloud/sync-fence/, docs/ha.md),
 * driven through the sync side's real CloudClient over HTTP: a write under a leader's fence carries
 * its token; once a higher token was seen, a lower one is refused (409, nothing written, counted and
 * audited) on SCIM and on the password hash endpoint alike, and the client reports LEASE_LOST; a
 * fence that this node itself knows is lost sends nothing. Requests without a token (one node) pass.
 * The fences are plain values here: what they stand for (the lease) is tested in test/service/ha.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CloudConfig } from '../../src/config/schema.js';
import { CloudClient } from '../../src/connectors/cloud/client.js';
import { IdsyncError, isIdsyncError } from '../../src/core/errors.js';
import { runFenced, type WriteFence } from '../../src/store/fence.js';
import { orgIdHash } from '../../src/passwords/hash.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';

const INSTALLATION = 'fence-test-installation';

function fence(token: number, held = () => true): WriteFence {
  return {
    token,
    holder: `node/${token}`,
    check: { sql: 'SELECT 1', params: [] },
    assertHeld: () => {
      if (!held()) throw new IdsyncError('LEASE_LOST', `token ${token} is no longer held`);
    },
  };
}

describe('cloud directory: the sync fence', () => {
  let cloud: TestCloud;
  let client: CloudClient;
  let plain: CloudClient;
  before(async () => {
    cloud = await startTestCloud();
    const cfg: CloudConfig = {
      url: cloud.url,
      auth: { type: 'client_credentials', clientId: cloud.syncClientId },
      timeoutMs: 10_000,
      concurrency: 4,
      retries: 2,
      bulkSize: 200,
      refusedCredentialRecheck: '15m',
    };
    client = new CloudClient(cfg, async () => cloud.syncSecret);
    client.installation = INSTALLATION;
    plain = new CloudClient(cfg, async () => cloud.syncSecret);
    plain.installation = INSTALLATION;
  });
  after(async () => {
    await client?.close();
    await plain?.close();
    await cloud?.close();
  });

  const fences = async (): Promise<{ installation: string; highest: number; refused: number; lastRefusedToken: number | null; raisedAt: string }[]> => {
    const r = await client.api<{ fences: { installation: string; highest: number; refused: number; lastRefusedToken: number | null; raisedAt: string }[] }>('GET', '/api/v1/syncFences');
    return r.body.fences.filter((f) => f.installation === INSTALLATION);
  };
  const user = (name: string) => ({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: name, externalId: `ext-${name}` });
  const lost = (err: unknown): boolean => isIdsyncError(err, 'LEASE_LOST');

  test('a lower token than one seen is refused on SCIM and password hashes; nothing is written', async () => {
    const r1 = await runFenced(fence(5), () => client.scim('POST', '/Users', user('fence.one')));
    assert.equal(r1.status, 201);
    assert.deepEqual((await fences()).map((f) => [f.highest, f.refused]), [[5, 0]]);

    // The old leader (token 4) resumes and tries to write.
    await assert.rejects(runFenced(fence(4), () => client.scim('POST', '/Users', user('fence.two'))), lost);
    const found = await cloud.scim('GET', `/Users?filter=${encodeURIComponent('userName eq "fence.two"')}`);
    assert.equal(found.body.totalResults, 0, 'the refused create wrote nothing');
    const hash = await orgIdHash('Fence-pass-1!');
    await assert.rejects(runFenced(fence(4), () => client.api('POST', '/api/v1/passwordHashes', { items: [{ externalId: 'ext-fence.one', hash }] })), lost);
    assert.equal(await cloud.holdsPassword('fence.one', 'Fence-pass-1!'), false, 'the refused hash was not stored');
    // A PATCH and a DELETE likewise.
    const id = (r1.body as { id: string }).id;
    await assert.rejects(runFenced(fence(4), () => client.scim('DELETE', `/Users/${id}`)), lost);
    assert.equal((await cloud.scim('GET', `/Users/${id}`)).status, 200);

    const [f] = await fences();
    assert.equal(f!.highest, 5);
    assert.equal(f!.refused, 3);
    assert.equal(f!.lastRefusedToken, 4);
    const audit = cloud.server.db
      ? (cloud.server.db.prepare("SELECT count(*) AS n FROM audit_log WHERE type = 'syncFence' AND reason = 'fenced_token_refused'").get() as { n: number }).n
      : -1;
    if (cloud.server.db) assert.equal(audit, 3, 'each refusal is audited');

    // The current leader and a newer one write; the fence moves up with the newer.
    assert.equal((await runFenced(fence(5), () => client.api('POST', '/api/v1/passwordHashes', { items: [{ externalId: 'ext-fence.one', hash }] }))).status, 200);
    assert.equal(await cloud.holdsPassword('fence.one', 'Fence-pass-1!'), true);
    const raised = await runFenced(fence(6), () => client.api('POST', '/api/v1/syncFence', {}));
    assert.equal(raised.status, 200);
    assert.equal((await fences())[0]!.highest, 6);
    await assert.rejects(runFenced(fence(5), () => client.scim('POST', '/Users', user('fence.three'))), lost);
  });

  test('a fence this node knows it lost sends nothing; requests without a token are not fenced', async () => {
    let held = true;
    const f = fence(7, () => held);
    assert.equal((await runFenced(f, () => client.scim('POST', '/Users', user('fence.four')))).status, 201);
    const before = (await fences())[0]!;
    held = false;
    await assert.rejects(runFenced(f, () => client.scim('POST', '/Users', user('fence.five'))), lost);
    const after = (await fences())[0]!;
    assert.equal(after.refused, before.refused, 'the cloud never saw the request');
    assert.equal((await cloud.scim('GET', `/Users?filter=${encodeURIComponent('userName eq "fence.five"')}`)).body.totalResults, 0);
    // Outside a fence (one node, or a standby's reads): no header, no check.
    assert.equal((await plain.scim('POST', '/Users', user('fence.six'))).status, 201);
  });

  test('a malformed token is refused as invalid, and raising the fence needs one', async () => {
    const bad = await plain.scim('POST', '/Users', user('fence.seven'), { 'x-idsync-fencing-token': '-3' });
    assert.equal(bad.status, 400);
    const none = await plain.api('POST', '/api/v1/syncFence', {});
    assert.equal(none.status, 400);
  });
});
