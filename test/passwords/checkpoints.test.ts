/**
 * The intake's WAL checkpoints run on a worker thread (src/passwords/checkpoints.ts), not inside the
 * intake's commits on the main thread: real pipeline, real idsync.db on disk, a second connection to
 * check what is in the file.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventLog } from '../../src/events/log.js';
import { ntHash, verifyOrgIdHash } from '../../src/passwords/hash.js';
import { PasswordKeys } from '../../src/passwords/keys.js';
import { Outbox } from '../../src/passwords/outbox.js';
import { CHECKPOINT_TARGET_FACTOR, FIRST_CHECKPOINT_ROWS, IntakeCheckpoints, WAL_RESTART_FACTOR } from '../../src/passwords/checkpoints.js';
import { PasswordPipeline } from '../../src/passwords/pipeline.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { walFrames } from '../helpers/wal.js';
import { addUser, makeEnv, MIGRATIONS, type Env } from './sources/fixtures.js';

const offline = (): never => {
  throw new Error('offline: these tests never deliver');
};

describe('password intake: WAL checkpoints off the event loop', () => {
  let env: Env;
  before(() => {
    env = makeEnv();
  });
  after(() => env.cleanup());

  /** A connection of its own to a file of its own (tests that watch its setting), closed afterwards. */
  async function withOwnConnection(name: string, fn: (db: Database, auto: () => unknown) => Promise<void>): Promise<void> {
    const db = openDatabase(`${env.dbFile}-${name}.db`, MIGRATIONS);
    try {
      await fn(db, () => db.pragma('wal_autocheckpoint', { simple: true }));
    } finally {
      db.close();
    }
  }

  it('the import path and the notification path are checkpointed by the worker; the connection has its own setting again once it stops', async () => {
    // Read before the pipeline exists (a pipeline that changed it on creation, as one did by
    // preparing its PRAGMA statements, would otherwise compare the changed value with itself).
    const autoBefore = env.db.pragma('wal_autocheckpoint', { simple: true });
    assert.equal(autoBefore, 1000, "SQLite's default");
    const p = new PasswordPipeline({ db: env.db, cloud: offline, events: new EventLog(env.db), key: env.key });
    assert.equal(env.db.pragma('wal_autocheckpoint', { simple: true }), autoBefore, 'a pipeline that has not written changes nothing');
    // 1,200 users through the import path: several thousand WAL pages, past SQLite's 1,000.
    const page = await Promise.all(Array.from({ length: 1200 }, async (_, i) => ({ anchor: `ckpt-${i}`, nt: await ntHash(`Ckpt-${i}-Passw0rd!`) })));
    assert.equal(await p.observeNtHashes('ldap', page), 1200);
    // And single changes through the coalescing writer.
    const users = Array.from({ length: 300 }, (_, i) => addUser(env.db, { sam: `ckpt-pcn-${i}`, anchor: `ckpt-pcn-${i}` }));
    await Promise.all(users.map((u, i) => p.acceptPassword(u.sam, `Pcn-${i}-Passw0rd!`)));
    for (let waited = 0; p.intakeStats().checkpoints === 0 && waited < 60_000; waited += 50) await sleep(50);
    assert.ok(p.intakeStats().checkpoints > 0, 'the worker ran checkpoints');
    // While the worker runs, commits checkpoint only beyond where the intake starts the WAL over.
    const whileWorker = (WAL_RESTART_FACTOR + 1) * CHECKPOINT_TARGET_FACTOR * 1000;
    assert.equal(env.db.pragma('wal_autocheckpoint', { simple: true }), whileWorker, 'while the worker runs');
    // A schema change makes SQLite prepare statements again; the setting must not follow it.
    env.db.exec('CREATE TABLE checkpoint_test_schema_change (x)');
    await p.acceptPassword(users[0]!.sam, 'After-Schema-Change-1!');
    assert.equal(env.db.pragma('wal_autocheckpoint', { simple: true }), whileWorker, 'while the worker runs, after a schema change');
    await p.stop();
    assert.equal(env.db.pragma('wal_autocheckpoint', { simple: true }), autoBefore, "the connection's automatic checkpoint is its own again");

    // What the worker checkpointed is in the main file: with the WAL fully checkpointed (by this
    // connection now) and truncated, a fresh connection reads every change.
    env.db.pragma('wal_checkpoint(TRUNCATE)');
    assert.equal(statSync(`${env.dbFile}-wal`).size, 0);
    const other = openDatabase(env.dbFile, MIGRATIONS);
    try {
      const queued = new Map(new Outbox(other, new PasswordKeys(env.key)).due(100_000, new Set()).map((i) => [i.anchor, i.hash]));
      for (const i of [0, 599, 1199]) assert.ok(await verifyOrgIdHash(`Ckpt-${i}-Passw0rd!`, queued.get(`ckpt-${i}`)!), `import user ${i}`);
      for (const i of [1, 299]) assert.ok(await verifyOrgIdHash(`Pcn-${i}-Passw0rd!`, queued.get(`ckpt-pcn-${i}`)!), `notified user ${i}`);
      assert.ok(await verifyOrgIdHash('After-Schema-Change-1!', queued.get('ckpt-pcn-0')!), 'the change after the schema change');
      assert.equal(other.prepare('PRAGMA integrity_check').pluck().get(), 'ok');
    } finally {
      other.close();
    }
  });

  it('while the worker checkpoints, the WAL stays bounded (it is reused, not grown without end)', async () => {
    // A quarter of SQLite's default 1,000 pages, so that a few seconds of writes take the WAL
    // several times past the point where it starts over (the worker's target follows the setting).
    const autoBefore = env.db.pragma('wal_autocheckpoint', { simple: true });
    env.db.pragma('wal_autocheckpoint = 250');
    const target = CHECKPOINT_TARGET_FACTOR * 250;
    const p = new PasswordPipeline({ db: env.db, cloud: offline, events: new EventLog(env.db), key: env.key });
    const nts = await Promise.all(Array.from({ length: 16 }, (_, i) => ntHash(`Bound-${i}-Passw0rd!`)));
    let peak = 0;
    let frames = 0;
    for (let round = 0; round < 64; round++) {
      // New users each round (each a change), with anchors in random order as directories give
      // them (objectGUIDs): 16,000 rows in all.
      const page = Array.from({ length: 250 }, (_, i) => ({ anchor: createHash('sha256').update(`bound-${round}-${i}`).digest('base64').slice(0, 22), nt: nts[i % nts.length]! }));
      const before = walFrames(`${env.dbFile}-wal`);
      await p.observeNtHashes('ldap', page);
      const after = walFrames(`${env.dbFile}-wal`);
      // Frames written this round (the WAL restarts from its beginning after a full checkpoint).
      frames += after >= before ? after - before : after;
      peak = Math.max(peak, statSync(`${env.dbFile}-wal`).size);
    }
    await p.stop();
    assert.ok(p.intakeStats().checkpoints >= 2, `checkpoints: ${p.intakeStats().checkpoints}`);
    // Without checkpoints the WAL would hold every frame written (≈ 11,000 here); the worker's
    // checkpoints alone never let it start over while the intake commits, and it did grow to all
    // of them. Now it starts over past WAL_RESTART_FACTOR × the target.
    env.db.pragma(`wal_autocheckpoint = ${autoBefore}`);
    const bound = (WAL_RESTART_FACTOR + 1) * target * (4096 + 24);
    assert.ok(frames * 4096 > 2 * bound, `frames written: ${frames}`);
    assert.ok(peak < bound && peak < (frames * 4096) / 2, `the WAL peaked at ${peak} bytes, for ${frames} frames written`);
  });

  it('two checkpointers on one connection: neither takes the raised setting for its own, and the own one comes back when the last worker stops', async () => {
    await withOwnConnection('two', async (db, auto) => {
      assert.equal(auto(), 1000);
      const raisedTo = (WAL_RESTART_FACTOR + 1) * CHECKPOINT_TARGET_FACTOR * 1000;
      const a = IntakeCheckpoints.for(db)!;
      a.write(FIRST_CHECKPOINT_ROWS, () => undefined); // enough rows: A's worker starts
      assert.equal(auto(), raisedTo, 'A runs');
      const b = IntakeCheckpoints.for(db)!; // made while A's worker runs
      b.write(FIRST_CHECKPOINT_ROWS, () => undefined);
      assert.equal(auto(), raisedTo, "B runs too, with the same target (it did not take A's value for the connection's own)");
      await a.close();
      assert.equal(auto(), raisedTo, "A stopped, B's worker still runs");
      await b.close();
      assert.equal(auto(), 1000, 'both stopped: the connection has its own setting again');
      // And again from the start: nothing left over from the first round.
      a.write(FIRST_CHECKPOINT_ROWS, () => undefined);
      assert.equal(auto(), raisedTo);
      await a.close();
      assert.equal(auto(), 1000);
    });
  });

  it('a restore that fails (the connection busy iterating) is not forgotten: the next stop restores the own setting, not the raised one', async () => {
    await withOwnConnection('busy', async (db, auto) => {
      const cp = IntakeCheckpoints.for(db)!;
      cp.write(FIRST_CHECKPOINT_ROWS, () => undefined);
      assert.ok(Number(auto()) > 1000);
      const rows = db.prepare('SELECT 1 AS x UNION ALL SELECT 2').iterate();
      rows.next(); // the connection is busy until the iteration ends
      await cp.close(); // cannot restore now
      rows.return?.();
      assert.ok(Number(auto()) > 1000, 'still raised: the restore could not run');
      cp.write(FIRST_CHECKPOINT_ROWS, () => undefined);
      await cp.close();
      assert.equal(auto(), 1000, 'the own value, not the raised one taken for it');
    });
  });

  it('a worker that stopped for idleness starts again after the first rows of the next burst, and the setting follows it', async () => {
    await withOwnConnection('idle', async (db, auto) => {
      const cp = IntakeCheckpoints.for(db, 100)!;
      cp.write(FIRST_CHECKPOINT_ROWS, () => undefined);
      assert.ok(Number(auto()) > 1000, 'raised while the worker runs');
      for (let waited = 0; Number(auto()) !== 1000 && waited < 10_000; waited += 20) await sleep(20);
      assert.equal(auto(), 1000, 'the worker stopped after its idle time, and the setting is the own one');
      // A few rows never cost a thread; the next burst gets its worker after as many rows as the first did.
      cp.write(1, () => undefined);
      assert.equal(auto(), 1000, 'one row: no worker');
      cp.write(FIRST_CHECKPOINT_ROWS - 1, () => undefined);
      assert.ok(Number(auto()) > 1000, 'the worker runs again once the burst has written its first rows');
      await cp.close();
      assert.equal(auto(), 1000);
    });
  });

  it('a pipeline on a database in memory writes without a worker (nothing to checkpoint)', async () => {
    const db = openDatabase(':memory:', MIGRATIONS);
    try {
      const p = new PasswordPipeline({ db, cloud: offline, events: new EventLog(db), key: env.key });
      assert.equal(await p.observeNtHashes('ldap', [{ anchor: 'mem-1', nt: await ntHash('Mem-Passw0rd!') }]), 1);
      assert.equal(p.intakeStats().checkpoints, 0);
      await p.stop();
    } finally {
      db.close();
    }
  });
});
