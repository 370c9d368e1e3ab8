/**
 * docs/ha.md, "PostgreSQL itself is down": nobody can lead or write, and work resumes when it is
 * back, without a restart. A real `idsync serve` on a real PostgreSQL 15, a real slapd and the real
 * cloud directory, production defaults (5 s lease, 1 s renewal, 1 s delivery poll). The database
 * refuses connections and ends the node's sessions for longer than the lease; while it is down a
 * user changes in slapd. Asserted:
 *  - the process lives through it (before the fix its delivery loop's rejection ended it, and a
 *    failed reconnection left the store's dead session in place for ever);
 *  - /status and /metrics answer during the outage: a standby, degraded for the store (both failed
 *    before); the 6110 the store cannot take is in the node's log, and its 6111 is recorded after;
 *  - once the database takes connections again the node leads again, the change made during the
 *    outage reaches the cloud, and a password change sent after it signs in.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { stringify } from 'yaml';
import { generateKey } from '../../../src/credentials/key.js';
import { PCN_PATH } from '../../../src/passwords/handlers.js';
import { startTestCloud, type TestCloud } from '../../helpers/cloud.js';
import { skipUnlessPostgres, startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { setCredentials, signIn, spawnIdsync, stopProc, until, type Proc } from '../../helpers/processes.js';
import { startSlapd, type Slapd } from '../../helpers/slapd.js';

const USERS = 20;
const OUTAGE_MS = 8000; // longer than the 5 s lease: the node loses it and must take it again
const dnOf = (i: number, base: string): string => `uid=so${i},ou=people,${base}`;
const mailOf = (i: number): string => `so${i}@example.test`;

describe('sync service on PostgreSQL: the database down past the lease, then back', { skip: skipUnlessPostgres() }, () => {
  let pgc: TestPostgres;
  let slapd: Slapd;
  let cloud: TestCloud;
  let dir: string;
  let dbName: string;
  let node: Proc | undefined;
  let url = '';
  const agentToken = randomBytes(24).toString('base64url');
  let env: NodeJS.ProcessEnv = {};

  before(async () => {
    pgc = await startPostgres();
    const dbUrl = new URL(await pgc.createDatabase());
    dbName = dbUrl.pathname.slice(1);
    const seed: string[] = [];
    for (let i = 0; i < USERS; i++) {
      seed.push(`dn: ${dnOf(i, 'dc=lab,dc=test')}`, 'objectClass: inetOrgPerson', `uid: so${i}`, `cn: Outage User ${i}`, `sn: User${i}`, `mail: ${mailOf(i)}`, 'title: v1', '');
    }
    slapd = await startSlapd({ seedLdif: seed.join('\n') });
    cloud = await startTestCloud();
    dir = mkdtempSync(path.join(tmpdir(), 'idsync-outage-'));
    env = { IDSYNC_STORE_PASSWORD: decodeURIComponent(dbUrl.password), IDSYNC_SECRET_KEY: generateKey().toString('base64') };
    dbUrl.password = '';
    writeFileSync(
      path.join(dir, 'idsync.yaml'),
      stringify({
        dataDir: './data',
        store: { type: 'postgres', url: dbUrl.toString() },
        ha: { node: 'solo' },
        connectors: [{ name: 'ldap', type: 'ldap', url: slapd.url, bindDn: slapd.adminDn, baseDn: slapd.baseDn }],
        cloud: { url: cloud.url, auth: { type: 'client_credentials', clientId: cloud.syncClientId } },
      }),
    );
    Object.assign(process.env, env);
    await setCredentials(path.join(dir, 'idsync.yaml'), [
      ['cloud', cloud.syncSecret],
      ['ldap', slapd.adminPassword],
      ['agent', agentToken, ['--no-validate']],
    ]);
  });

  after(async () => {
    await stopProc(node);
    await cloud?.close();
    await slapd?.stop();
    await pgc?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  interface Status {
    ha?: { role: string };
    degraded: { check: string; reason: string }[];
  }
  const status = async (): Promise<Status | undefined> => {
    try {
      const res = await request(`${url}/status`, { headersTimeout: 3000, bodyTimeout: 3000 });
      return res.statusCode === 200 ? ((await res.body.json()) as Status) : (await res.body.text(), undefined);
    } catch {
      return undefined;
    }
  };
  const role = async (): Promise<string | undefined> => (await status())?.ha?.role;
  const alive = (): void => {
    assert.equal(node?.child.exitCode, null, `the node is still running; it printed:\n${node?.out.text.slice(-3000)}`);
  };

  test('the node lives through it, leads again, and the change made meanwhile and a new password arrive', async () => {
    node = spawnIdsync(['-c', path.join(dir, 'idsync.yaml'), 'serve', '--port', '0', '--interval', '2s', '--log-level', 'info'], undefined, env);
    url = await until('the node to listen', () => /listening on (\S+)/.exec(node!.out.text)?.[1], 60_000);
    await until('the initial export', async () => ((await cloud.all('Users')).length === USERS ? true : undefined), 60_000, 500);
    assert.equal(await role(), 'leader');

    const admin = await pgc.admin();
    try {
      await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [dbName]);
      await slapd.modify(`dn: ${dnOf(3, slapd.baseDn)}\nchangetype: modify\nreplace: title\ntitle: changed during the outage\n`);
      for (let waited = 0; waited < OUTAGE_MS; waited += 500) {
        await sleep(500);
        alive();
      }
      // /status answers through the outage: a standby, degraded for the store.
      const during = await until('/status to say the node does not lead and cannot read the store', async () => {
        const st = await status();
        return st?.ha?.role === 'standby' && st.degraded.some((d) => d.check === 'store') ? st : undefined;
      }, 30_000, 250);
      assert.match(during.degraded.find((d) => d.check === 'store')!.reason, /cannot be reached/);
      // The scrape answers too, degraded; the 6110 the store cannot take goes to the node's log.
      const metrics = await request(`${url}/metrics`);
      const text = await metrics.body.text();
      assert.equal(metrics.statusCode, 200, text.slice(0, 500));
      assert.match(text, /^idsync_health_degraded 1$/m);
      await until('the node to log the 6110 the store cannot take', () => /event 6110 HEALTH_DEGRADED: .*store/.test(node!.out.text), 30_000, 250);
    } finally {
      await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS true`);
      await admin.end();
    }

    await until('the node to lead again, the store readable', async () => {
      const st = await status();
      return st?.ha?.role === 'leader' && !st.degraded.some((d) => d.check === 'store');
    }, 60_000, 250);
    const sql = await pgc.admin(dbName);
    try {
      await until("the store's recovery recorded (6111, check store)", async () => {
        const r = await sql.query("SELECT count(*)::int AS n FROM events WHERE id = 6111 AND details LIKE '%\"check\":\"store\"%'");
        return r.rows[0].n === 1;
      }, 60_000, 500);
    } finally {
      await sql.end();
    }
    await until('the change made during the outage in the cloud', async () => {
      const u = (await cloud.all('Users')).find((x: { userName: string }) => x.userName === mailOf(3));
      return u?.title === 'changed during the outage';
    }, 60_000, 500);
    const password = `Back-${randomBytes(4).toString('hex')}!`;
    await until('the node to take a password change', async () => {
      const res = await request(`${url}${PCN_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${agentToken}` },
        body: JSON.stringify({ user: dnOf(5, slapd.baseDn), password }),
      });
      await res.body.text();
      return res.statusCode === 202;
    }, 30_000, 500);
    // Polled in the cloud's store (polling sign-ins with a password not there yet trips the lockout).
    await until('the new password in the cloud', () => cloud.holdsPassword(mailOf(5), password), 60_000, 200);
    assert.equal(await signIn(cloud.url, mailOf(5), password), 200);
    alive();
  });
});
