/**
 * The SQLite store's transactions against a second connection to the same file, as the SCIM worker
 * has one (scim/host/): a write transaction holds the write lock from its start, so a commit of the
 * other connection cannot land between its read and its write (SQLite would fail that write at
 * once with SQLITE_BUSY_SNAPSHOT, e.g. the lockout's failure count); a read-only one takes no lock.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SqliteStore } from '../../../src/cloud/store/sqlite.js';
import { openDatabase, type Database } from '../../../src/store/database.js';

let dir: string;
let store: SqliteStore;
let other: Database;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'idsync-cloud-store-'));
  const file = path.join(dir, 'cloud.db');
  store = new SqliteStore(openDatabase(file, [{ id: 'test/001-counter', sql: 'CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO counter VALUES (1, 0);' }]));
  other = openDatabase(file);
  // The other connection does not wait: whether it can write at that moment is the question.
  other.pragma('busy_timeout = 0');
});
after(async () => {
  other.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const otherWrites = (): boolean => {
  try {
    other.prepare('UPDATE counter SET n = n + 100 WHERE id = 1').run();
    return true;
  } catch (err) {
    assert.equal((err as { code?: string }).code, 'SQLITE_BUSY');
    return false;
  }
};

describe('SqliteStore transactions and a second connection', () => {
  test('a write transaction holds the write lock from its start: read, the other connection cannot commit, write, commit', async () => {
    const written = await store.transaction(async (tx) => {
      const row = await tx.get<{ n: number }>('SELECT n FROM counter WHERE id = 1');
      const otherCommitted = otherWrites();
      await tx.run('UPDATE counter SET n = ? WHERE id = 1', [row!.n + 1]);
      return otherCommitted;
    });
    assert.equal(written, false, 'the other connection committed inside the transaction');
    assert.equal((await store.get<{ n: number }>('SELECT n FROM counter WHERE id = 1'))!.n, 1);
  });

  test('a read-only transaction takes no write lock: the other connection commits during it', async () => {
    const written = await store.transaction(async (tx) => {
      await tx.get('SELECT n FROM counter WHERE id = 1');
      return otherWrites();
    }, { readOnly: true });
    assert.equal(written, true);
    assert.equal((await store.get<{ n: number }>('SELECT n FROM counter WHERE id = 1'))!.n, 101);
  });
});
