/**
 * The portal's sync status on the cloud's clock: a sync client that took a token is OK for 3 hours,
 * then warned about; one that never did is warned about at once. Real cloud server over HTTP, with
 * its clock (the `now` option) moved forward instead of waiting.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createSyncClient, fetchToken } from '../../../src/cloud/admin-api-client.js';
import { SYNC_SILENCE_WARNING_MS } from '../../../src/cloud/portal/plugin.js';
import { createCloudServer, type CloudServer } from '../../../src/cloud/server.js';

const ADMIN = { username: 'admin', password: 'Portal-admin-pass-1!' };

describe('portal sync status', () => {
  let t = Date.now();
  let server: CloudServer;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'idsync-portal-sync-'));
    server = await createCloudServer({ dataDir: dir, adminUser: ADMIN.username, adminPassword: ADMIN.password, logger: false, secretHashParams: { logN: 10, r: 8, p: 1 }, now: () => t });
    const secret = await createSyncClient(server.url, ADMIN, 'sync-a');
    await createSyncClient(server.url, ADMIN, 'sync-never');
    await fetchToken(server.url, { grant_type: 'client_credentials', client_id: 'sync-a', client_secret: secret } as never);
  });
  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Signs in (sessions end after 30 idle minutes of the same clock) and reads the status. */
  const status = async () => {
    const si = await request(`${server.url}/portal/api/signin`, { method: 'POST', headers: { 'content-type': 'application/json', origin: server.url }, body: JSON.stringify(ADMIN) });
    await si.body.dump();
    assert.equal(si.statusCode, 200);
    const cookie = String(si.headers['set-cookie']).split(';')[0]!;
    const res = await request(`${server.url}/portal/api/sync-status`, { headers: { cookie } });
    const body = (await res.body.json()) as { accounts: { name: string; warning: boolean; silentHours: number | null; lastExport: string | null }[] };
    return new Map(body.accounts.map((a) => [a.name, a]));
  };

  test('OK just after contact and just under 3 hours; warned just over; never-synced warned at once', async () => {
    let s = await status();
    assert.equal(s.get('sync-a')?.warning, false);
    assert.ok(s.get('sync-a')?.lastExport);
    assert.equal(s.get('sync-never')?.warning, true);
    assert.equal(s.get('sync-never')?.silentHours, null);
    assert.equal(s.has('admin'), false, 'administrators are not sync accounts');

    t += SYNC_SILENCE_WARNING_MS - 60_000;
    s = await status();
    assert.equal(s.get('sync-a')?.warning, false, 'under 3 h');

    t += 120_000;
    s = await status();
    assert.equal(s.get('sync-a')?.warning, true, 'over 3 h');
    assert.equal(s.get('sync-a')?.silentHours, 3);
  });
});
