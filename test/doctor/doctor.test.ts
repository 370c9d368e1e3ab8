/**
 * `idsync doctor` against real servers: slapd (LDAPS, StartTLS-capable, an expired certificate, a
 * stopped one), the real cloud directory (and one whose sync client was deleted), the real event
 * log and password outbox. Only async spawns: the cloud runs in this process.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { stringify } from 'yaml';
import { fetchToken } from '../../src/cloud/admin-api-client.js';
import { loadConfig, type LoadedConfig } from '../../src/config/load.js';
import { runDoctor, type Finding } from '../../src/doctor/index.js';
import { diskStatus } from '../../src/doctor/checks/disk.js';
import { skewStatus } from '../../src/doctor/checks/clock.js';
import { openContext } from '../../src/engine/context.js';
import { runCycle } from '../../src/engine/cycle.js';
import { EVENTS } from '../../src/events/catalog.js';
import { EventLog } from '../../src/events/log.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { skipUnless } from '../helpers/integration.js';
import { commandGroupCode, runTsxCode } from '../helpers/processes.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const WRONG_PASSWORD = 'Wr0ng-Doctor-Pass-7731';

/** `idsync doctor` (main.ts through tsx) in a child process. */
const doctorCli = (config: string, args: string[]) => runTsxCode(commandGroupCode('doctor', 'registerDoctorCommands'), ['-c', config, 'doctor', ...args]);

const find = (fs: Finding[], check: string, target?: string) => fs.find((f) => f.check === check && (target === undefined || f.target === target));

