/**
 * Issue 3: the initial full password sync of 1,000 users. OpenLDAP holds each user's NT hash in
 * sambaNTPassword (the fastest real source here); the first sync cycle exports the users and their
 * OrgId hashes, after which EVERY one of them signs in to the cloud (password grant at
 * /oauth2/token) with their own password, and `idsync passwords status USER --json` shows Success.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { openContext, type EngineContext } from '../../src/engine/context.js';
import { runCycle } from '../../src/engine/cycle.js';
import { ntHash } from '../../src/passwords/hash.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { skipUnless } from '../helpers/integration.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const USERS = 1000;
const BIN = fileURLToPath(new URL('../../bin/idsync.js', import.meta.url));
const passwordOf = (i: number): string => `Full-Sync-${i}-Pw!`;

async function signIn(cloud: TestCloud, username: string, password: string): Promise<number> {
  const res = await request(`${cloud.url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username, password }).toString(),
  });
  await res.body.dump();
  return res.statusCode;
}

/** The CLI as a child process, asynchronously (the cloud in this process must keep answering). */
function idsync(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.once('exit', (code) => resolve({ code, out }));
  });
}

async function inParallel(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < n) await fn(next++);
  }));
}

describe('e2e: initial full password sync of 1,000 users (OpenLDAP sambaNTPassword)', { skip: skipUnless('slapd') }, () => {
  let slapd: Slapd;
  let cloud: TestCloud;
  let dir: string;
  let config: string;
  let ctx: EngineContext;

  before(async () => {
    const entries: string[] = [];
    for (let i = 0; i < USERS; i++) {
      const nt = (await ntHash(passwordOf(i))).toString('hex').toUpperCase();
      entries.push(
        [
          `dn: uid=fs${i},ou=people,dc=lab,dc=test`,
          'objectClass: inetOrgPerson',
          'objectClass: sambaSamAccount',
          `uid: fs${i}`,
          `cn: Full Sync ${i}`,
          `sn: ${i}`,
          `mail: fs${i}@lab.test`,
          `sambaSID: S-1-5-21-1-2-3-${1000 + i}`,
          `sambaNTPassword: ${nt}`,
          '',
        ].join('\n'),
      );
    }
    slapd = await startSlapd({ sambaSchema: true, seedLdif: entries.join('\n') });
    cloud = await startTestCloud();
    dir = mkdtempSync(path.join(tmpdir(), 'idsync-e2e-phs-full-'));
    config = path.join(dir, 'idsync.yaml');
    writeFileSync(
      config,
      stringify({
        dataDir: './data',
        connectors: [{ name: 'ldap', type: 'ldap', url: slapd.url, bindDn: slapd.adminDn, baseDn: slapd.baseDn }],
        cloud: { url: cloud.url, auth: { type: 'client_credentials', clientId: cloud.syncClientId } },
      }),
    );
    ctx = openContext(loadConfig(config));
    ctx.credentials.set('ldap', slapd.adminPassword);
    ctx.credentials.set('cloud', cloud.syncSecret);
  });

  after(async () => {
    ctx?.close();
    await cloud?.close();
    await slapd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('one cycle: every one of the 1,000 users signs in with their own on-premises password', async () => {
    const t0 = Date.now();
    const run = await runCycle(ctx);
    const cycleMs = Date.now() - t0;
    assert.equal(run.status, 'success', JSON.stringify(run.errors.slice(0, 5)));
    const outbox = ctx.db.prepare('SELECT count(*) AS n FROM phs_outbox').get() as { n: number };
    assert.equal(outbox.n, 0, 'the outbox is empty after the cycle');
    const delivered = ctx.db.prepare("SELECT count(DISTINCT anchor) AS n FROM phs_status WHERE status = 'Success'").get() as { n: number };
    assert.equal(delivered.n, USERS);

    const t1 = Date.now();
    const failed: number[] = [];
    await inParallel(USERS, 8, async (i) => {
      if ((await signIn(cloud, `fs${i}@lab.test`, passwordOf(i))) !== 200) failed.push(i);
    });
    console.log(`# full password sync of ${USERS} users: cycle ${cycleMs} ms; ${USERS} sign-ins checked in ${Date.now() - t1} ms`);
    assert.deepEqual(failed, [], `${failed.length} users could not sign in`);
    // someone else's password does not work
    assert.equal(await signIn(cloud, 'fs1@lab.test', passwordOf(2)), 400);
  });

  test('`idsync passwords status USER --json` shows Success for a sample of users', async () => {
    for (const i of [0, 1, 499, 998, 999]) {
      const r = await idsync(['-c', config, 'passwords', 'status', `fs${i}`, '--json']);
      assert.equal(r.code, 0, r.out);
      const body = JSON.parse(r.out) as { records: { status: string; source: string }[] };
      assert.equal(body.records[0]?.status, 'Success', r.out);
      assert.equal(body.records[0]?.source, 'ldap', r.out);
      assert.ok(!r.out.toLowerCase().includes(passwordOf(i).toLowerCase()));
      assert.doesNotMatch(r.out, /v1;PPH1_MD4/i);
    }
  });
});
