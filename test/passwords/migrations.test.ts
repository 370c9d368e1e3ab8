/**
 * passwords/intake-003-one-row-per-user: a store written by the previous schema (phs_state, the last
 * known state, and phs_outbox, what waits) becomes phs_users with nothing lost — on SQLite and on a
 * real PostgreSQL 15. Every kind of row the old code could leave: a delivered user, a waiting change
 * (its write identity kept, so a delivery in flight before the upgrade is still recognised), a
 * fingerprint without a hash, a waiting change without a state row (older versions), and a state
 * newer than what waits (the newest hash is the one delivered).
 *
 * passwords/intake-004-rows-in-arrival-order: phs_users rebuilt as a table in arrival order with
 * its key in a unique index (SQLite; nothing to do on PostgreSQL): every row and column kept, the
 * key still enforced, and the outbox working on the result.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { allMigrations } from '../../src/app/migrations.js';
import { PasswordKeys } from '../../src/passwords/keys.js';
import { Outbox, outboxDepth } from '../../src/passwords/outbox.js';
import { migrate, openDatabase, type Database } from '../../src/store/database.js';
import { openPostgresDatabase } from '../../src/store/postgres/open.js';
import { skipUnlessPostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js';

const ONE_TABLE = 'passwords/intake-003-one-row-per-user';
const before003 = allMigrations.slice(0, allMigrations.findIndex((m) => m.id === ONE_TABLE));
const BY_ARRIVAL = 'passwords/intake-004-rows-in-arrival-order';
const before004 = allMigrations.slice(0, allMigrations.findIndex((m) => m.id === BY_ARRIVAL));

const T0 = '2026-03-01T10:00:00.000Z';
const T1 = '2026-03-02T10:00:00.000Z';
const QUEUED = '2026-03-02T10:00:01.000Z';

/** Writes the old tables as the previous outbox code did, and returns what each user's rows were. */
function writeOldRows(db: Database, keys: PasswordKeys) {
  const state = db.prepare(
    'INSERT INTO phs_state (connector, anchor, nt_fp, hash_ct, hash_iv, hash_tag, key_id, changed_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const outbox = db.prepare(
    `INSERT INTO phs_outbox (anchor, connector, hash_ct, hash_iv, hash_tag, key_id, changed_at, queued_at, version, attempts, next_attempt_at, last_error, source)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const fp = randomBytes(32);
  const seal = (hash: string, anchor: string) => keys.seal(hash, anchor);
  // delivered: state only
  const d = seal('HASH-delivered', 'delivered');
  state.run('corp', 'delivered', fp, d.ct, d.iv, d.tag, d.keyId, T0, T0);
  // waiting: state and outbox written together (the same seal)
  const w = seal('HASH-waiting', 'waiting');
  state.run('corp', 'waiting', null, w.ct, w.iv, w.tag, w.keyId, T1, QUEUED);
  outbox.run('waiting', 'corp', w.ct, w.iv, w.tag, w.keyId, T1, QUEUED, 3, 2, 1_800_000_000_000, 'CLOUD_UNAVAILABLE', 'pcn');
  // a fingerprint only (a polling source saw an unchanged hash)
  state.run('corp', 'fp-only', fp, null, null, null, null, null, T0);
  // an outbox row without a state row (written by an older version)
  const o = seal('HASH-outbox-only', 'outbox-only');
  outbox.run('outbox-only', 'corp', o.ct, o.iv, o.tag, o.keyId, T0, QUEUED, 1, 0, 1_700_000_000_000, null, 'agent');
  // the state newer than what waits: the newer hash is the one to deliver
  const older = seal('HASH-older', 'newer-state');
  const newer = seal('HASH-newer', 'newer-state');
  state.run('corp', 'newer-state', null, newer.ct, newer.iv, newer.tag, newer.keyId, T1, T1);
  outbox.run('newer-state', 'corp', older.ct, older.iv, older.tag, older.keyId, T0, QUEUED, 1, 0, 1_700_000_000_000, null, 'import');
  return { fp, waitingIv: w.iv };
}

function checkMigrated(db: Database, keys: PasswordKeys, old: { fp: Buffer; waitingIv: Buffer }): void {
  assert.equal(Number((db.prepare('SELECT count(*) AS n FROM phs_users').get() as { n: number }).n), 5, 'one row per user');
  const outbox = new Outbox(db, keys, () => 2_000_000_000_000);
  const due = new Map(outbox.due(100, new Set()).map((i) => [i.anchor, i]));
  assert.deepEqual([...due.keys()].sort(), ['newer-state', 'outbox-only', 'waiting'], 'what waited still waits, nothing else');
  const waiting = due.get('waiting')!;
  assert.equal(waiting.hash, 'HASH-waiting');
  assert.equal(waiting.version, 3);
  assert.equal(waiting.attempts, 2);
  assert.equal(waiting.queuedAt, QUEUED);
  assert.equal(waiting.changedAt, T1);
  assert.equal(waiting.source, 'pcn');
  assert.deepEqual(Buffer.from(waiting.writeId), Buffer.from(old.waitingIv), 'the write identity is kept: an answer about it still completes it');
  assert.equal(due.get('outbox-only')!.hash, 'HASH-outbox-only');
  assert.equal(due.get('newer-state')!.hash, 'HASH-newer', 'the newest known hash is delivered');
  assert.equal(due.get('newer-state')!.changedAt, T1);
  assert.equal(outboxDepth(db).depth, 3);
  // The last error of the waiting change is kept (doctor and status show it).
  assert.equal(outboxDepth(db).attempts, 2);
  assert.deepEqual(Buffer.from(outbox.fingerprint('corp', 'delivered')!), old.fp);
  assert.deepEqual(Buffer.from(outbox.fingerprint('corp', 'fp-only')!), old.fp);
  // The delivered user's hash is still known: a resync queues it again, sealed as it was.
  assert.deepEqual(outbox.requeueKnown(['delivered']), [{ connector: 'corp', anchor: 'delivered' }]);
  assert.equal(outbox.due(100, new Set()).find((i) => i.anchor === 'delivered')?.hash, 'HASH-delivered');
  outbox.complete(waiting);
  assert.equal(outbox.due(100, new Set()).some((i) => i.anchor === 'waiting'), false, 'an answer about the migrated write completes it');
}

describe('password store migration to one row per user (passwords/intake-003)', () => {
  test('SQLite: every kind of old row arrives, what waited still waits with its write identity', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'idsync-pw-migrate-'));
    try {
      const keys = new PasswordKeys(randomBytes(32));
      const file = path.join(dir, 'idsync.db');
      let db = openDatabase(file, before003);
      const old = writeOldRows(db, keys);
      db.close();
      db = openDatabase(file, allMigrations);
      try {
        checkMigrated(db, keys, old);
        assert.deepEqual(db.prepare("SELECT name FROM sqlite_master WHERE name IN ('phs_state', 'phs_outbox', 'phs_state_anchor', 'phs_outbox_due')").pluck().all(), [], 'the old tables are gone');
        assert.equal(db.prepare('PRAGMA integrity_check').pluck().get(), 'ok');
      } finally {
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('on PostgreSQL', { skip: skipUnlessPostgres() }, () => {
    let pgc: TestPostgres;
    before(async () => {
      pgc = await startPostgres();
    });
    after(() => pgc?.stop());

    test('PostgreSQL: the same rows arrive the same way', async () => {
      const url = await pgc.createDatabase();
      const keys = new PasswordKeys(randomBytes(32));
      let db = openPostgresDatabase({ url }, before003);
      const old = writeOldRows(db, keys);
      migrate(db, allMigrations);
      try {
        checkMigrated(db, keys, old);
        assert.deepEqual(
          db.prepare("SELECT table_name FROM information_schema.tables WHERE table_name IN ('phs_state', 'phs_outbox')").pluck().all(),
          [],
          'the old tables are gone',
        );
      } finally {
        db.close();
      }
      db = openPostgresDatabase({ url }, allMigrations);
      db.close();
    });
  });
});

describe('phs_users in arrival order (passwords/intake-004)', () => {
  const columns = 'anchor, connector, nt_fp, hash_ct, hash_iv, hash_tag, key_id, changed_at, updated_at, queued_at, version, attempts, next_attempt_at, last_error, source';
  const all = (db: Database) => db.prepare(`SELECT ${columns} FROM phs_users ORDER BY anchor, connector`).all();

  test('SQLite: every row and column kept, the key enforced by an index, the outbox works on it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'idsync-pw-migrate-'));
    try {
      const keys = new PasswordKeys(randomBytes(32));
      const file = path.join(dir, 'idsync.db');
      let db = openDatabase(file, before004);
      let clock = 1_900_000_000_000;
      const outbox003 = new Outbox(db, keys, () => clock);
      // Rows of every state the outbox leaves: waiting, delivered, retried with an error, two
      // connectors for one anchor, a fingerprint without a hash.
      for (let i = 0; i < 50; i++) {
        outbox003.enqueueMany([{ connector: i % 2 ? 'corp' : 'lab', anchor: `user-${(i * 7919) % 50}`, hash: `HASH-${i}`, changedAt: new Date(clock - 1000), source: 'pcn', fp: randomBytes(32) }]);
        clock += 10;
      }
      outbox003.enqueueMany([{ connector: 'corp', anchor: 'user-1', hash: 'HASH-other-connector', changedAt: new Date(clock - 5000), source: 'ldap' }]);
      outbox003.setFingerprint('corp', 'fp-only', randomBytes(32));
      const [first, second] = outbox003.due(2, new Set(), clock + 1);
      outbox003.complete(first!);
      outbox003.retry(second!, clock + 60_000, 'CLOUD_UNAVAILABLE');
      const beforeRows = all(db);
      assert.ok(beforeRows.length >= 51);
      const columns = (d: Database) => d.prepare("SELECT name, type, \"notnull\", dflt_value FROM pragma_table_info('phs_users') ORDER BY cid").all();
      const beforeColumns = columns(db);
      db.close();

      db = openDatabase(file, allMigrations);
      try {
        assert.deepEqual(all(db), beforeRows, 'every row and column as it was');
        assert.deepEqual(columns(db), beforeColumns, 'the same columns, types, NOT NULLs and defaults');
        assert.equal(db.prepare("SELECT sql FROM sqlite_master WHERE name = 'phs_users'").pluck().get()?.toString().includes('WITHOUT ROWID'), false);
        assert.deepEqual(
          db.prepare("SELECT name FROM sqlite_master WHERE tbl_name = 'phs_users' AND type = 'index' ORDER BY name").pluck().all(),
          ['phs_users_due', 'phs_users_key'],
        );
        assert.throws(
          () => db.prepare("INSERT INTO phs_users (anchor, connector, updated_at) VALUES ('user-1', 'corp', 'x')").run(),
          /UNIQUE constraint failed/,
          'one row per (anchor, connector), as before',
        );
        assert.equal(db.prepare('PRAGMA integrity_check').pluck().get(), 'ok');
        // The outbox on the migrated table: a newer change of a known user replaces its row; the
        // retried one is still waiting with its error; the completed one is not.
        const outbox = new Outbox(db, keys, () => clock + 120_000);
        const rows = (): number => Number(db.prepare('SELECT count(*) FROM phs_users').pluck().get());
        const n = rows();
        assert.deepEqual(outbox.enqueueMany([{ connector: 'corp', anchor: 'user-1', hash: 'HASH-new', changedAt: new Date(clock + 100_000), source: 'pcn' }]), ['queued']);
        assert.equal(rows(), n, 'the same row, not a second one');
        const due = outbox.due(100, new Set(), clock + 200_000);
        assert.equal(due.find((i) => i.anchor === 'user-1' && i.connector === 'corp')?.hash, 'HASH-new');
        assert.equal(due.some((i) => i.anchor === first!.anchor && i.connector === first!.connector), false, 'the completed change stays completed');
        assert.equal(due.some((i) => i.anchor === second!.anchor && i.connector === second!.connector), true, 'the retried change still waits');
        assert.equal(outboxDepth(db).depth, due.length);
        // The one write that relies on the columns' defaults: a fingerprint of a user not known yet.
        const fp = randomBytes(32);
        outbox.setFingerprint('corp', 'new-after-upgrade', fp);
        assert.deepEqual(Buffer.from(outbox.fingerprint('corp', 'new-after-upgrade')!), fp);
        assert.deepEqual(
          db.prepare("SELECT version, attempts, next_attempt_at FROM phs_users WHERE anchor = 'new-after-upgrade'").get(),
          { version: 0, attempts: 0, next_attempt_at: null },
        );
      } finally {
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