describe('idsync doctor', { skip: skipUnless('slapd') }, () => {
  let slapd: Slapd;
  let expired: Slapd;
  let stopped: Slapd;
  let cloud: TestCloud;
  const dirs: string[] = [];

  /** A config dir with one LDAP connector and the cloud; credentials stored. */
  function setup(ldap: Slapd, opts: { url?: string; tls?: Record<string, unknown>; cloud?: TestCloud; cloudUrl?: string; delta?: Record<string, unknown> } = {}): { config: string; loaded: LoadedConfig } {
    const dir = mkdtempSync(path.join(tmpdir(), 'idsync-doctor-'));
    dirs.push(dir);
    const c = opts.cloud ?? cloud;
    const config = path.join(dir, 'idsync.yaml');
    writeFileSync(
      config,
      stringify({
        dataDir: './data',
        connectors: [{ name: 'corp', type: 'ldap', url: opts.url ?? ldap.ldapsUrl, bindDn: ldap.adminDn, baseDn: ldap.baseDn, tls: opts.tls ?? { ca: ldap.caFile }, timeoutMs: 3000, ...(opts.delta ? { delta: opts.delta } : {}) }],
        cloud: { url: opts.cloudUrl ?? c.url, auth: { type: 'client_credentials', clientId: c.syncClientId }, retries: 0, timeoutMs: 3000 },
      }),
    );
    const loaded = loadConfig(config);
    const ctx = openContext(loaded);
    ctx.credentials.set('corp', ldap.adminPassword);
    ctx.credentials.set('cloud', c.syncSecret);
    ctx.close();
    return { config, loaded };
  }

  let healthy: { config: string; loaded: LoadedConfig };

  before(async () => {
    slapd = await startSlapd({ tls: true, accesslog: true });
    expired = await startSlapd({ tls: { expired: true } });
    stopped = await startSlapd({ tls: true });
    await stopped.stop();
    cloud = await startTestCloud();
    await slapd.add(`dn: uid=alice,ou=people,${slapd.baseDn}\nobjectClass: inetOrgPerson\nuid: alice\ncn: Alice\nsn: A\nmail: alice@lab.test\n`);
    // healthy: the accesslog lets a delta see deletions (without it, the deletions check warns)
    healthy = setup(slapd, { delta: { accesslogBase: 'cn=accesslog' } });
    const ctx = openContext(healthy.loaded);
    try {
      const run = await runCycle(ctx);
      assert.equal(run.status, 'success', JSON.stringify(run.errors));
    } finally {
      ctx.close();
    }
  });

  after(async () => {
    await slapd?.stop();
    await expired?.stop();
    await cloud?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('an OpenLDAP source without the accesslog: doctor warns that deletions wait for the scheduled full import', async () => {
    const plain = setup(slapd);
    const r = await runDoctor(plain.loaded, { only: ['deletions'] });
    assert.equal(r.ok, false);
    const f = find(r.findings, 'deletions', 'corp');
    assert.equal(f?.status, 'warning');
    assert.equal(f?.eventId, 6020);
    assert.match(f!.message, /scheduled full import \(every 1d/);
    assert.match(f!.fix ?? '', /delta\.accesslogBase/);
    assert.equal(find((await runDoctor(healthy.loaded, { only: ['deletions'] })).findings, 'deletions', 'corp')?.status, 'ok');
  });

  test('a healthy setup (LDAPS + the cloud, a successful cycle) reports every check ok; the CLI exits 0', async () => {
    const r = await runDoctor(healthy.loaded, { certWarnDays: 1 });
    assert.equal(r.ok, true, JSON.stringify(r.findings.filter((f) => f.status !== 'ok'), null, 2));
    for (const [check, target] of [['connectivity', 'corp'], ['connectivity', 'cloud'], ['credentials', 'corp'], ['credentials', 'cloud'], ['certificates', 'corp'], ['clock-skew', 'cloud'], ['last-cycle'], ['password-heartbeat'], ['password-outbox'], ['disk-space'], ['deletions', 'corp']] as const) {
      assert.equal(find(r.findings, check, target)?.status, 'ok', `${check} ${target ?? ''}`);
    }
    const cli = await doctorCli(healthy.config, ['--cert-warn-days', '1']);
    assert.equal(cli.code, 0, cli.stdout + cli.stderr);
    assert.match(cli.stdout, /^✓ connectivity\s+corp: reached ldaps:\/\//m);
    assert.match(cli.stdout, /all \d+ checks passed/);
    // The test certificates live 2 days: with the default 30-day window they are a warning.
    const strict = await runDoctor(healthy.loaded, { only: ['certificates'] });
    assert.equal(find(strict.findings, 'certificates', 'corp')?.status, 'warning');
  });

  test('a wrong LDAP password: error, event 0, fix `idsync credentials set corp`; no secret in the output; exit 1', async () => {
    const s = setup(slapd);
    const ctx = openContext(s.loaded);
    ctx.credentials.set('corp', WRONG_PASSWORD);
    ctx.close();
    const r = await runDoctor(s.loaded, { only: ['connectivity'] });
    const f = find(r.findings, 'connectivity', 'corp')!;
    assert.equal(f.status, 'error');
    assert.equal(f.eventId, EVENTS.AUTH_USER_OR_PASSWORD_INCORRECT.id);
    assert.equal(f.fix, 'idsync credentials set corp');
    assert.equal(find(r.findings, 'credentials', 'corp')?.status, 'error');
    assert.equal(find(r.findings, 'connectivity', 'cloud')?.status, 'ok');
    const cli = await doctorCli(s.config, ['--json']);
    assert.equal(cli.code, 1);
    const json = JSON.parse(cli.stdout);
    assert.equal(json.ok, false);
    assert.ok(json.findings.some((x: Finding) => x.eventId === 0 && x.fix === 'idsync credentials set corp'));
    const human = await doctorCli(s.config, []);
    assert.match(human.stdout, /^✗ connectivity\s+corp: the user name or password is incorrect/m);
    assert.match(human.stdout, /event: 0\n/);
    assert.match(human.stdout, /fix:\s+idsync credentials set corp/);
    for (const out of [cli.stdout, cli.stderr, human.stdout, human.stderr]) {
      assert.ok(!out.includes(WRONG_PASSWORD) && !out.includes(slapd.adminPassword + '\n') && !out.includes(cloud.syncSecret), 'no secret in the output');
    }
  });

  test('a stopped directory server: unreachable, event 6301', async () => {
    // stop() removed its CA file; any readable one will do: the connection is refused before TLS.
    const s = setup(stopped, { url: stopped.ldapsUrl!, tls: { ca: slapd.caFile } });
    const r = await runDoctor(s.loaded, { only: ['connectivity', 'certificates'] });
    const f = find(r.findings, 'connectivity', 'corp')!;
    assert.equal(f.status, 'error');
    assert.equal(f.eventId, EVENTS.CONNECTOR_UNREACHABLE.id);
    assert.match(f.cause!, /connection refused/);
    assert.match(f.fix!, /idsync credentials test corp/);
    assert.equal(find(r.findings, 'credentials', 'corp')?.status, 'warning', 'the credential could not be tested');
  });

  test('an expired directory certificate: certificates error (expired), connectivity TLS 6303', async () => {
    const s = setup(expired, { url: expired.ldapsUrl!, tls: { ca: expired.caFile } });
    const r = await runDoctor(s.loaded, { only: ['connectivity', 'certificates'] });
    const cert = find(r.findings, 'certificates', 'corp')!;
    assert.equal(cert.status, 'error');
    assert.match(cert.message, /expired on/);
    const conn = find(r.findings, 'connectivity', 'corp')!;
    assert.equal(conn.eventId, EVENTS.CONNECTOR_TLS_FAILED.id);
  });

  test('StartTLS endpoints are probed too', async () => {
    const s = setup(slapd, { url: slapd.url, tls: { ca: slapd.caFile, startTls: true } });
    const r = await runDoctor(s.loaded, { only: ['certificates', 'connectivity'], certWarnDays: 1 });
    const cert = find(r.findings, 'certificates', 'corp')!;
    assert.equal(cert.status, 'ok', cert.message + (cert.cause ?? ''));
    assert.match(cert.message, /StartTLS/);
    assert.equal(find(r.findings, 'connectivity', 'corp')?.status, 'ok');
  });

  test('a cloud whose sync client was deleted: error, event 115, fix `idsync credentials set cloud`', async () => {
    const other = await startTestCloud();
    try {
      const s = setup(slapd, { cloud: other });
      const token = await fetchToken(other.url, { grant_type: 'password', ...other.admin });
      const res = await request(`${other.url}/admin/v1/clients/${encodeURIComponent(other.syncClientId)}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
      await res.body.dump();
      assert.equal(res.statusCode, 204);
      const r = await runDoctor(s.loaded, { only: ['connectivity'] });
      const f = find(r.findings, 'connectivity', 'cloud')!;
      assert.equal(f.status, 'error');
      assert.equal(f.eventId, EVENTS.CLOUD_ACCESS_DENIED.id);
      assert.equal(f.fix, 'idsync credentials set cloud');
      assert.match(f.cause!, /events 115 and 0/);
      assert.ok(!JSON.stringify(r).includes(other.syncSecret));
    } finally {
      await other.close();
    }
  });

  test('password heartbeat: an old one (5 h) is a warning with event 654; none at all while hashes are known is a warning', async () => {
    const s = setup(slapd);
    const ctx = openContext(s.loaded);
    try {
      new EventLog(ctx.db, { now: () => new Date(Date.now() - 5 * 3600_000) }).emit(EVENTS.PHS_HEARTBEAT, {});
    } finally {
      ctx.close();
    }
    let r = await runDoctor(s.loaded, { only: ['password-heartbeat'] });
    let f = find(r.findings, 'password-heartbeat')!;
    assert.equal(f.status, 'warning');
    assert.equal(f.eventId, 654);
    assert.match(f.message, /within 3 hours/);
    assert.match(f.fix!, /idsync service start/);

    const s2 = setup(slapd);
    const ctx2 = openContext(s2.loaded);
    try {
      ctx2.db.prepare('INSERT INTO phs_users (connector, anchor, updated_at) VALUES (?, ?, ?)').run('corp', 'a-1', new Date().toISOString());
    } finally {
      ctx2.close();
    }
    r = await runDoctor(s2.loaded, { only: ['password-heartbeat'] });
    f = find(r.findings, 'password-heartbeat')!;
    assert.equal(f.status, 'warning');
    assert.match(f.message, /was ever recorded, although 1 user/);

    // A recent heartbeat is ok.
    const ctx3 = openContext(s2.loaded);
    ctx3.events.emit(EVENTS.PHS_HEARTBEAT, {});
    ctx3.close();
    r = await runDoctor(s2.loaded, { only: ['password-heartbeat'] });
    assert.equal(find(r.findings, 'password-heartbeat')?.status, 'ok');
  });

  test('outbox backlog: a change waiting 2 h is a warning naming the count and the oldest age', async () => {
    const s = setup(slapd);
    const ctx = openContext(s.loaded);
    const queued = new Date(Date.now() - 2 * 3600_000).toISOString();
    try {
      ctx.db
        .prepare(
          `INSERT INTO phs_users (anchor, connector, hash_ct, hash_iv, hash_tag, key_id, changed_at, updated_at, queued_at, version, attempts, next_attempt_at, last_error, source)
           VALUES ('a-1', 'corp', x'00', x'00', x'00', 'k', ?, ?, ?, 1, 3, 0, 'CLOUD_AUTH_FAILED', 'test')`,
        )
        .run(queued, queued, queued);
    } finally {
      ctx.close();
    }
    const r = await runDoctor(s.loaded, { only: ['password-outbox'] });
    const f = find(r.findings, 'password-outbox')!;
    assert.equal(f.status, 'warning');
    assert.match(f.message, /1 password change\(s\) waiting/);
    assert.ok(f.message.includes(queued), f.message);
    assert.match(f.message, /\(2 h ago\)/);
    assert.match(f.cause!, /CLOUD_AUTH_FAILED/);
  });

  test('last cycle: none yet is a warning; one older than 3 × the interval is a warning', async () => {
    const s = setup(slapd);
    let r = await runDoctor(s.loaded, { only: ['last-cycle'] });
    assert.equal(find(r.findings, 'last-cycle')?.status, 'warning');
    assert.match(find(r.findings, 'last-cycle')!.message, /no sync cycle has run yet/);
    r = await runDoctor(healthy.loaded, { only: ['last-cycle'], now: Date.now() + 20 * 60_000, intervalMs: 5 * 60_000 });
    const f = find(r.findings, 'last-cycle')!;
    assert.equal(f.status, 'warning');
    assert.match(f.message, /older than 3 × the interval/);
    assert.equal(f.fix, 'idsync service start   (or systemctl start idsync)');
  });

  test('clock skew: a cloud whose Date header is 10 min off is an error; thresholds 60 s / 5 min', async () => {
    const server: Server = createServer((_req, res) => {
      res.setHeader('date', new Date(Date.now() - 10 * 60_000).toUTCString());
      res.end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as { port: number }).port;
      const s = setup(slapd, { cloudUrl: `http://127.0.0.1:${port}` });
      const r = await runDoctor(s.loaded, { only: ['clock-skew'] });
      const f = find(r.findings, 'clock-skew')!;
      assert.equal(f.status, 'error');
      assert.match(f.message, /ahead of the cloud directory/);
      assert.match(f.fix!, /timedatectl/);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    assert.equal(skewStatus(30_000), 'ok');
    assert.equal(skewStatus(-90_000), 'warning');
    assert.equal(skewStatus(6 * 60_000), 'error');
  });

  test('disk space thresholds: < 100 MiB error, < 1 GiB or < 10 % warning', () => {
    const MiB = 1024 * 1024;
    assert.equal(diskStatus(50 * MiB, 100_000 * MiB), 'error');
    assert.equal(diskStatus(500 * MiB, 1000 * MiB), 'warning');
    assert.equal(diskStatus(5000 * MiB, 100_000 * MiB), 'warning');
    assert.equal(diskStatus(50_000 * MiB, 100_000 * MiB), 'ok');
  });
});
