/**
 * `idsync serve`'s SyncService end to end: an LDIF source, the engine's SQLite on disk, the real
 * cloud directory over HTTP, and the service's own HTTP endpoints.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- JSON bodies of the endpoints under test */
import assert from 'node:assert/strict';
import { readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { openContext, type EngineContext } from '../../src/engine/context.js';
import { EVENTS } from '../../src/events/catalog.js';
import { PCN_PATH } from '../../src/passwords/index.js';
import { SyncService } from '../../src/service/service.js';
import type { TestCloud } from '../helpers/cloud.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { portOpen, signIn } from '../helpers/processes.js';

const BASE = 'dc=example,dc=test';
const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

function ldif(n: number): string {
  const out = ['version: 1', ''];
  for (let i = 1; i <= n; i++) {
    out.push(`dn: uid=u${i},ou=eng,${BASE}`, 'objectClass: inetOrgPerson', `uid: u${i}`, `cn: User ${i}`, `sn: u${i}`, `mail: u${i}@example.test`, `entryUUID: ${uuid(i)}`, '');
  }
  return out.join('\n');
}

async function get(url: string): Promise<{ status: number; text: string; json: any }> {
  const res = await request(url);
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, text, json };
}

async function post(url: string, body: unknown, token?: string): Promise<{ status: number; json: any }> {
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: text ? JSON.parse(text) : undefined };
}

