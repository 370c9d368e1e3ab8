/**
 * Smart lockout: the policy on its own (fake clock, SQLite on disk), then over HTTP from several
 * loopback client addresses (127.0.0.x, bound with undici's localAddress; the server keys on the
 * socket's remote address, trustProxy off), across a restart, and against the real `idsync sync`.
 * Production thresholds throughout (10 failures, 60 s first lockout).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { Agent } from 'undici';
import { stringify } from 'yaml';
import { Lockout, lockoutMigrations, UNFAMILIAR, type Admission } from '../../../src/cloud/auth/lockout.js';
import type { CloudServer } from '../../../src/cloud/server.js';
import { orgIdHash } from '../../../src/passwords/hash.js';
import { SqliteStore } from '../../../src/cloud/store/sqlite.js';
import { openDatabase, type Database } from '../../../src/store/database.js';
import { startTestCloud, type TestCloud } from '../../helpers/cloud.js';
import { ADMIN_PASSWORD, accountToken, call, createAccount, createScimUser, fakeClock, sendHashes, start, tempDir, tokenRequest, type Res } from './helpers.js';

/** Runs one admission to its end with the given outcome (what the token endpoint does around a check). */
async function attempt(l: Lockout, name: string, ip: string, secret: string, outcome: 'success' | 'failure', stamp = 'stamp-1'): Promise<Admission['kind']> {
  const a = await l.begin({ name, ip, secret, credentialStamp: stamp });
  if (a.kind === 'check') await a.finish(outcome);
  return a.kind;
}

