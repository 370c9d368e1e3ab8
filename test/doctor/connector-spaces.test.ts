/**
 * `idsync doctor`'s connector-spaces check: state kept under a source connector name that
 * idsync.yaml no longer names (renamed or removed there). Objects of such a connector refuse every
 * sync cycle (CONNECTOR_NOT_CONFIGURED, event 6580); doctor names it, with its object count and the
 * two commands that resolve it, and is ok again once `connectors rename` / `forget` ran.
 *
 * Real parts: an LDIF source, the cloud directory over HTTP, real cycles, and the store on disk —
 * SQLite, and PostgreSQL (a private cluster: test/helpers/postgres.ts) whatever IDSYNC_TEST_STORE says.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { forgetConnector, renameConnector } from '../../src/engine/connector-identity.js';
import { runCycle } from '../../src/engine/cycle.js';
import { runDoctor, type Finding } from '../../src/doctor/index.js';
import { Outbox } from '../../src/passwords/outbox.js';
import { PasswordKeys } from '../../src/passwords/keys.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { skipUnlessPostgres } from '../helpers/postgres.js';
import { commandGroupCode, runTsxCode } from '../helpers/processes.js';
import type { TestStoreKind } from '../helpers/store.js';

const person = (uid: string, n: number) =>
  `dn: uid=${uid},ou=people,dc=x,dc=test\nobjectClass: inetOrgPerson\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\nmail: ${uid}@corp.test\nentryUUID: ${n.toString(16).padStart(8, '0')}-0000-4000-8000-000000000000\n`;
const ldif = (entries: string[]) => `version: 1\n\n${entries.join('\n')}`;

const doctorCli = (config: string, args: string[]) => runTsxCode(commandGroupCode('doctor', 'registerDoctorCommands'), ['-c', config, 'doctor', ...args]);

const only = async (lab: EngineLab): Promise<{ ok: boolean; findings: Finding[] }> => runDoctor(loadConfig(lab.configFile), { only: ['connector-spaces'] });

for (const store of ['sqlite', 'postgres'] as TestStoreKind[]) {
  describe(`doctor connector-spaces (${store} store)`, { skip: store === 'postgres' ? skipUnlessPostgres() : false }, () => {
    let lab: EngineLab;
    before(async () => {
      lab = await startEngineLab({
        prefix: 'idsync-doctor-spaces-',
        store,
        connectors: [ldifConnector({ name: 'hr', path: './hr.ldif' })],
        files: { 'hr.ldif': ldif([person('a1', 4001), person('a2', 4002), person('a3', 4003)]) },
      });
      const run = await runCycle(lab.ctx);
      assert.equal(run.status, 'success', JSON.stringify(run.errors));
    });
    after(() => lab?.close());

    test('every connector space configured: one ok finding', async () => {
      const r = await only(lab);
      assert.equal(r.ok, true, JSON.stringify(r.findings));
      assert.deepEqual(r.findings.map((f) => [f.check, f.status]), [['connector-spaces', 'ok']]);
      assert.match(r.findings[0]!.message, /configured: hr/);
    });

    test('a connector renamed in the YAML, and one removed that left only password rows: an error each, with its counts, event 6580 and both commands; the CLI exits 1', async () => {
      lab.writeConfig({ connectors: [ldifConnector({ name: 'people', path: './hr.ldif' })] });
      // A removed connector of which the store kept only password state (a fingerprint), no objects.
      new Outbox(lab.ctx.db, new PasswordKeys(Buffer.alloc(32, 7))).setFingerprint('retired', 'a1-anchor', Buffer.alloc(16, 1));
      // The cycle itself refuses (the objects), as doctor says.
      const ctx = lab.reopen();
      await assert.rejects(runCycle(ctx), /CONNECTOR_NOT_CONFIGURED|does not name/);

      const r = await only(lab);
      assert.equal(r.ok, false);
      const hr = r.findings.find((f) => f.target === 'hr');
      assert.ok(hr, JSON.stringify(r.findings));
      assert.equal(hr.check, 'connector-spaces');
      assert.equal(hr.status, 'error');
      assert.equal(hr.eventId, 6580);
      assert.match(hr.message, /3 objects of source connector "hr", which .*idsync\.yaml does not name/);
      assert.match(hr.cause ?? '', /every sync cycle is refused \(CONNECTOR_NOT_CONFIGURED, event 6580\)/);
      assert.match(hr.fix ?? '', /idsync connectors rename hr people/);
      assert.match(hr.fix ?? '', /idsync connectors forget hr/);

      const retired = r.findings.find((f) => f.target === 'retired');
      assert.ok(retired, JSON.stringify(r.findings));
      assert.equal(retired.status, 'error');
      assert.match(retired.message, /0 objects and the password state of 1 user of source connector "retired"/);
      assert.match(retired.fix ?? '', /idsync connectors rename retired people/);
      assert.match(retired.fix ?? '', /idsync connectors forget retired/);
      assert.deepEqual(r.findings.map((f) => f.target).sort(), ['hr', 'retired']);

      const cli = await doctorCli(lab.configFile, []);
      assert.equal(cli.code, 1, cli.stdout + cli.stderr);
      assert.match(cli.stdout, /^✗ connector-spaces\s+the store holds 3 objects of source connector "hr"/m);
      assert.match(cli.stdout, /fix:\s+if you renamed it: idsync connectors rename hr people/);
      const json = await doctorCli(lab.configFile, ['--json']);
      const found = (JSON.parse(json.stdout) as { findings: Finding[] }).findings.filter((f) => f.check === 'connector-spaces');
      assert.deepEqual(found.map((f) => [f.target, f.status, f.eventId]), [['hr', 'error', 6580], ['retired', 'error', 6580]]);
    });

    test('after `connectors rename hr people` and `forget retired`: ok again, and the cycle runs', async () => {
      const ctx = lab.reopen();
      renameConnector(ctx, 'hr', 'people');
      forgetConnector(ctx, 'retired');
      const r = await only(lab);
      assert.equal(r.ok, true, JSON.stringify(r.findings));
      assert.deepEqual(r.findings.map((f) => [f.check, f.status]), [['connector-spaces', 'ok']]);
      const run = await runCycle(ctx);
      assert.equal(run.status, 'success', JSON.stringify(run.errors));
    });
  });
}
