/** Smart lockout: the policy in isolation, then over HTTP from two client addresses and across a restart. */
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { Agent } from 'undici';
import { Lockout, lockoutMigrations } from '../../../src/cloud/auth/lockout.js';
import type { CloudServer } from '../../../src/cloud/server.js';
import { orgIdHash } from '../../../src/passwords/hash.js';
import { openDatabase, type Database } from '../../../src/store/database.js';
import { accountToken, call, createScimUser, fakeClock, sendHashes, start, tempDir, tokenRequest } from './helpers.js';

describe('lockout policy', () => {
  let db: Database;
  beforeEach(() => {
    db = openDatabase(':memory:', lockoutMigrations);
  });
  afterEach(() => db.close());

  test('locks an address after N failures, for a duration that doubles up to the cap', () => {
    const clock = fakeClock(1_000_000);
    const l = new Lockout(db, { threshold: 3, lockoutMs: 60_000, maxLockoutMs: 200_000, globalThreshold: 1000 }, clock.now);
    const fail3 = () => [1, 2, 3].map(() => l.recordFailure('u1', '10.0.0.1'));
    let states = fail3();
    assert.equal(states[1]!.locked, false);
    assert.deepEqual(states[2], { locked: true, scope: 'address', until: clock.now() + 60_000 });
    assert.equal(l.check('U1', '10.0.0.1').locked, true, 'names are case-insensitive');
    clock.advance(60_000);
    assert.equal(l.check('u1', '10.0.0.1').locked, false, 'the lockout ends');
    states = fail3();
    assert.deepEqual(states[2], { locked: true, scope: 'address', until: clock.now() + 120_000 }, 'doubled');
    clock.advance(120_000);
    states = fail3();
    assert.deepEqual(states[2], { locked: true, scope: 'address', until: clock.now() + 200_000 }, 'capped');
  });

  test('another address is not locked; a success clears only its own address', () => {
    const clock = fakeClock(5_000_000);
    const l = new Lockout(db, { threshold: 2, globalThreshold: 1000 }, clock.now);
    l.recordFailure('u2', '10.0.0.1');
    l.recordFailure('u2', '10.0.0.1');
    assert.equal(l.check('u2', '10.0.0.1').locked, true);
    assert.equal(l.check('u2', '10.0.0.2').locked, false);
    l.recordFailure('u2', '10.0.0.2');
    l.recordSuccess('u2', '10.0.0.2');
    l.recordFailure('u2', '10.0.0.2');
    assert.equal(l.check('u2', '10.0.0.2').locked, false, 'the success reset the counter of 10.0.0.2');
    assert.equal(l.check('u2', '10.0.0.1').locked, true, 'but not the lockout of 10.0.0.1');
  });

  test('failures from many addresses lock the name everywhere, briefly and for a fixed time', () => {
    const clock = fakeClock(9_000_000);
    const l = new Lockout(db, { threshold: 100, globalThreshold: 4, globalLockoutMs: 30_000 }, clock.now);
    for (let i = 1; i <= 3; i++) assert.equal(l.recordFailure('u3', `10.0.1.${i}`).locked, false);
    assert.deepEqual(l.recordFailure('u3', '10.0.1.4'), { locked: true, scope: 'global', until: clock.now() + 30_000 });
    assert.equal(l.check('u3', '192.168.0.1').locked, true);
    clock.advance(30_000);
    assert.equal(l.check('u3', '192.168.0.1').locked, false, 'the global lockout is short');
    for (let i = 1; i <= 4; i++) l.recordFailure('u3', `10.0.2.${i}`);
    const again = l.check('u3', '192.168.0.1');
    assert.ok(again.locked && again.until === clock.now() + 30_000, 'and does not grow');
  });

  test('failures outside the window stop counting', () => {
    const clock = fakeClock(20_000_000);
    const l = new Lockout(db, { threshold: 3, failureWindowMs: 10_000, globalThreshold: 1000 }, clock.now);
    l.recordFailure('u4', '10.0.0.1');
    l.recordFailure('u4', '10.0.0.1');
    clock.advance(10_001);
    assert.equal(l.recordFailure('u4', '10.0.0.1').locked, false);
    assert.equal(l.prune(), 0, 'a live counter is kept');
    clock.advance(10_001);
    assert.equal(l.prune(), 2, 'stale counters (address and all-addresses) are pruned');
  });
});

describe('lockout over HTTP', () => {
  const tmp = tempDir();
  const clock = fakeClock();
  const policy = { threshold: 3, lockoutMs: 60_000, globalThreshold: 50 };
  // Two client addresses on the loopback network: 127.0.0.1 (default) and 127.0.0.2.
  const other = new Agent({ localAddress: '127.0.0.2' });
  let server: CloudServer;

  before(async () => {
    server = await start(tmp.dir, { now: clock.now, lockout: policy });
    const admin = await accountToken(server);
    await createScimUser(server, admin, { userName: 'gina@example.com', externalId: 'ext-gina' });
    await sendHashes(server, admin, [{ externalId: 'ext-gina', hash: await orgIdHash('Gina password') }]);
  });
  after(async () => {
    await server.close();
    await other.close();
    tmp.cleanup();
  });

  const signIn = (password: string, dispatcher?: Agent) =>
    tokenRequest(server, { grant_type: 'password', username: 'gina@example.com', password }, dispatcher ? { dispatcher } : {});

  test('a locked address is refused even with the right password; another address still signs in', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await signIn('guess ' + i)).status, 400);
    const locked = await signIn('Gina password');
    assert.equal(locked.status, 400);
    assert.deepEqual(locked.body, { error: 'invalid_grant', error_description: 'the user name or password is incorrect' }, 'a lockout looks like any failure');
    const elsewhere = await signIn('Gina password', other);
    assert.equal(elsewhere.status, 200, 'the user signs in from 127.0.0.2');

    const admin = await accountToken(server, 'admin', 'admin-password-0123');
    const audit = await call(server, 'GET', '/admin/v1/audit?type=signin', { token: admin });
    const last = audit.body.records.filter((r: { subject: string }) => r.subject === 'gina@example.com');
    assert.equal(last[0].ip, '127.0.0.2');
    assert.equal(last[0].result, 'success');
    assert.equal(last[1].ip, '127.0.0.1');
    assert.equal(last[1].reason, 'locked_out');
  });

  test('the lockout survives a restart and ends after its duration', async () => {
    await server.close();
    server = await start(tmp.dir, { now: clock.now, lockout: policy });
    assert.equal((await signIn('Gina password')).status, 400, 'still locked after the restart');
    clock.advance(60_001);
    assert.equal((await signIn('Gina password')).status, 200, 'unlocked after 60 s');
  });

  test('the lockout applies to cloud accounts and unknown names alike', async () => {
    for (const username of ['admin', 'no-such-user']) {
      for (let i = 0; i < 3; i++) await tokenRequest(server, { grant_type: 'password', username, password: 'wrong-' + i });
      const res = await tokenRequest(server, { grant_type: 'password', username, password: 'admin-password-0123' });
      assert.equal(res.status, 400, `${username} is locked from this address`);
    }
    assert.equal((await tokenRequest(server, { grant_type: 'password', username: 'admin', password: 'admin-password-0123' }, { dispatcher: other })).status, 200);
  });
});
