/**
 * A burst's WAL checkpoints on a worker thread (src/store/checkpoints.ts) and the connection's
 * automatic checkpoint while one runs (src/store/autocheckpoint.ts): real SQLite files on disk,
 * the WAL read from its file.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CHECKPOINT_TARGET_FACTOR, FIRST_CHECKPOINT_ROWS, IntakeCheckpoints, WAL_RESTART_FACTOR } from '../../src/passwords/checkpoints.js';
import { BackgroundCheckpoints, BURST_AUTOCHECKPOINT_PAGES } from '../../src/store/checkpoints.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { walFrames } from '../helpers/wal.js';

const dir = mkdtempSync(path.join(tmpdir(), 'idsync-checkpoints-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const MIGRATIONS = [{ id: 'test/001', sql: 'CREATE TABLE blobs (id INTEGER PRIMARY KEY, v BLOB NOT NULL)' }];

function open(name: string): { db: Database; file: string; auto: () => number } {
  const file = path.join(dir, `${name}.db`);
  const db = openDatabase(file, MIGRATIONS);
  return { db, file, auto: () => Number(db.pragma('wal_autocheckpoint', { simple: true })) };
}

describe('store: a burst of writes checkpointed off the event loop', () => {
  it("while it runs, the worker copies the WAL into the database and it starts over; the connection's commits do not, and its own setting comes back", async () => {
    const { db, file, auto } = open('burst');
    const cp = BackgroundCheckpoints.for(db)!;
    try {
      assert.equal(auto(), 1000);
      cp.start();
      cp.start(); // once is enough
      assert.equal(auto(), BURST_AUTOCHECKPOINT_PAGES, 'commits checkpoint only far past where the worker does');
      const insert = db.prepare('INSERT INTO blobs (v) VALUES (?)');
      const page = Buffer.alloc(3000, 7);
      let written = 0;
      let peak = 0;
      // 60 transactions of 200 rows (≈ 200 frames each: 12,000 frames, 48 MB), a pause now and
      // then as a cycle's writer makes (waiting for the directory or the cloud): long enough for
      // two of the worker's checkpoints after the last commit, on a slow disk too.
      for (let round = 0; round < 60; round++) {
        const before = walFrames(`${file}-wal`);
        db.transaction(() => {
          for (let i = 0; i < 200; i++) insert.run(page);
        })();
        const now = walFrames(`${file}-wal`);
        written += now >= before ? now - before : now;
        peak = Math.max(peak, now);
        if (round % 5 === 4) await sleep(150);
      }
      await cp.stop();
      assert.ok(cp.checkpoints > 0, `the worker checkpointed (${cp.checkpoints})`);
      assert.equal(auto(), 1000, "the connection's own setting again");
      assert.ok(written > BURST_AUTOCHECKPOINT_PAGES / 2, `frames written: ${written}`);
      // Without the worker's checkpoints the WAL (checkpointed on commit only past 16,000 pages)
      // would hold every frame written; with them it starts over again and again.
      assert.ok(peak < written / 3, `the WAL peaked at ${peak} frames for ${written} written`);
      // What the worker copied is in the database file itself.
      assert.ok(statSync(file).size > (written / 2) * 4096, `database file ${statSync(file).size} bytes`);
      assert.equal(db.prepare('SELECT COUNT(*) FROM blobs').pluck().get(), 60 * 200);
      assert.equal(db.prepare('PRAGMA integrity_check').pluck().get(), 'ok');
      // Stopped twice, started again: the same as the first time.
      await cp.stop();
      cp.start();
      assert.equal(auto(), BURST_AUTOCHECKPOINT_PAGES);
      await cp.stop();
      assert.equal(auto(), 1000);
      // Closed: for good. A straggler's start() (an answer reported after the burst ended) starts nothing.
      cp.start();
      await cp.close();
      assert.equal(auto(), 1000);
      cp.start();
      assert.equal(cp.running, false, 'no worker after close()');
      assert.equal(auto(), 1000, "the connection's own setting stays");
    } finally {
      await cp.close(); // its worker ends before the connection (also when an assertion failed above)
      db.close();
    }
  });

  it("with the password intake's checkpointer on the same connection: the higher setting holds while either runs, and the own one comes back after both", async () => {
    const { db, auto } = open('both');
    const intake = IntakeCheckpoints.for(db)!;
    const burst = BackgroundCheckpoints.for(db)!;
    try {
      const intakeRaised = (WAL_RESTART_FACTOR + 1) * CHECKPOINT_TARGET_FACTOR * 1000;
      assert.ok(intakeRaised < BURST_AUTOCHECKPOINT_PAGES, 'the two settings differ (the test needs it)');
      // The intake first, the burst second, the intake stops first.
      intake.write(FIRST_CHECKPOINT_ROWS, () => undefined);
      assert.equal(auto(), intakeRaised);
      burst.start();
      assert.equal(auto(), BURST_AUTOCHECKPOINT_PAGES);
      await intake.close();
      assert.equal(auto(), BURST_AUTOCHECKPOINT_PAGES, 'the burst still runs');
      await burst.stop();
      assert.equal(auto(), 1000);
      // The burst first, the intake second, the burst stops first.
      burst.start();
      intake.write(FIRST_CHECKPOINT_ROWS, () => undefined);
      assert.equal(auto(), BURST_AUTOCHECKPOINT_PAGES);
      await burst.stop();
      assert.equal(auto(), intakeRaised, "the intake's worker still runs: its setting, not the connection's own");
      await intake.close();
      assert.equal(auto(), 1000);
    } finally {
      // Their workers end before the connection (also when an assertion failed above).
      await Promise.all([intake.close(), burst.close()]);
      db.close();
    }
  });

  it('nothing to checkpoint in memory', () => {
    const db = openDatabase(':memory:', MIGRATIONS);
    try {
      assert.equal(BackgroundCheckpoints.for(db), undefined);
    } finally {
      db.close();
    }
  });
});
