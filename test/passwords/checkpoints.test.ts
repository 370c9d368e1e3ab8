/**
 * The intake's WAL checkpoints run on a worker thread (src/passwords/checkpoints.ts), not inside the
 * intake's commits on the main thread: real pipeline, real idsync.db on disk, a second connection to
 * check what is in the file.
 */
import { strict as assert } from 'node:assert';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventLog } from '../../src/events/log.js';
import { ntHash, verifyOrgIdHash } from '../../src/passwords/hash.js';
import { PasswordKeys } from '../../src/passwords/keys.js';
import { Outbox } from '../../src/passwords/outbox.js';
import { PasswordPipeline } from '../../src/passwords/pipeline.js';
import { openDatabase } from '../../src/store/database.js';
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

  it('the import path and the notification path are checkpointed by the worker; the connection keeps its own setting', async () => {
    const p = new PasswordPipeline({ db: env.db, cloud: offline, events: new EventLog(env.db), key: env.key });
    const autoBefore = env.db.pragma('wal_autocheckpoint', { simple: true });
    // 1,200 users through the import path: several thousand WAL pages, past SQLite's 1,000.
    const page = await Promise.all(Array.from({ length: 1200 }, async (_, i) => ({ anchor: `ckpt-${i}`, nt: await ntHash(`Ckpt-${i}-Passw0rd!`) })));
    assert.equal(await p.observeNtHashes('ldap', page), 1200);
    // And single changes through the coalescing writer.
    const users = Array.from({ length: 300 }, (_, i) => addUser(env.db, { sam: `ckpt-pcn-${i}`, anchor: `ckpt-pcn-${i}` }));
    await Promise.all(users.map((u, i) => p.acceptPassword(u.sam, `Pcn-${i}-Passw0rd!`)));
    for (let waited = 0; p.intakeStats().checkpoints === 0 && waited < 60_000; waited += 50) await sleep(50);
    assert.ok(p.intakeStats().checkpoints > 0, 'the worker ran checkpoints');
    assert.equal(env.db.pragma('wal_autocheckpoint', { simple: true }), autoBefore, "the connection's automatic checkpoint is as it was");
    await p.stop();

    // What the worker checkpointed is in the main file: with the WAL fully checkpointed (by this
    // connection now) and truncated, a fresh connection reads every change.
    env.db.pragma('wal_checkpoint(TRUNCATE)');
    assert.equal(statSync(`${env.dbFile}-wal`).size, 0);
    const other = openDatabase(env.dbFile, MIGRATIONS);
    try {
      const queued = new Map(new Outbox(other, new PasswordKeys(env.key)).due(100_000, new Set()).map((i) => [i.anchor, i.hash]));
      for (const i of [0, 599, 1199]) assert.ok(await verifyOrgIdHash(`Ckpt-${i}-Passw0rd!`, queued.get(`ckpt-${i}`)!), `import user ${i}`);
      for (const i of [0, 299]) assert.ok(await verifyOrgIdHash(`Pcn-${i}-Passw0rd!`, queued.get(`ckpt-pcn-${i}`)!), `notified user ${i}`);
      assert.equal(other.prepare('PRAGMA integrity_check').pluck().get(), 'ok');
    } finally {
      other.close();
    }
  });

  it('while the worker checkpoints, the WAL stays bounded (it is reused, not grown without end)', async () => {
    const p = new PasswordPipeline({ db: env.db, cloud: offline, events: new EventLog(env.db), key: env.key });
    const nts = await Promise.all(Array.from({ length: 16 }, (_, i) => ntHash(`Bound-${i}-Passw0rd!`)));
    let peak = 0;
    for (let round = 0; round < 8; round++) {
      // New users each round (each a change): ~5,000 rows in all, tens of MB of WAL frames unchecked.
      const page = Array.from({ length: 600 }, (_, i) => ({ anchor: `bound-${round}-${i}`, nt: nts[i % nts.length]! }));
      await p.observeNtHashes('ldap', page);
      peak = Math.max(peak, statSync(`${env.dbFile}-wal`).size);
    }
    await p.stop();
    assert.ok(p.intakeStats().checkpoints >= 2, `checkpoints: ${p.intakeStats().checkpoints}`);
    // Without checkpoints the WAL would hold every frame written: ≈ 2–5 pages of 4 KiB per row.
    assert.ok(peak < 4800 * 2 * 4096, `the WAL peaked at ${peak} bytes`);
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
