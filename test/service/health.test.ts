/**
 * The service's health while its cycles are refused for a connector the configuration no longer
 * names (CONNECTOR_NOT_CONFIGURED, event 6580). The refusal comes before the cycle's run is begun,
 * so the last run stays the earlier `success`: health judged by the last run alone said ok while
 * nothing synchronised. Now /status, /readyz and `idsync service status` say degraded (check
 * `sync-cycle`, code CONNECTOR_NOT_CONFIGURED, event 6110) for as long as the condition holds, and ok
 * again (6111) once `connectors rename` has run and a cycle succeeds.
 *
 * Real parts: `idsync service start` (a detached `idsync serve` through tsx), an LDIF source, the
 * cloud directory over HTTP, the store on disk — SQLite, and PostgreSQL (a private cluster,
 * test/helpers/postgres.ts) whatever IDSYNC_TEST_STORE says.
 */
import assert from 'node:assert/strict';
import { readFileSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { loadConfig } from '../../src/config/load.js';
import { forgetConnector, renameConnector } from '../../src/engine/connector-identity.js';
import { openContext } from '../../src/engine/context.js';
import { EVENTS } from '../../src/events/catalog.js';
import { serviceStatus, startDaemon, stopDaemon } from '../../src/service/daemon.js';
import type { HealthReport } from '../../src/service/health.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { skipUnlessPostgres } from '../helpers/postgres.js';
import { CLI_FROM_SOURCE_ARGS, commandGroupCode, runTsxCode, until } from '../helpers/processes.js';
import { freePort } from '../helpers/slapd.js';
import type { TestStoreKind } from '../helpers/store.js';

const nodeArgs = CLI_FROM_SOURCE_ARGS;

const person = (uid: string, n: number) =>
  `dn: uid=${uid},ou=people,dc=x,dc=test\nobjectClass: inetOrgPerson\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\nmail: ${uid}@corp.test\nentryUUID: ${n.toString(16).padStart(8, '0')}-0000-4000-8000-000000000000\n`;
const ldif = (entries: string[]) => `version: 1\n\n${entries.join('\n')}`;

const serviceCli = (config: string, args: string[]) => runTsxCode(commandGroupCode('service', 'registerServiceCommands'), ['-c', config, ...args]);

for (const store of ['sqlite', 'postgres'] as TestStoreKind[]) {
  describe(`service health while cycles are refused with CONNECTOR_NOT_CONFIGURED (${store} store)`, { skip: store === 'postgres' ? skipUnlessPostgres() : false }, () => {
    let lab: EngineLab;
    let url: string;
    const status = async (): Promise<HealthReport> => (await (await request(`${url}/status`)).body.json()) as HealthReport;
    const healthEvents = (): { id: number; check: unknown; code: unknown; seq: number }[] => {
      const ctx = openContext(loadConfig(lab.configFile), { readOnly: true });
      try {
        return ctx.events.query({ ids: [EVENTS.HEALTH_DEGRADED.id, EVENTS.HEALTH_RECOVERED.id], limit: 1000 }).map((e) => ({ id: e.id, check: e.details.check, code: e.details.code, seq: e.seq }));
      } finally {
        ctx.close();
      }
    };
    /** The configuration file rewritten with these connectors, and a new mtime the service notices. */
    const configure = (connectors: Record<string, unknown>[]) => {
      lab.writeConfig({ connectors });
      const t = new Date(Date.now() + 5000);
      utimesSync(lab.configFile, t, t);
    };

    before(async () => {
      lab = await startEngineLab({
        prefix: 'idsync-svc-health-',
        store,
        connectors: [ldifConnector({ name: 'hr', path: './hr.ldif' }), ldifConnector({ name: 'old', path: './old.ldif' })],
        files: { 'hr.ldif': ldif([person('h1', 5001), person('h2', 5002), person('h3', 5003)]), 'old.ldif': ldif([person('o1', 5101)]) },
        keepOpen: false,
      });
      // Short interval: the service reloads idsync.yaml and runs a cycle every 2 s.
      const port = await freePort();
      await startDaemon(lab.loaded, { port, intervalMs: 2000, nodeArgs, timeoutMs: 30_000 });
      url = `http://127.0.0.1:${port}`;
      let last: HealthReport | undefined;
      await until('the first cycle', async () => ((last = await status()).cycle.last?.status === 'success' ? true : undefined), 60_000, 200).catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(last?.cycle)} ${JSON.stringify(last?.degraded)} ${JSON.stringify(last?.ha)}; the service's log: ${readFileSync(path.join(lab.loaded.dataDir, 'idsync.log'), 'utf8').split('\n').filter((l) => !l.includes('"url":"/status"') && !l.includes('request completed')).join('\n').slice(-3000)}`);
      });
    });
    after(async () => {
      if (lab) await stopDaemon(lab.loaded.dataDir, { timeoutMs: 10_000 }).catch(() => undefined);
      await lab?.close();
    });

    test('healthy while every connector space is configured; after a rename in the YAML the refused cycles leave the last run at success, and health says degraded (sync-cycle, CONNECTOR_NOT_CONFIGURED), not ready; `service status` exits 1', async () => {
      const healthy = await status();
      assert.equal(healthy.status, 'ok', JSON.stringify(healthy.degraded));
      assert.equal(healthy.ready, true, JSON.stringify(healthy.notReady));
      const lastRun = healthy.cycle.last!.id;
      configure([ldifConnector({ name: 'people', path: './hr.ldif' }), ldifConnector({ name: 'old', path: './old.ldif' })]);
      const s = await until('health to say degraded', async () => {
        const h = await status();
        return h.status === 'degraded' ? h : undefined;
      }, 30_000, 200);
      assert.equal(s.cycle.last?.id, lastRun, 'the refused cycles wrote no run');
      assert.equal(s.cycle.last?.status, 'success');
      assert.equal(s.degraded.length, 1, JSON.stringify(s.degraded));
      const d = s.degraded[0]!;
      assert.equal(d.check, 'sync-cycle');
      assert.equal(d.code, 'CONNECTOR_NOT_CONFIGURED');
      assert.match(d.reason, /"hr" \(3 objects\)/);
      assert.match(d.reason, /idsync connectors rename hr people/);
      assert.match(d.reason, /idsync connectors forget hr/);
      assert.equal(s.ready, false);
      assert.ok(s.notReady.includes(d.reason));

      const ready = await request(`${url}/readyz`);
      assert.equal(ready.statusCode, 503);
      assert.ok(((await ready.body.json()) as { reasons: string[] }).reasons.includes(d.reason));

      const st = await serviceStatus(lab.loaded);
      assert.equal(st.healthy, false);
      const out = await serviceCli(lab.configFile, ['service', 'status']);
      assert.equal(out.code, 1, out.stdout + out.stderr);
      assert.match(out.stdout, /^health: degraded \(not ready\)$/m);
      assert.match(out.stdout, /^ {2}! sync-cycle: every sync cycle is refused: .*"hr" \(3 objects\)/m);

      const degradedEvent = await until('event 6110', () => healthEvents().find((e) => e.id === EVENTS.HEALTH_DEGRADED.id && e.check === 'sync-cycle'), 10_000, 200);
      assert.equal(degradedEvent.code, 'CONNECTOR_NOT_CONFIGURED');
    });

    test('after `connectors rename hr people`: ok again, a cycle succeeds, 6111', async () => {
      const before = (await status()).cycle.last!.id;
      const ctx = openContext(loadConfig(lab.configFile));
      try {
        renameConnector(ctx, 'hr', 'people');
      } finally {
        ctx.close();
      }
      const s = await until('a successful cycle after the rename', async () => {
        const h = await status();
        return h.cycle.last && h.cycle.last.id > before && h.cycle.last.status === 'success' ? h : undefined;
      }, 30_000, 200);
      assert.equal(s.status, 'ok', JSON.stringify(s.degraded));
      assert.equal(s.ready, true, JSON.stringify(s.notReady));
      const recovered = await until('event 6111', () => healthEvents().find((e) => e.id === EVENTS.HEALTH_RECOVERED.id && e.check === 'sync-cycle'), 10_000, 200);
      assert.ok(recovered.seq > healthEvents().find((e) => e.id === EVENTS.HEALTH_DEGRADED.id)!.seq);
      const out = await serviceCli(lab.configFile, ['service', 'status']);
      assert.equal(out.code, 0, out.stdout + out.stderr);
      assert.match(out.stdout, /^health: ok$/m);
    });

    test('a connector removed from the YAML: degraded again; after `connectors forget old` it is not marked any more', async () => {
      configure([ldifConnector({ name: 'people', path: './hr.ldif' })]);
      const s = await until('health to say degraded', async () => {
        const h = await status();
        return h.status === 'degraded' ? h : undefined;
      }, 30_000, 200);
      assert.deepEqual(s.degraded.map((d) => [d.check, d.code]), [['sync-cycle', 'CONNECTOR_NOT_CONFIGURED']]);
      assert.match(s.degraded[0]!.reason, /"old" \(1 object\)/);
      const ctx = openContext(loadConfig(lab.configFile));
      try {
        forgetConnector(ctx, 'old');
      } finally {
        ctx.close();
      }
      // The forget is itself a finished run; the condition is gone at once, whatever runs next.
      const h = await status();
      assert.equal(h.status, 'ok', JSON.stringify(h.degraded));
      assert.equal(h.ready, true, JSON.stringify(h.notReady));
    });
  });
}
