/**
 * The mapping of file-system and SQLite failures to stable codes with hints, fed with the real
 * error objects real calls produce (mkdir under a regular file, a write to a database opened
 * read-only). A full disk is produced for real in test/store/database.test.ts (a small tmpfs in a
 * mount namespace); here it would need a fake error object, so it is not repeated.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { IdsyncError } from '../../src/core/errors.js';
import { fileSystemError, fromFileSystemFailure, makeDirectory } from '../../src/core/fs-errors.js';
import { Sqlite } from '../../src/store/sqlite-driver.js';

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-fs-errors-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  assert.fail('did not throw');
}

test('makeDirectory: creates missing parents 0700, answers undefined for an existing folder, PATH_UNUSABLE for a file in the way', (t) => {
  const dir = scratch(t);
  const target = path.join(dir, 'a', 'b');
  assert.equal(makeDirectory(target, 'cannot create'), path.join(dir, 'a'));
  assert.equal(makeDirectory(target, 'cannot create'), undefined);
  writeFileSync(path.join(dir, 'file'), 'x');
  const err = thrown(() => makeDirectory(path.join(dir, 'file', 'sub'), 'cannot create the folder'));
  assert.ok(err instanceof IdsyncError && err.code === 'PATH_UNUSABLE');
  assert.equal(err.details.errno, 'ENOTDIR');
});

test('a raw mkdir error that reached the command line: PATH_UNUSABLE naming its path, not INTERNAL', (t) => {
  const dir = scratch(t);
  writeFileSync(path.join(dir, 'file'), 'x');
  const raw = thrown(() => mkdirSync(path.join(dir, 'file', 'sub'), { recursive: true }));
  const e = fromFileSystemFailure(raw);
  assert.ok(e, 'mapped');
  assert.equal(e.code, 'PATH_UNUSABLE');
  assert.match(e.message, /^cannot mkdir .*file\/sub: a part of the path is a regular file/);
  assert.deepEqual(fileSystemError(raw, 'x', 'y').details, { path: 'y', errno: 'ENOTDIR' });
});

test('a SQLite write refused as read-only: STORE_FAILED with the "make it writable" hint; other errors stay unmapped', (t) => {
  const file = path.join(scratch(t), 'ro.db');
  new Sqlite(file).exec('CREATE TABLE t (x)');
  const db = new Sqlite(file, { readonly: true });
  const raw = thrown(() => db.exec('INSERT INTO t VALUES (1)'));
  db.close();
  assert.equal((raw as { code?: string }).code, 'SQLITE_READONLY');
  const e = fromFileSystemFailure(raw);
  assert.equal(e?.code, 'STORE_FAILED');
  assert.match(e?.message ?? '', /attempt to write a readonly database/);
  assert.match(e?.hint ?? '', /writable by the user idsync runs as/);
  assert.equal(fromFileSystemFailure(new Error('something else')), undefined);
  assert.equal(fromFileSystemFailure(new IdsyncError('CONFIG_INVALID', 'x')), undefined, 'an IdsyncError keeps its own code');
});