describe('lockout policy', () => {
  const tmp = tempDir();
  let db: Database;
  beforeEach(() => {
    db = openDatabase(path.join(tmp.dir, `lockout-${Math.random().toString(36).slice(2)}.db`), lockoutMigrations);
  });
  afterEach(() => db.close());
  after(() => tmp.cleanup());

  test('repeats of one wrong password do not count; different wrong passwords do', async () => {
    const clock = fakeClock(1_000_000);
    const l = await Lockout.open(new SqliteStore(db), {}, clock.now);
    const kinds = [];
    for (let i = 0; i < 20; i++) kinds.push(await attempt(l, 'u1', '10.0.0.1', 'same wrong', 'failure'));
    assert.deepEqual(kinds, ['check', ...Array<string>(19).fill('repeat')], 'checked once, then refused as a known wrong password');
    assert.equal((await l.state('u1', '10.0.0.1')).locked, false);
    for (let i = 0; i < 9; i++) assert.equal(await attempt(l, 'u1', '10.0.0.1', `wrong ${i}`, 'failure'), 'check');
    const state = await l.state('u1', '10.0.0.1');
    assert.ok(state.locked && state.until === clock.now() + 60_000, 'the 10th different wrong password locks for 60 s');
    assert.equal(await attempt(l, 'u1', '10.0.0.1', 'right', 'success'), 'locked', 'while locked nothing is checked');
  });

  test('only the last three wrong passwords are remembered, and only for the same stored credential', async () => {
    const l = await Lockout.open(new SqliteStore(db), {}, fakeClock(2_000_000).now);
    for (const p of ['a', 'b', 'c', 'd']) await attempt(l, 'u2', '10.0.0.1', p, 'failure');
    assert.equal(await attempt(l, 'u2', '10.0.0.1', 'd', 'failure'), 'repeat');
    assert.equal(await attempt(l, 'u2', '10.0.0.1', 'b', 'failure'), 'repeat');
    assert.equal(await attempt(l, 'u2', '10.0.0.1', 'a', 'failure'), 'check', 'a fell out of the last three');
    assert.equal(await attempt(l, 'u2', '10.0.0.1', 'c', 'success', 'stamp-2'), 'check', 'a password tried before it was set is checked once it is set');
    const stored = db.prepare('SELECT digest FROM signin_bad_password').pluck().all() as Buffer[];
    assert.ok(stored.length <= 3 && stored.every((d) => !d.toString('latin1').includes('wrong') && d.length === 32), 'only 32-byte keyed digests are kept');
  });

  test('a familiar address keeps its own counter; strangers share one; lockouts double up to the cap', async () => {
    const clock = fakeClock(3_000_000);
    const l = await Lockout.open(new SqliteStore(db), { maxLockoutMs: 200_000 }, clock.now);
    assert.equal(await attempt(l, 'svc', '10.0.0.1', 'right', 'success'), 'check');
    const lockStrangers = async (round: number) => {
      for (let i = 0; i < 10; i++) await attempt(l, 'svc', `192.0.2.${i}`, `guess ${round}-${i}`, 'failure');
    };
    await lockStrangers(1);
    const s1 = await l.state('svc', '198.51.100.7');
    assert.ok(s1.locked && s1.counter === UNFAMILIAR && s1.until === clock.now() + 60_000, 'every unfamiliar address is locked');
    assert.equal((await l.state('svc', '10.0.0.1')).locked, false, 'the familiar address is not');
    assert.equal(await attempt(l, 'svc', '10.0.0.1', 'right', 'success'), 'check');
    clock.advance(60_000);
    await lockStrangers(2);
    const s2 = await l.state('svc', '192.0.2.1');
    assert.ok(s2.locked && s2.until === clock.now() + 120_000, 'the second lockout is twice as long');
    clock.advance(120_000);
    await lockStrangers(3);
    const s3 = await l.state('svc', '192.0.2.1');
    assert.ok(s3.locked && s3.until === clock.now() + 200_000, 'capped');
  });

  test('the threshold holds under concurrency: checks are reserved before they are made', async () => {
    const l = await Lockout.open(new SqliteStore(db), {}, fakeClock(4_000_000).now);
    let checked = 0;
    // 200 different wrong passwords, all started at once; each check takes a few event-loop turns.
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const a = await l.begin({ name: 'u3', ip: '10.0.0.9', secret: `guess ${i}`, credentialStamp: 's' });
        if (a.kind !== 'check') return a.kind;
        checked++;
        await new Promise((r) => setTimeout(r, 5));
        await a.finish('failure');
        return a.kind;
      }),
    );
    assert.equal(checked, 10);
    assert.equal(outcomes.filter((k) => k === 'locked').length, 190);
  });

  test('the same wrong secret sent many times at once is checked once', async () => {
    const l = await Lockout.open(new SqliteStore(db), {}, fakeClock(4_500_000).now);
    let checked = 0;
    const kinds = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const a = await l.begin({ name: 'u5', ip: '10.0.0.5', secret: 'the old password', credentialStamp: 's' });
        if (a.kind !== 'check') return a.kind;
        checked++;
        await new Promise((r) => setTimeout(r, 5));
        await a.finish('failure');
        return a.kind;
      }),
    );
    assert.equal(checked, 1);
    assert.equal(kinds.filter((k) => k === 'repeat').length, 49);
    assert.equal((await l.state('u5', '10.0.0.5')).locked, false);
  });

  test('state persists across a reopen and stays bounded', async () => {
    const clock = fakeClock(5_000_000);
    const file = path.join(tmp.dir, 'persist.db');
    let pdb = openDatabase(file, lockoutMigrations);
    let l = await Lockout.open(new SqliteStore(pdb), { maxFamiliarAddresses: 5 }, clock.now);
    for (let i = 0; i < 30; i++) await attempt(l, 'u4', `10.1.0.${i}`, 'right', 'success');
    await attempt(l, 'u4', '10.9.9.9', 'old wrong', 'failure');
    pdb.close();
    pdb = openDatabase(file, lockoutMigrations);
    l = await Lockout.open(new SqliteStore(pdb), { maxFamiliarAddresses: 5 }, clock.now);
    assert.equal(pdb.prepare('SELECT count(*) FROM signin_familiar').pluck().get(), 5, 'the five most recent familiar addresses are kept');
    assert.equal(await attempt(l, 'u4', '10.9.9.9', 'old wrong', 'failure'), 'repeat', 'the remembered wrong password survived (same key)');
    clock.advance(3_600_001);
    assert.ok((await l.prune()) >= 2, 'the stale counter and digest are pruned');
    assert.equal(pdb.prepare('SELECT count(*) FROM signin_bad_password').pluck().get(), 0);
    clock.advance(30 * 86_400_000);
    (await l.prune());
    assert.equal(pdb.prepare('SELECT count(*) FROM signin_familiar').pluck().get(), 0, 'familiarity fades');
    pdb.close();
  });
});

