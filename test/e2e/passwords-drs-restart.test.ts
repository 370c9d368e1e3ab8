/**
 * Issue 12, what the shared DC of a test run cannot show: a DC that dies and comes back, a DC whose
 * database goes back in time, a replication state that cannot be used, and a password set on a
 * user idsync has not imported yet. Real processes: a PRIVATE Samba AD DC (ldap, kdc, rpc) on
 * 127.0.0.2, next to the runner's shared one on 127.0.0.1 (test/helpers/samba.ts `host`), so this
 * file can kill, restart and restore it; `idsync serve` with `passwords: { source: drs }`; the
 * cloud directory (smart lockout on, as in production: the test reads the cloud's store instead
 * of trying passwords that do not work yet).
 *
 * Every delivery is a `Success` row in phs_status, so "nothing lost, nothing duplicated" is
 * counted per user: exactly one delivery per user and per password change.
 */
import assert from 'node:assert/strict';
import { cpSync, lstatSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { checkServerIdentity } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { Attribute, Change, Client } from 'ldapts';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { openConfiguredStore } from '../helpers/store.js';
import type { Database } from '../../src/store/database.js';
import { adConnectorConfig, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { skipUnless } from '../helpers/integration.js';
import { idsync, setCredentials, spawnIdsync, stopProc, until, type Proc } from '../helpers/processes.js';
import { launchSambaDC, seedAdUsers, setPasswordChange, startSambaDC, type SambaDC, type SeededAd } from '../helpers/samba.js';

const HOST = '127.0.0.2';
const CONNECTOR = 'corp-ad';
const USERS = Number(process.env.IDSYNC_DRS_RESTART_USERS ?? 150);
const INITIAL = 'Initial-Restart-1!';

describe('e2e: source drs against a DC that restarts, rolls back and loses its state', { skip: skipUnless('samba') }, () => {
  let dcDir: string;
  let dc: SambaDC;
  let seeded: SeededAd;
  let cloud: TestCloud;
  let lab: EngineLab;
  let config: string;
  let serve: Proc | undefined;
  const anchors = new Map<string, string>(); // UPN → anchor (objectGUID, base64)

  const db = <T>(fn: (d: Database) => T): T => {
    const d = openConfiguredStore(lab.configFile);
    try {
      return fn(d);
    } finally {
      d.close();
    }
  };
  const events = (id: number): { message: string }[] => db((d) => d.prepare('SELECT message FROM events WHERE id = ? ORDER BY seq').all(id) as { message: string }[]);
  /** Deliveries (Success rows) per anchor. */
  const deliveries = (): Map<string, number> =>
    new Map(db((d) => d.prepare("SELECT anchor, count(*) AS n FROM phs_status WHERE status = 'Success' GROUP BY anchor").all() as { anchor: string; n: number }[]).map((r) => [r.anchor, r.n]));
  const drsState = (): { state: string; full_done_at: string | null } | undefined =>
    db((d) => d.prepare('SELECT state, full_done_at FROM phs_drs_state WHERE connector = ?').get(CONNECTOR) as { state: string; full_done_at: string | null } | undefined);

  const ldaps = async <T>(fn: (c: Client) => Promise<T>): Promise<T> => {
    const c = new Client({ url: dc.ldapsUrl, timeout: 60_000, tlsOptions: { ca: readFileSync(dc.caFile), checkServerIdentity: (_h, cert) => checkServerIdentity(dc.tlsServerName, cert) } });
    try {
      await c.bind(dc.adminUpn, dc.adminPassword);
      return await fn(c);
    } finally {
      await c.unbind();
    }
  };
  const setPassword = (dn: string, pw: string): Promise<void> =>
    ldaps((c) => c.modify(dn, setPasswordChange(pw)));
  const guidOf = (dn: string): Promise<string> =>
    ldaps(async (c) => {
      const { searchEntries } = await c.search(dn, { scope: 'base', attributes: ['objectGUID'], explicitBufferAttributes: ['objectGUID'] });
      return (searchEntries[0]?.objectGUID as Buffer).toString('base64');
    });
  const holds = (upn: string, pw: string): Promise<boolean> => cloud.holdsPassword(upn, pw);
  const startServe = async (): Promise<Proc> => {
    const p = spawnIdsync(['-c', config, 'serve', '--port', '0', '--interval', '1h']);
    await until('serve to listen', () => /listening on (\S+)/.exec(p.out.text)?.[1], 60_000);
    return p;
  };
  /** Two polls after now: whatever the DC held now has been read (the state row is saved per poll). */
  const twoPolls = async (): Promise<void> => {
    for (let i = 0; i < 2; i++) {
      const t = db((d) => (d.prepare('SELECT updated_at FROM phs_drs_state WHERE connector = ?').get(CONNECTOR) as { updated_at: string } | undefined)?.updated_at);
      await until('a DRS poll', () => db((d) => (d.prepare('SELECT updated_at FROM phs_drs_state WHERE connector = ?').get(CONNECTOR) as { updated_at: string } | undefined)?.updated_at) !== t, 60_000, 100);
    }
  };
  /** A sync cycle (retried while serve's own start-up cycle holds the run lock). */
  const syncCycle = async (): Promise<void> => {
    await until(
      'a sync cycle',
      async () => {
        const r = await idsync(['-c', config, 'sync', '--json']);
        if (r.code === 0) return true;
        assert.match(r.out, /RUN_IN_PROGRESS|in progress/, r.out);
        return undefined;
      },
      120_000,
      1000,
    );
  };

  before(async () => {
    dcDir = mkdtempSync(path.join(tmpdir(), 'idsync-samba-private-'));
    dc = await startSambaDC(path.join(dcDir, 'dc'), { services: ['ldap', 'kdc', 'rpc'], host: HOST });
    seeded = await seedAdUsers(dc, { ou: 'drsrestart', users: USERS, password: INITIAL });
    for (const u of seeded.users) anchors.set(u.userPrincipalName, await guidOf(u.dn));
    cloud = await startTestCloud();
    // cMaxObjects 10: the full pass takes many replies, so the DC can die in the middle of one
    const connector = adConnectorConfig(dc, seeded, { name: CONNECTOR, passwords: { source: 'drs', host: HOST, pollInterval: '1s', maxObjects: 10 } });
    lab = await startEngineLab({ prefix: 'idsync-e2e-drs-restart-', connectors: [connector], cloud, credentials: false });
    config = lab.configFile;
    await setCredentials(config, [
      [CONNECTOR, dc.adminPassword],
      ['cloud', cloud.syncSecret],
    ]);
    const r = await idsync(['-c', config, 'sync', '--json']);
    assert.equal(r.code, 0, r.out);
  });

  after(async () => {
    await stopProc(serve);
    await cloud?.close();
    await lab?.close();
    await dc?.stop();
    if (dcDir && process.env.IDSYNC_KEEP_TEST_DIRS !== '1') rmSync(dcDir, { recursive: true, force: true });
  });

  test('the DC is killed (kill -9) in the middle of the full pass and restarted: every user arrives exactly once, no second full pass', async () => {
    serve = await startServe();
    // the first pages are saved: the pass is under way
    await until('a page of the full pass saved', () => drsState() !== undefined, 120_000, 20);
    process.kill(dc.pid, 'SIGKILL');
    await dc.stop(); // reaps the process; the folder stays
    const mid = drsState();
    assert.ok(mid && mid.full_done_at === null, 'the DC died before the full pass completed');
    const delivered = deliveries().size;
    assert.ok(delivered < USERS, `not every user was delivered before the DC died (${delivered})`);
    await until('event 611 for the lost DC', () => events(611).length > 0, 60_000, 100);
    dc = await launchSambaDC(dc.dir, { host: HOST });
    await until('every user delivered', () => deliveries().size >= USERS, 300_000, 250);
    await until('event 6402 (recovered)', () => events(6402).length > 0, 30_000, 100);
    await twoPolls();
    for (const u of seeded.users) assert.ok(await holds(u.userPrincipalName, INITIAL), `${u.userPrincipalName} holds its password in the cloud`);
    const per = deliveries();
    const twice = seeded.users.filter((u) => per.get(anchors.get(u.userPrincipalName)!) !== 1).map((u) => `${u.sAMAccountName}=${per.get(anchors.get(u.userPrincipalName)!)}`);
    assert.deepEqual(twice, [], 'one delivery per user: the repeated replies after the restart queued nothing again');
    assert.equal(events(6400).length, 1, 'the saved state was resumed: no second full pass');
    assert.ok(drsState()?.full_done_at, 'the full pass completed after the restart');
    assert.equal(events(6401).length, 1, 'and said so');
  });

  test('a password changed right before the DC is killed arrives after the restart, once', async () => {
    const u = seeded.users[3]!;
    const anchor = anchors.get(u.userPrincipalName)!;
    const before = deliveries().get(anchor) ?? 0;
    await setPassword(u.dn, 'Before-Kill-2!');
    process.kill(dc.pid, 'SIGKILL');
    await dc.stop();
    dc = await launchSambaDC(dc.dir, { host: HOST });
    await until('the change made before the kill', () => holds(u.userPrincipalName, 'Before-Kill-2!'), 120_000, 250);
    await twoPolls();
    assert.equal(deliveries().get(anchor), before + 1, 'delivered exactly once');
    assert.equal(events(6400).length, 1, 'resumed from the saved state, no full pass');
  });

  test('the DC database goes back in time (a snapshot restored, same invocation ID): event 6403, a full pass, and the cloud follows the DC', async () => {
    const a = seeded.users[4]!;
    const b = seeded.users[5]!;
    // snapshot of the stopped DC's database
    await dc.stop();
    const snapshot = path.join(dcDir, 'snapshot');
    const noSockets = (p: string): boolean => !lstatSync(p).isSocket(); // ldapi and friends
    cpSync(path.join(dc.dir, 'private'), snapshot, { recursive: true, filter: noSockets });
    dc = await launchSambaDC(dc.dir, { host: HOST });
    await setPassword(a.dn, 'After-Snapshot-3!');
    await until('the change after the snapshot', () => holds(a.userPrincipalName, 'After-Snapshot-3!'), 120_000, 250);
    // back to the snapshot: the DC forgets that change and will hand out its USNs again
    await dc.stop();
    rmSync(path.join(dc.dir, 'private'), { recursive: true, force: true });
    cpSync(snapshot, path.join(dc.dir, 'private'), { recursive: true, filter: noSockets });
    const full0 = events(6400).length;
    const done0 = events(6401).length;
    dc = await launchSambaDC(dc.dir, { host: HOST });
    await until('event 6403 (USN rollback)', () => events(6403)[0], 120_000, 250);
    assert.match(events(6403)[0]!.message, /below the saved high-water mark/);
    await until('a full pass after the rollback', () => events(6401).length > done0, 120_000, 250);
    assert.equal(events(6400).length, full0 + 1);
    // the DC's truth is the snapshot's: a's old password again
    await until('a follows the restored DC', () => holds(a.userPrincipalName, INITIAL), 60_000, 250);
    // a change made now reuses USNs idsync had passed before the rollback; it must still arrive
    await setPassword(b.dn, 'After-Rollback-4!');
    await until('the change after the rollback', () => holds(b.userPrincipalName, 'After-Rollback-4!'), 60_000, 250);
  });

  test('an unreadable saved state: event 6403, a full pass; the change made meanwhile arrives, nothing else is sent again', async () => {
    assert.equal(await stopProc(serve), 0, serve?.out.text);
    serve = undefined;
    const rw = openConfiguredStore(lab.configFile, { write: true });
    try {
      rw.prepare("UPDATE phs_drs_state SET state = '{\"hwm\":[\"12\",\"0\"' WHERE connector = ?").run(CONNECTOR);
    } finally {
      rw.close();
    }
    const u = seeded.users[6]!;
    await setPassword(u.dn, 'While-Stopped-5!');
    const before = deliveries();
    const full0 = events(6401).length;
    serve = await startServe();
    await until('the change made while serve was stopped', () => holds(u.userPrincipalName, 'While-Stopped-5!'), 120_000, 250);
    await until('the full pass completed', () => events(6401).length > full0, 120_000, 250);
    assert.match(events(6403).at(-1)!.message, /unreadable/);
    const after = deliveries();
    const resent = [...after].filter(([anchor, n]) => anchor !== anchors.get(u.userPrincipalName) && n !== (before.get(anchor) ?? 0)).map(([a]) => a);
    assert.deepEqual(resent, [], 'the full pass queued only the hash that changed');
    assert.equal(after.get(anchors.get(u.userPrincipalName)!), (before.get(anchors.get(u.userPrincipalName)!) ?? 0) + 1);
  });

  test('a password set on a user created after the last import (a partial change) is delivered once the user is exported, without a full pass', async () => {
    // As ADUC does it: create the account disabled without a password, then set one, then enable.
    const sam = 'drsrestartnew';
    const dn = `CN=${sam},${seeded.ouDn}`;
    const upn = `${sam}@lab.test`;
    await ldaps((c) =>
      c.add(dn, {
        objectClass: ['top', 'person', 'organizationalPerson', 'user'],
        sAMAccountName: sam,
        userPrincipalName: upn,
        givenName: 'New',
        sn: 'User',
        userAccountControl: '546',
      }),
    );
    await twoPolls(); // the creation is read (a whole object, but no hash yet)
    const full0 = events(6400).length;
    await setPassword(dn, 'New-User-Pass-6!');
    await ldaps((c) => c.modify(dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'userAccountControl', values: ['512'] }) })));
    await twoPolls(); // the password change: only unicodePwd (and pwdLastSet) of an object not in the connector space
    const anchor = await guidOf(dn);
    const queued = db((d) => (d.prepare('SELECT count(*) AS n FROM phs_users WHERE anchor = ? AND next_attempt_at IS NOT NULL').get(anchor) as { n: number }).n);
    assert.equal(queued, 1, 'the hash waits in the outbox for the user');
    await syncCycle(); // exports the new user; its waiting hash follows
    await until('the new user holds its password', () => holds(upn, 'New-User-Pass-6!'), 120_000, 250);
    assert.equal(events(6400).length, full0, 'no full pass was needed');
  });
});
