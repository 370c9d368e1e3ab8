/**
 * Issue 9: the short chaos round CI runs (bench/chaos-trials.ts, the same code as `npm run chaos`):
 * one SIGKILL trial of each kind (`idsync sync`, `idsync serve` with password changes in flight,
 * `idsync cloud serve` mid-export), each followed by recovery and a
 * full verification through SCIM and sign-in against OpenLDAP — and a check that the verification
 * itself sees a lost user, a stale user, a lost or extra group member, a password that did not
 * arrive, a duplicate, and a leaked secret, so a clean round means something.
 *
 * The seed is random per run and printed; replay a failure with `npm run chaos -- --seed S`.
 * IDSYNC_CHAOS_SEED pins it.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Sqlite } from '../../src/store/sqlite-driver.js';
import { ChaosWorld, KINDS, prng, runChaos } from '../../bench/chaos-trials.js';
import { skipUnless } from '../helpers/integration.js';
import { idsync } from '../helpers/processes.js';

const seed = process.env.IDSYNC_CHAOS_SEED ? Number(process.env.IDSYNC_CHAOS_SEED) : randomInt(2 ** 31);

describe('e2e: chaos round (SIGKILL trials with full verification)', { skip: skipUnless('slapd') }, () => {
  test(`a trial of each kind loses, duplicates and leaks nothing (seed ${seed})`, { timeout: 240_000 }, async () => {
    const lines: string[] = [];
    // One trial of each kind, in an order that depends on the seed.
    const kinds = [...KINDS.slice(seed % KINDS.length), ...KINDS.slice(0, seed % KINDS.length)];
    const report = await runChaos({ trials: kinds.length, seed, kinds: KINDS, sequence: kinds, users: 24, groups: 3, log: (l) => lines.push(l) });
    const trials = report.trials;
    console.log(`# chaos seed ${seed}:\n${lines.map((l) => `#   ${l}`).join('\n')}`);
    assert.deepEqual(
      trials.map((t) => t.kind),
      kinds,
    );
    for (const t of trials) {
      assert.deepEqual(t.lost, [], `trial ${t.kind}: nothing lost`);
      assert.deepEqual(t.duplicated, [], `trial ${t.kind}: nothing duplicated`);
      assert.deepEqual(t.problems, [], `trial ${t.kind}: no other difference`);
      // The verification covered a real directory: the trials delete random users but never take
      // the world below 9 (bench/chaos-trials.ts deleteUser). (It said 20: seed 624261576 ends a
      // clean trial with 19 users, and failed with nothing lost.)
      assert.ok(t.users >= 9, `trial ${t.kind} verified ${t.users} users`);
    }
  });
});

describe('e2e: the chaos verification sees what it must', { skip: skipUnless('slapd') }, () => {
  let world: ChaosWorld;

  before(async () => {
    world = new ChaosWorld(prng(seed), () => undefined);
    await world.start(20, 2);
  });
  after(async () => {
    await world?.close();
  });

  test('a clean world verifies clean', async () => {
    const v = await world.verify();
    assert.deepEqual([v.lost, v.duplicated, v.problems], [[], [], []]);
  });

  test('changes in the source that never reached the cloud: a password, a deletion, group members', async () => {
    await world.sourceOnly('password', 'u3');
    await world.sourceOnly('delete', 'u4');
    // Group contents are random (seeded): pick a user outside g0 to add, and one inside g1 to remove.
    const outsideG0 = [...world.users.keys()].find((u) => !world.groups.get('g0')!.has(u))!;
    await world.sourceOnly('member-add', outsideG0, 'g0');
    const inG1 = [...world.groups.get('g1')!].find((m) => m !== 'u0');
    const outsideG1 = [...world.users.keys()].find((u) => !world.groups.get('g1')!.has(u))!;
    if (inG1) await world.sourceOnly('member-remove', inG1, 'g1');
    else await world.sourceOnly('member-add', outsideG1, 'g1');
    const v = await world.verify();
    assert.ok(v.lost.includes('password of u3: latest password refused'), JSON.stringify(v.lost));
    assert.ok(v.lost.includes('group g0: 1 member(s) missing'), JSON.stringify(v.lost));
    assert.ok(v.problems.includes('stale user u4@lab.test (deleted in the source, still in the cloud)'), JSON.stringify(v.problems));
    assert.ok(v.problems.includes('u3: a replaced password still works'), JSON.stringify(v.problems));
    // The refused password explains itself: which password the cloud holds, and that nothing waits
    // for it in the outbox (it never reached idsync) — without naming a password or a hash.
    const u3 = world.users.get('u3')!;
    assert.ok(v.explained.some((l) => /^u3 \(anchor [^)]+\): latest password written at [\d:.]+ in trial 0; 2 password\(s\) in all; sign-in answered HTTP 4\d\d/.test(l)), v.explained.join('\n'));
    assert.ok(v.explained.some((l) => /^cloud: stored hash is password 1 of 2 \(1 change\(s\) before the latest\), written to the directory at [\d:.]+ in trial 0; its change time/.test(l)), v.explained.join('\n'));
    assert.ok(v.explained.includes('idsync: outbox holds nothing for the user'), v.explained.join('\n'));
    for (const c of u3.history) assert.ok(!v.explained.join('\n').includes(c.password), 'no password in the explanation');
    // u4 left its groups too, so g1 may have one more member too many.
    assert.ok(inG1 ? v.problems.some((p) => /^group g1: [12] member\(s\) too many$/.test(p)) : v.lost.includes('group g1: 1 member(s) missing'), JSON.stringify(v));
  });

  test('a user gone from the cloud is lost; a second user with the same externalId is a duplicate or refused', async () => {
    const users = (await world.adminScim('GET', '/Users?filter=userName%20eq%20%22u7@lab.test%22')).body as { Resources: { id: string; externalId: string }[] };
    const u7 = users.Resources[0]!;
    assert.equal((await world.adminScim('DELETE', `/Users/${u7.id}`)).status, 204);
    const u8 = ((await world.adminScim('GET', '/Users?filter=userName%20eq%20%22u8@lab.test%22')).body as { Resources: { externalId: string }[] }).Resources[0]!;
    const dup = await world.adminScim('POST', '/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'u8-copy@lab.test', externalId: u8.externalId });
    const v = await world.verify();
    assert.ok(v.lost.includes('user u7'), JSON.stringify(v.lost));
    if (dup.status === 201) assert.ok(v.duplicated.includes('user u8 ×2 (externalId)'), JSON.stringify(v.duplicated));
    else assert.equal(dup.status, 409, 'the cloud refuses a second user with the same externalId');
  });

  test('a secret written into a data folder is found', async () => {
    const password = world.users.get('u9')!.password;
    writeFileSync(path.join(world.dir, 'data', 'leak.log'), Buffer.from(`oops ${password}`, 'utf16le'));
    const v = await world.verify();
    assert.ok(
      v.problems.some((p) => /secrets found:\n {2}password of u9 \(UTF-16LE\) in .*leak\.log/.test(p) && !p.includes(password)),
      JSON.stringify(v.problems),
    );
  });
});

/**
 * The one unexplained chaos failure (seed 778493644, trial 3, kind cloud: "u29 latest password
 * refused" and "a replaced password still works"), made deterministic: the cloud is killed while a
 * password change waits for it, so idsync parks the change for a backoff; the cloud restarts and
 * `idsync sync` succeeds before the backoff ran out. That run must deliver the change (it left it
 * queued: the newest password did not sign in). In the chaos round the backoff was the first one
 * (0.5–1 s) and only a quiet machine restarted the cloud faster; here more attempts against the
 * dead cloud make it 16–30 s, so no machine is fast or slow enough to change the outcome.
 */