describe('lockout state under a flood of names', () => {
  test('prune caps each table and keeps every lockout in force', async () => {
    const tmp = tempDir();
    const db = openDatabase(path.join(tmp.dir, 'flood.db'), lockoutMigrations);
    try {
      const clock = fakeClock(6_000_000);
      const l = await Lockout.open(new SqliteStore(db), { threshold: 2, maxRows: 50 }, clock.now);
      for (let i = 0; i < 2; i++) await attempt(l, 'victim', '10.0.0.1', `guess ${i}`, 'failure');
      assert.equal((await l.state('victim', '10.0.0.1')).locked, true);
      for (let i = 0; i < 200; i++) {
        clock.advance(1);
        await attempt(l, `sprayed-${i}`, '10.0.0.2', 'guess', 'failure');
        await attempt(l, `sprayed-${i}`, `10.0.1.${i % 250}`, 'right', 'success');
      }
      assert.ok((await l.prune()) > 0);
      for (const table of ['signin_lockout', 'signin_bad_password', 'signin_familiar']) {
        const n = db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
        assert.ok(n <= 51, `${table}: ${n} rows`);
      }
      assert.equal((await l.state('victim', '10.0.0.1')).locked, true, 'the lockout in force survived the cap');
    } finally {
      db.close();
      tmp.cleanup();
    }
  });
});

