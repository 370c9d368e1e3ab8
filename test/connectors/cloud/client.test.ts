/**
 * The cloud client against a real cloud directory (default smart lockout on) over HTTP, with the
 * credential store on disk:
 *  - a refused secret is presented ONCE: concurrent callers share the attempt, another client on
 *    the same store and a "restart" (the database reopened) report the recorded refusal without
 *    signing in; a changed secret is tried at once; the unchanged one is re-probed once per
 *    `refusedCredentialRecheck`, so a fix on the cloud's side recovers too (audit records counted);
 *  - an unavailable cloud (503, through a loopback proxy: a healthy cloud cannot be made to answer
 *    503 otherwise) is retried honouring Retry-After, beyond the budget handed back with the wait,
 *    and never recorded as a refusal;
 *  - the locked answer documented for the cloud's smart lockout (HTTP 400 invalid_grant, error code
 *    50053, lockout.remaining_seconds, Retry-After — produced by the same proxy, as the cloud side
 *    is built on another branch) is said as a lock, not as a wrong password.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { fetchToken } from '../../../src/cloud/admin-api-client.js';
import type { CloudConfig } from '../../../src/config/schema.js';
import { classifyFailure, CloudClient, retryAfterOf } from '../../../src/connectors/cloud/client.js';
import { parseRetryAfter, withRetries } from '../../../src/connectors/cloud/retry.js';
import { isIdsyncError, type IdsyncError } from '../../../src/core/errors.js';
import { generateKey } from '../../../src/credentials/key.js';
import { CredentialStore, credentialMigrations } from '../../../src/credentials/store.js';
import { openDatabase, type Database } from '../../../src/store/database.js';
import { startTestCloud, type TestCloud } from '../../helpers/cloud.js';
import { startFaultProxy, type FaultProxy } from '../../helpers/fault-proxy.js';

const ACCOUNT = 'sync-probe';

describe('cloud client: refused, locked and unavailable are told apart', () => {
  let cloud: TestCloud;
  let proxy: FaultProxy;
  let dir: string;
  const key = generateKey();
  const dbs: Database[] = [];
  const clients: CloudClient[] = [];

  /** A store on the same database file, as another process (or the same after a restart) opens it. */
  const openStore = (): CredentialStore => {
    const db = openDatabase(path.join(dir, 'idsync.db'), credentialMigrations);
    dbs.push(db);
    return new CredentialStore(db, key);
  };

  const cfg = (over: Partial<CloudConfig> = {}): CloudConfig => ({
    url: cloud.url,
    auth: { type: 'client_credentials', clientId: cloud.syncClientId },
    timeoutMs: 10_000,
    concurrency: 8,
    retries: 5,
    bulkSize: 200,
    refusedCredentialRecheck: '15m',
    ...over,
  });

  const client = (store: CredentialStore, over: Partial<CloudConfig> = {}, recheckMs?: number, extra: { sleep?: (ms: number) => Promise<void>; candidate?: boolean } = {}): CloudClient => {
    const c = new CloudClient(cfg(over), store.resolver('cloud'), { guard: store.guard('cloud', recheckMs), ...extra });
    clients.push(c);
    return c;
  };

  /** Failed token requests of a subject in the cloud's audit log. */
  const failures = (subject: string): number =>
    (cloud.server.db!.prepare("SELECT count(*) AS n FROM audit_log WHERE type = 'token' AND subject = ? AND result = 'failure'").get(subject) as { n: number }).n;

  const rejection = async (p: Promise<unknown>): Promise<IdsyncError> => {
    try {
      await p;
    } catch (err) {
      assert.ok(isIdsyncError(err), String(err));
      return err;
    }
    assert.fail('expected a failure');
  };

  before(async () => {
    cloud = await startTestCloud();
    proxy = await startFaultProxy(cloud.url);
    dir = mkdtempSync(path.join(tmpdir(), 'idsync-cloud-client-'));
    const adminToken = await fetchToken(cloud.url, { grant_type: 'password', ...cloud.admin });
    const res = await request(`${cloud.url}/admin/v1/accounts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
      body: JSON.stringify({ username: ACCOUNT, password: 'Probe-Right-Password-1', role: 'DirectorySynchronizationAccounts' }),
    });
    await res.body.dump();
    assert.equal(res.statusCode, 201);
  });

  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    for (const db of dbs) db.close();
    await proxy?.close();
    await cloud?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a refused secret is presented once: 40 concurrent calls, a second client and a restart make one failed sign-in', async () => {
    const store = openStore();
    store.set('cloud', 'Not-The-Client-Secret-1');
    const c1 = client(store);
    const errors = await Promise.all(Array.from({ length: 40 }, () => rejection(c1.scim('GET', '/ServiceProviderConfig'))));
    for (const e of errors) assert.equal(e.code, 'CLOUD_AUTH_FAILED');
    assert.equal(classifyFailure(errors[0]), 'refused');
    assert.match(errors[0]!.message, /user name or password is incorrect \(invalid_client\)/);
    assert.equal(failures(cloud.syncClientId), 1, 'one failed sign-in for 40 calls');

    // Another component (doctor, credentials test, the next cycle) and a restart: the store says it.
    const again = await rejection(c1.test());
    assert.equal(classifyFailure(again), 'refused-recorded');
    const restarted = openStore();
    const c2 = client(restarted);
    const recorded = await rejection(c2.test());
    assert.equal(classifyFailure(recorded), 'refused-recorded');
    assert.match(recorded.message, /does not present it again until it changes/);
    assert.match(recorded.hint ?? '', /idsync credentials set cloud/);
    assert.ok(restarted.refusal('cloud'), 'the refusal is recorded in the store');
    assert.equal(failures(cloud.syncClientId), 1, 'nothing presented the refused secret again');

    // A changed secret is tried at once, by every client, and clears the record.
    store.set('cloud', cloud.syncSecret);
    await c2.test();
    await c1.test();
    assert.equal(restarted.refusal('cloud'), undefined);
    assert.equal(failures(cloud.syncClientId), 1);
  });

  test('the unchanged secret is re-probed once per recheck interval, by one client, so a fix on the cloud side recovers', async () => {
    const store = openStore();
    store.set('cloud', 'Probe-Old-Password-0');
    const recheckMs = 1500;
    const a = client(store, { auth: { type: 'password', username: ACCOUNT } }, recheckMs);
    const b = client(openStore(), { auth: { type: 'password', username: ACCOUNT } }, recheckMs);
    assert.equal(classifyFailure(await rejection(a.test())), 'refused');
    assert.equal(classifyFailure(await rejection(b.test())), 'refused-recorded');
    assert.equal(failures(ACCOUNT), 1);

    await sleep(recheckMs + 200);
    const both = await Promise.all([rejection(a.test()), rejection(b.test())]);
    assert.deepEqual(both.map(classifyFailure).sort(), ['refused', 'refused-recorded'], 'exactly one client re-probed');
    assert.equal(failures(ACCOUNT), 2);

    // The administrator sets the old password back in the cloud: the next probe recovers.
    const adminToken = await fetchToken(cloud.url, { grant_type: 'password', ...cloud.admin });
    const res = await request(`${cloud.url}/admin/v1/accounts/${ACCOUNT}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
      body: JSON.stringify({ password: 'Probe-Old-Password-0' }),
    });
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    assert.equal(classifyFailure(await rejection(a.test())), 'refused-recorded', 'not before the recheck time');
    await sleep(recheckMs + 200);
    await a.test();
    await b.test();
    assert.equal(store.refusal('cloud'), undefined);
    assert.equal(failures(ACCOUNT), 2);
  });

  test('an unavailable cloud: Retry-After is honoured, a longer wait is handed back, and nothing is recorded as refused', async () => {
    const store = openStore();
    store.set('cloud', cloud.syncSecret);
    const waits: number[] = [];
    const c = client(store, { url: proxy.url, retries: 3 }, undefined, {
      sleep: async (ms) => {
        waits.push(ms);
        await sleep(ms);
      },
    });
    proxy.down = { retryAfter: 1 };
    const e = await rejection(c.test());
    assert.equal(e.code, 'CLOUD_UNAVAILABLE');
    assert.equal(classifyFailure(e), 'unavailable');
    assert.deepEqual(waits, [1000, 1000, 1000], 'waited as long as the cloud asked, between each of the 4 attempts');
    assert.doesNotMatch(`${e.message} ${e.hint}`, /credentials set|incorrect/);

    // A wait beyond the call's budget is not slept through: it is handed to the caller.
    waits.length = 0;
    proxy.down = { retryAfter: 120 };
    const before503 = proxy.refused503;
    const long = await rejection(c.test());
    assert.equal(classifyFailure(long), 'unavailable');
    assert.equal(retryAfterOf(long), 120_000);
    assert.deepEqual(waits, []);
    assert.equal(proxy.refused503 - before503, 1, 'one attempt');

    assert.equal(store.refusal('cloud'), undefined, 'an unavailable cloud refused nothing');
    proxy.down = undefined;
    await c.test();
  });

  test('the locked answer is said as a lock ("the new password was not checked"), and that password is not presented before it ends', async () => {
    const store = openStore();
    store.set('cloud', 'Probe-Candidate-2');
    const c = client(store, { url: proxy.url, auth: { type: 'password', username: ACCOUNT } }, undefined, { candidate: true });
    proxy.tokenAnswer = {
      status: 400,
      body: { error: 'invalid_grant', error_description: 'the account is locked', error_codes: [50053], lockout: { remaining_seconds: 42 } },
      headers: { 'retry-after': '42' },
    };
    const tokensBefore = proxy.seen.get('/oauth2/token') ?? 0;
    const e = await rejection(c.test());
    assert.equal(classifyFailure(e), 'locked');
    assert.match(e.message, /the cloud account is locked for 42 s; the new password was not checked/);
    assert.doesNotMatch(`${e.message} ${e.hint}`, /incorrect/);
    const again = await rejection(c.test());
    assert.equal(classifyFailure(again), 'locked');
    assert.equal((proxy.seen.get('/oauth2/token') ?? 0) - tokensBefore, 1, 'not presented again during the lock');

    // Without lockout.remaining_seconds, the code and Retry-After still say it; without either, a refusal.
    store.set('cloud', 'Probe-Candidate-3');
    proxy.tokenAnswer = { status: 400, body: { error: 'invalid_grant', error_codes: [50053] }, headers: { 'retry-after': '30' } };
    assert.match((await rejection(c.test())).message, /locked for 30 s/);
    store.set('cloud', 'Probe-Candidate-4');
    proxy.tokenAnswer = { status: 400, body: { error: 'invalid_grant', error_description: 'the user name or password is incorrect' } };
    const plain = await rejection(c.test());
    assert.equal(classifyFailure(plain), 'refused');
    assert.match(plain.message, /incorrect \(invalid_grant\)/);
    proxy.tokenAnswer = undefined;
  });

  test('Retry-After is read as seconds or an HTTP date; the one retry helper stops at the budget', async () => {
    const now = Date.parse('2026-12-06T04:00:00Z');
    assert.equal(parseRetryAfter('7', now), 7000);
    assert.equal(parseRetryAfter('Sun, 06 Dec 2026 04:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Sun, 06 Dec 2026 03:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
    let calls = 0;
    const slept: number[] = [];
    const res = await withRetries(
      async () => {
        calls++;
        return { status: calls < 3 ? 429 : 200, retryAfterMs: 5 };
      },
      { retries: 5, budgetMs: 1000, sleep: async (ms) => void slept.push(ms) },
    );
    assert.equal(res.status, 200);
    assert.deepEqual(slept, [5, 5]);
  });
});