describe('SyncService', () => {
  let lab: EngineLab;
  let cloud: TestCloud;
  let dir: string;
  let ctx: EngineContext;
  let service: SyncService;
  let url: string;
  const logLines: string[] = [];
  const logStream = new Writable({
    write(chunk, _enc, cb) {
      logLines.push(String(chunk));
      cb();
    },
  });

  before(async () => {
    lab = await startEngineLab({ prefix: 'idsync-service-', connectors: [ldifConnector()], cloudConfig: { retries: 0 }, files: { 'source.ldif': ldif(5) } });
    ({ cloud, dir } = lab);
    ctx = lab.detachContext(); // the service closes it
    service = new SyncService(ctx, { port: 0, intervalMs: 3_600_000, logger: { level: 'debug', stream: logStream }, passwords: { pollMs: 100, baseBackoffMs: 100 } });
    ({ url } = await service.start());
  });

  after(async () => {
    await service?.stop(5000).catch(() => undefined);
    await lab?.close();
  });

  test('plain HTTP on a non-loopback address is refused', () => {
    assert.throws(() => new SyncService(ctx, { host: '0.0.0.0', logger: false }), (e: any) => e.code === 'CONFIG_INVALID');
  });

  test('starts and runs a cycle at start: the users appear in the cloud', async () => {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    await service.idle();
    const users = await cloud.all('Users');
    assert.equal(users.length, 5);
    assert.ok(users.some((u) => u.userName === 'u1@example.test'));
    assert.ok(ctx.events.latest(EVENTS.SERVICE_STARTED), 'event 6101 written');
  });

  test('/healthz answers 200', async () => {
    const r = await get(`${url}/healthz`);
    assert.equal(r.status, 200);
  });

  test('/status shows the last run as success and no secret', async () => {
    const r = await get(`${url}/status`);
    assert.equal(r.status, 200);
    assert.equal(r.json.running, true);
    assert.equal(r.json.pid, process.pid);
    assert.equal(r.json.cycle.last.status, 'success');
    assert.equal(typeof r.json.cycle.last.id, 'number');
    assert.equal(r.json.passwords.outboxDepth, 0);
    assert.equal(r.json.passwords.deliverable, 0, '/status answers from the status module, as doctor does');
    const cloudCred = r.json.credentials.find((c: any) => c.name === 'cloud');
    assert.equal(cloudCred.lastTestOk, true);
    assert.ok(!r.text.includes(cloud.syncSecret), 'the cloud secret is not in /status');
    for (const c of r.json.credentials) assert.deepEqual(Object.keys(c).sort(), ['changedAt', 'lastErrorCode', 'lastGoodUseAt', 'lastGoodUseRun', 'lastTestAt', 'lastTestOk', 'name', 'ok', 'okAt']);
    assert.deepEqual(r.json.degraded, []);
  });

  test('/readyz answers 200 after a successful cycle', async () => {
    const r = await get(`${url}/readyz`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
  });

  test('/metrics exposes the idsync metrics', async () => {
    const r = await get(`${url}/metrics`);
    assert.equal(r.status, 200);
    for (const name of [
      'idsync_sync_cycles_total',
      'idsync_sync_last_cycle_timestamp_seconds',
      'idsync_objects_exported_total',
      'idsync_password_outbox_depth',
      'idsync_password_outbox_oldest_age_seconds',
      'idsync_password_deliveries_total',
    ]) {
      assert.match(r.text, new RegExp(`^${name}`, 'm'), name);
    }
    assert.match(r.text, /^idsync_sync_cycles_total\{status="success"\} 1$/m);
    assert.match(r.text, /^idsync_objects_exported_total\{op="add"\} 5$/m);
  });

  test('a PCN without the agent token is refused with 401', async () => {
    ctx.credentials.set('agent', 'agent-tok-7f3a');
    const none = await post(`${url}${PCN_PATH}`, { user: 'u1', password: 'New-Pass-1!' });
    assert.equal(none.status, 401);
    const wrong = await post(`${url}${PCN_PATH}`, { user: 'u1', password: 'New-Pass-1!' }, 'not-the-token');
    assert.equal(wrong.status, 401);
  });

  test('a PCN with the token is accepted (202) and the password works in the cloud', async () => {
    const password = 'Service-Pass-42!';
    const r = await post(`${url}${PCN_PATH}`, { user: 'u1', password }, 'agent-tok-7f3a');
    assert.equal(r.status, 202, JSON.stringify(r.json));
    assert.equal(r.json.status, 'Queued');
    assert.equal(r.json.anchor, uuid(1));
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = await signIn(cloud.url, 'u1@example.test', password);
      if (status !== 200) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(status, 200, 'the password grant with the new password succeeds');
    const m = await get(`${url}/metrics`);
    assert.match(m.text, /^idsync_password_deliveries_total\{result="delivered"\} [1-9]/m);
  });

  test('a token rotated in the store applies at the next request', async () => {
    ctx.credentials.set('agent', 'tok2');
    assert.equal((await post(`${url}${PCN_PATH}`, { user: 'u2', password: 'x-Pass-1!' }, 'agent-tok-7f3a')).status, 401);
    assert.equal((await post(`${url}${PCN_PATH}`, { user: 'u2', password: 'x-Pass-1!' }, 'tok2')).status, 202);
  });

  test('a wrong cloud credential makes /readyz 503 with a reason, and fixing it recovers', async () => {
    ctx.credentials.set('cloud', 'wrong-secret');
    writeFileSync(path.join(dir, 'source.ldif'), ldif(6)); // a change, so the cycle must reach the cloud
    const run = await service.runNow();
    assert.equal(run?.status, 'failed');
    const r = await get(`${url}/readyz`);
    assert.equal(r.status, 503);
    assert.ok(r.json.reasons.some((x: string) => /CLOUD_AUTH_FAILED/.test(x)), JSON.stringify(r.json));
    const s = await get(`${url}/status`);
    assert.ok(s.json.degraded.some((d: any) => d.check === 'cloud-credential'));
    assert.ok(!s.text.includes('wrong-secret'));
    assert.ok(ctx.events.latest(EVENTS.HEALTH_DEGRADED), 'event 6110 written');

    ctx.credentials.set('cloud', cloud.syncSecret);
    const again = await service.runNow();
    assert.equal(again?.status, 'success');
    assert.equal((await cloud.all('Users')).length, 6);
    assert.equal((await get(`${url}/readyz`)).status, 200);
    assert.ok(ctx.events.latest(EVENTS.HEALTH_RECOVERED), 'event 6111 written');
  });

  test('a configuration changed on disk is picked up at the next cycle, without a restart; an invalid one is refused and the old one kept', async () => {
    const configFile = path.join(dir, 'idsync.yaml');
    const good = readFileSync(configFile, 'utf8');
    writeFileSync(path.join(dir, 'other.ldif'), ldif(8));
    writeFileSync(configFile, good.replace('./source.ldif', './other.ldif'));
    utimesSync(configFile, new Date(), new Date(Date.now() + 5000)); // a new mtime even within the same millisecond
    const run = await service.runNow();
    assert.equal(run?.status, 'success');
    assert.ok(ctx.events.latest(EVENTS.CONFIGURATION_RELOADED), 'event 6104 written');
    assert.equal((await cloud.all('Users')).length, 8, 'the new source is in effect');

    writeFileSync(configFile, good.replace('type: ldif', 'type: ldiff'));
    utimesSync(configFile, new Date(), new Date(Date.now() + 10_000));
    const kept = await service.runNow();
    assert.equal(kept?.status, 'success', 'the previous configuration stays in effect');
    const refused = ctx.events.latest(EVENTS.CONFIGURATION_RELOAD_FAILED);
    assert.ok(refused);
    assert.match(refused.message, /ldiff|type/);
    writeFileSync(configFile, good);
    utimesSync(configFile, new Date(), new Date(Date.now() + 15_000));
    await service.runNow();
  });

  test('the service log has method and path of each request, never a body, password or token', () => {
    const log = logLines.join('');
    assert.ok(log.includes(PCN_PATH), 'requests are logged');
    for (const secret of ['Service-Pass-42!', 'agent-tok-7f3a', 'tok2', 'Bearer', 'wrong-secret', cloud.syncSecret]) {
      assert.ok(!log.includes(secret), `the log does not contain ${secret === cloud.syncSecret ? 'the cloud secret' : secret}`);
    }
  });

  test('stop() resolves and the port closes', async () => {
    const port = Number(new URL(url).port);
    assert.equal(await portOpen(port), true);
    const before = ctx.events.lastSeq();
    let seen: string[] = [];
    await service.stop(5000);
    assert.equal(await portOpen(port), false);
    const fresh = openContext(ctx.loaded);
    try {
      seen = fresh.events.query({ afterSeq: before, ids: [EVENTS.SERVICE_STOPPING.id, EVENTS.SERVICE_STOPPED.id] }).map((e) => e.name);
    } finally {
      fresh.close();
    }
    // the service closed its context: read the lifecycle events through a fresh one
    assert.deepEqual(seen, ['SERVICE_STOPPING', 'SERVICE_STOPPED']);
  });
});