describe('lockout over HTTP', () => {
  const tmp = tempDir();
  const clock = fakeClock();
  const agents = new Map<number, Agent>();
  /** A client bound to 127.0.0.<n> (the loopback network answers on all of 127/8). */
  const from = (n: number): Agent => {
    let a = agents.get(n);
    if (!a) agents.set(n, (a = new Agent({ localAddress: `127.0.0.${n}` })));
    return a;
  };
  let server: CloudServer;

  before(async () => {
    server = await start(tmp.dir, { now: clock.now });
    const admin = await accountToken(server);
    await createAccount(server, admin, 'sync-acct', 'Sync-password-1');
    await createScimUser(server, admin, { userName: 'gina@example.com', externalId: 'ext-gina' });
    await sendHashes(server, admin, [{ externalId: 'ext-gina', hash: await orgIdHash('Gina password') }]);
  });
  after(async () => {
    await server.close();
    await Promise.all([...agents.values()].map((a) => a.close()));
    tmp.cleanup();
  });

  const signIn = (username: string, password: string, n = 1) => tokenRequest(server, { grant_type: 'password', username, password }, { dispatcher: from(n) });
  const auditOf = async (subject: string) => {
    const admin = await accountToken(server);
    const res = await call(server, 'GET', '/admin/v1/audit?limit=10000', { token: admin });
    return (res.body.records as { subject?: string; reason: string; ip: string; result: string; details?: Record<string, unknown> }[]).filter((r) => r.subject === subject);
  };
  const assertLocked = (res: Res) => {
    assert.equal(res.status, 400, res.text);
    const n = Number(res.headers['retry-after']);
    assert.ok(Number.isInteger(n) && n > 0 && n <= 60, `Retry-After: ${String(res.headers['retry-after'])}`);
    assert.equal(
      res.text,
      JSON.stringify({
        error: 'invalid_grant',
        error_description: `The account is locked for ${n} s after too many failed sign-ins; the password was not checked.`,
        error_codes: [50053],
        lockout: { remaining_seconds: n },
      }),
    );
    return n;
  };

  test('10 repeats of one wrong password do not lock; the right one then works', async () => {
    for (let i = 0; i < 10; i++) assert.deepEqual((await signIn('sync-acct', 'Old-password-1', 3)).body, { error: 'invalid_grant', error_description: 'the user name or password is incorrect' });
    assert.equal((await signIn('sync-acct', 'Sync-password-1', 3)).status, 200);
    const reasons = (await auditOf('sync-acct')).map((r) => r.reason);
    assert.deepEqual(reasons.slice(0, 11), ['success', ...Array<string>(9).fill('repeated_bad_secret'), 'bad_password']);
  });

  test('10 different wrong passwords lock; the answer names the lock and the time left, and is audited', async () => {
    for (let i = 0; i < 10; i++) assert.equal((await signIn('gina@example.com', `guess ${i}`, 4)).status, 400);
    const n = assertLocked(await signIn('gina@example.com', 'Gina password', 4));
    assert.equal(n, 60);
    clock.advance(15_000);
    assert.equal(assertLocked(await signIn('gina@example.com', 'Gina password', 5)), 45, 'another unfamiliar address shares the lock; the time counts down');
    const last = (await auditOf('gina@example.com'))[0]!;
    assert.equal(last.reason, 'locked_out');
    assert.deepEqual(last.details, { counter: 'unfamiliar', remainingSeconds: 45 });
    clock.advance(45_000);
    assert.equal((await signIn('gina@example.com', 'Gina password', 5)).status, 200, 'the lockout ends');
  });

  test('the right password from a familiar address works while unfamiliar addresses are locked', async () => {
    assert.equal((await signIn('sync-acct', 'Sync-password-1', 6)).status, 200, '127.0.0.6 becomes familiar');
    for (let i = 0; i < 10; i++) await signIn('sync-acct', `attacker guess ${i}`, 10 + i);
    assertLocked(await signIn('sync-acct', 'Sync-password-1', 7));
    assert.equal((await signIn('sync-acct', 'Sync-password-1', 6)).status, 200, 'the familiar address is not locked');
    // Client credentials are covered the same way, with the same locked answer.
    for (let i = 0; i < 10; i++) await tokenRequest(server, { grant_type: 'client_credentials', client_id: 'no-such-client', client_secret: `s${i}` }, { dispatcher: from(8) });
    assertLocked(await tokenRequest(server, { grant_type: 'client_credentials', client_id: 'no-such-client', client_secret: 'x' }, { dispatcher: from(8) }));
  });

  test('KB 2962509: a service retrying the old password after a change cannot lock the account; the new one works at once', async () => {
    const admin = await accountToken(server);
    await createAccount(server, admin, 'sync-kb', 'Kb-password-old-1');
    assert.equal((await signIn('sync-kb', 'Kb-password-old-1', 40)).status, 200, 'the service works from 127.0.0.40');
    const changed = await call(server, 'PATCH', '/admin/v1/accounts/sync-kb', { token: admin, json: { password: 'Kb-password-new-1' } });
    assert.equal(changed.status, 200, changed.text);
    // The service (two processes on its host) and a doctor elsewhere keep presenting the old password.
    for (let i = 0; i < 30; i++) {
      const res = await signIn('sync-kb', 'Kb-password-old-1', i % 3 === 2 ? 41 : 40);
      assert.equal(res.body.error_description, 'the user name or password is incorrect', `attempt ${i}`);
    }
    assert.equal((await signIn('sync-kb', 'Kb-password-new-1', 40)).status, 200, 'the admin\'s new password works the first time');
    const failed = (await auditOf('sync-kb')).filter((r) => r.reason === 'bad_password');
    assert.equal(failed.length, 1, 'the old password was checked and counted once, from whichever address');
  });

  test('1,000 wrong guesses sent 50 at a time from one address: at most the threshold is checked', async () => {
    const admin = await accountToken(server);
    await createAccount(server, admin, 'target', 'Target-password-1');
    let next = 0;
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < 1000) {
          const i = next++;
          statuses.push((await signIn('target', `guess number ${i}`, 20)).status);
        }
      }),
    );
    assert.equal(statuses.length, 1000);
    assert.ok(statuses.every((s) => s === 400));
    const records = await auditOf('target');
    const checked = records.filter((r) => r.reason === 'bad_password' || r.reason === 'unknown_user');
    assert.equal(checked.length, 10, 'exactly the threshold was checked');
    assert.equal(records.filter((r) => r.reason === 'locked_out').length, 990);
  });

  test('the lockout and the familiar addresses survive a restart', async () => {
    await server.close();
    server = await start(tmp.dir, { now: clock.now });
    assertLocked(await signIn('sync-acct', 'Sync-password-1', 7));
    assert.equal((await signIn('sync-acct', 'Sync-password-1', 6)).status, 200);
    assert.equal((await signIn('admin', ADMIN_PASSWORD)).status, 200);
  });
});