describe('e2e: the run after a cloud restart delivers the password change that waited for the cloud', { skip: skipUnless('slapd') }, () => {
  let world: ChaosWorld;

  before(async () => {
    world = new ChaosWorld(prng(778493644), () => undefined);
    await world.start(12, 1);
  });
  after(async () => {
    await world?.close();
  });

  test('cloud SIGKILLed, the change parked for its backoff, cloud restarted, `idsync sync` → the newest password signs in', { timeout: 240_000 }, async () => {
    await world.sourceOnly('password', 'u5');
    world.cloud!.child.kill('SIGKILL');
    await world.cloud!.exited;
    const failed = await idsync(['-c', world.config, 'sync']);
    assert.notEqual(failed.code, 0, 'the sync meets the dead cloud');
    const anchor = (await world.sourceUuid('u5'))!;
    const parked = () => {
      const db = new Sqlite(path.join(world.dir, 'data', 'idsync.db'), { readonly: true, fileMustExist: true });
      try {
        return db.prepare('SELECT attempts, next_attempt_at, last_error FROM phs_users WHERE anchor = ? AND next_attempt_at IS NOT NULL').get(anchor) as { attempts: number; next_attempt_at: number; last_error: string } | undefined;
      } finally {
        db.close();
      }
    };
    // Each attempt against the dead cloud doubles the wait: deliver (once it is due) until the wait is 16–30 s.
    for (let i = 0; i < 12 && (parked()?.next_attempt_at ?? Infinity) - Date.now() < 12_000; i++) {
      await sleep(Math.max(0, parked()!.next_attempt_at - Date.now()) + 50);
      await idsync(['-c', world.config, 'passwords', 'deliver']);
    }
    const row = parked();
    assert.ok(row, 'the change waits in the outbox');
    assert.equal(row.last_error, 'CLOUD_UNREACHABLE');
    assert.ok(row.next_attempt_at - Date.now() > 8_000, `the change is parked well beyond the restart (${row.attempts} attempts, due in ${row.next_attempt_at - Date.now()} ms)`);

    await world.startCloud();
    const recovery = await idsync(['-c', world.config, 'sync']);
    assert.equal(recovery.code, 0, recovery.out.slice(-2000));
    const v = await world.verify();
    assert.deepEqual([v.lost, v.duplicated, v.problems], [[], [], []], v.explained.join('\n'));
  });
});
