/**
 * Issue 12, missing replication rights, with real processes: the AD connector's account is an
 * ordinary user (it can read the directory, so sync cycles work) without DS-Replication-Get-Changes
 * and -Get-Changes-All.
 *
 * - `idsync doctor` names the problem (event 611) with the grant commands;
 * - `idsync serve` writes event 611 naming both rights and the commands, and nothing else breaks
 *   (the sync cycle still exports, the service stays up);
 * - after granting both rights with samba-tool, the next poll syncs the hashes without a restart
 *   (event 6402), and doctor is happy.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { RIGHT_GET_CHANGES, RIGHT_GET_CHANGES_ALL } from '../../src/drsuapi/errors.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { openConfiguredStore } from '../helpers/store.js';
import { adConnectorConfig, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { findBinary, skipUnless } from '../helpers/integration.js';
import { idsync, setCredentials, signIn, signsInWithin, spawnIdsync, stopProc, until, type Proc } from '../helpers/processes.js';
import { deleteAdTree, seedAdUsers, useSambaDC, type SambaDC, type SeededAd } from '../helpers/samba.js';

const run = promisify(execFile);
const OU = 'e2edrsrights';
const CONNECTOR = 'corp-ad';
const PASSWORD = 'Rights-Test-1!';
const SVC = 'drsrightsvc';
const SVC_PASSWORD = 'Svc-Rights-2!';

interface DoctorJson {
  findings: { check: string; status: string; eventId?: number; message: string; fix?: string }[];
}

describe('e2e: DRS password sync without the replication rights, then with them', { skip: skipUnless('samba') }, () => {
  let dc: SambaDC;
  let seeded: SeededAd;
  let cloud: TestCloud;
  let lab: EngineLab;
  let config: string;
  let serve: Proc | undefined;

  const events = (id: number): { message: string }[] => {
    const db = openConfiguredStore(lab.configFile);
    try {
      return db.prepare('SELECT message FROM events WHERE id = ?').all(id) as { message: string }[];
    } finally {
      db.close();
    }
  };
  const doctor = async (): Promise<DoctorJson['findings'][number]> => {
    const r = await idsync(['-c', config, 'doctor', '--json']);
    const f = (JSON.parse(r.out) as DoctorJson).findings.find((x) => x.check === 'password-replication');
    assert.ok(f, r.out);
    return f;
  };

  before(async () => {
    dc = await useSambaDC();
    seeded = await seedAdUsers(dc, { ou: OU, users: 3, password: PASSWORD });
    const c = await dc.client();
    try {
      await c.add(`CN=${SVC},${seeded.ouDn}`, {
        objectClass: ['top', 'person', 'organizationalPerson', 'user'],
        sAMAccountName: SVC,
        userPrincipalName: `${SVC}@lab.test`,
        userAccountControl: '512',
        unicodePwd: Buffer.from(`"${SVC_PASSWORD}"`, 'utf16le'),
      } as unknown as Record<string, string[]>);
    } finally {
      await c.unbind();
    }
    // Smart lockout off: the test polls the token endpoint with a password that does not work yet.
    cloud = await startTestCloud({ lockout: false });
    const connector = adConnectorConfig(dc, seeded, { name: CONNECTOR, bindDn: `${SVC}@lab.test`, passwords: { source: 'drs', host: '127.0.0.1' } });
    lab = await startEngineLab({ prefix: 'idsync-e2e-drs-rights-', connectors: [connector], cloud, credentials: false });
    config = lab.configFile;
    await setCredentials(config, [
      [CONNECTOR, SVC_PASSWORD],
      ['cloud', cloud.syncSecret],
    ]);
  });

  after(async () => {
    await stopProc(serve);
    await cloud?.close();
    await lab?.close();
    if (dc) {
      await deleteAdTree(dc, seeded.ouDn).catch(() => undefined);
      await dc.stop();
    }
  });

  test('doctor names the missing rights before the first sync', async () => {
    const f = await doctor();
    assert.equal(f.status, 'error');
    assert.equal(f.eventId, 611);
    assert.match(f.message, new RegExp(RIGHT_GET_CHANGES_ALL));
    assert.match(f.fix ?? '', /samba-tool dsacl set/);
  });

  test('serve: event 611 with both rights and the commands; the sync cycle still exports', async () => {
    const r = await idsync(['-c', config, 'sync', '--json']);
    assert.equal(r.code, 0, r.out);
    serve = spawnIdsync(['-c', config, 'serve', '--port', '0', '--interval', '1h']);
    await until('serve to listen', () => /listening on (\S+)/.exec(serve!.out.text)?.[1], 30_000);
    const ev = await until('event 611', () => events(611)[0], 60_000, 250);
    assert.match(ev.message, new RegExp(RIGHT_GET_CHANGES));
    assert.match(ev.message, new RegExp(RIGHT_GET_CHANGES_ALL));
    assert.match(ev.message, /dsacls/);
    assert.match(ev.message, /samba-tool dsacl set/);
    await new Promise((res) => setTimeout(res, 3000));
    assert.equal(events(611).length, 1, 'one event per failure, not one per poll');
    assert.equal(serve.child.exitCode, null, 'the service stays up');
    assert.equal(await signIn(cloud.url, seeded.users[0]!.userPrincipalName, PASSWORD), 400, 'no hash yet');
  });

  test('after granting both rights the next poll syncs, without a restart', async () => {
    const { stdout } = await run(findBinary('ldbsearch') as string, ['-H', dc.samLdb, `(sAMAccountName=${SVC})`, 'objectSid']);
    const sid = /^objectSid: (S-[\d-]+)$/m.exec(stdout)?.[1];
    assert.ok(sid);
    for (const right of [RIGHT_GET_CHANGES, RIGHT_GET_CHANGES_ALL]) {
      await run(findBinary('samba-tool') as string, ['dsacl', 'set', `--objectdn=${dc.baseDn}`, `--sddl=(OA;;CR;${right};;${sid})`, '-H', dc.samLdb, `--configfile=${dc.smbConf}`]);
    }
    for (const u of seeded.users) await signsInWithin(cloud.url, u.userPrincipalName, PASSWORD, 90_000);
    await until('event 6402', () => events(6402)[0], 10_000);
    assert.equal(serve!.child.exitCode, null);
    const f = await doctor();
    assert.equal(f.status, 'ok', f.message);
  });
});