describe('strangers cannot lock out `idsync sync` at its usual address', () => {
  const root = path.resolve(import.meta.dirname, '../../..');
  const runner = path.join(root, 'test/helpers/idsync-main.ts');
  let cloud: TestCloud;
  let dir: string;
  const agents: Agent[] = [];

  const idsync = (args: string[], input = ''): Promise<{ status: number | null; out: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', runner, '-c', path.join(dir, 'idsync.yaml'), ...args], { cwd: root, env: { ...process.env, IDSYNC_CONFIG: '' } });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stdin.end(input);
      child.on('close', (status) => resolve({ status, out }));
    });

  before(async () => {
    cloud = await startTestCloud(); // production lockout defaults
    dir = mkdtempSync(path.join(tmpdir(), 'idsync-lockout-sync-'));
    writeFileSync(path.join(dir, 'source.ldif'), 'dn: uid=ann,ou=people,dc=lab,dc=test\nobjectClass: inetOrgPerson\nentryUUID: 0b5e6c1e-0000-4000-8000-00000000a001\nuid: ann\ncn: Ann\nsn: A\nmail: ann@lab.test\n');
    writeFileSync(
      path.join(dir, 'idsync.yaml'),
      stringify({
        dataDir: './data',
        connectors: [{ name: 'hr', type: 'ldif', path: './source.ldif' }],
        cloud: { url: cloud.url, auth: { type: 'client_credentials', clientId: cloud.syncClientId }, retries: 1 },
      }),
    );
    const set = await idsync(['credentials', 'set', 'cloud', '--no-validate'], cloud.syncSecret + '\n');
    assert.equal(set.status, 0, set.out);
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await cloud?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('failures for the sync client from 20 unfamiliar addresses do not stop it', async () => {
    const first = await idsync(['sync']);
    assert.equal(first.status, 0, first.out);
    let last: Res | undefined;
    for (let n = 30; n < 50; n++) {
      const agent = new Agent({ localAddress: `127.0.0.${n}` });
      agents.push(agent);
      for (let i = 0; i < 3; i++) {
        last = await tokenRequest(cloud, { grant_type: 'client_credentials', client_id: cloud.syncClientId, client_secret: `stolen-guess-${n}-${i}` }, { dispatcher: agent });
      }
    }
    assert.equal(last!.status, 400);
    assert.deepEqual(last!.body.error_codes, [50053], 'the strangers are locked out');
    writeFileSync(path.join(dir, 'source.ldif'), '\ndn: uid=bob,ou=people,dc=lab,dc=test\nobjectClass: inetOrgPerson\nentryUUID: 0b5e6c1e-0000-4000-8000-00000000b002\nuid: bob\ncn: Bob\nsn: B\nmail: bob@lab.test\n', { flag: 'a' });
    const again = await idsync(['sync']);
    assert.equal(again.status, 0, again.out);
    assert.doesNotMatch(again.out, /CLOUD_AUTH_FAILED|account is locked/);
    const users = await cloud.all<{ userName: string }>('Users');
    assert.ok(users.some((u) => u.userName.startsWith('bob')), JSON.stringify(users.map((u) => u.userName)));
  });
});
