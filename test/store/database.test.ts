/**
 * Several idsync processes open one database at the same moment (a cycle, `doctor` runs, the
 * service): each must get it, never a crash with SQLITE_BUSY. Prompted by one KB 2962509 run in
 * which one of twelve overlapping `idsync doctor` runs died at start-up; the busy timeout is now
 * set before the switch to WAL (which takes a lock). This test does not reproduce that one run
 * deterministically; it holds the property under 16 concurrent openers and writers.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isIdsyncError } from '../../src/core/errors.js';
import { mountNamespaceUnavailable, readOnlyMount, runInMountNamespace, smallTmpfs } from '../helpers/mount-ns.js';

const database = fileURLToPath(new URL('../../src/store/database.ts', import.meta.url));

function opener(file: string): Promise<{ code: number | null; out: string }> {
  // Each child opens the database, applies a migration (a write) and holds a write for a moment.
  const script = `
    const { openDatabase } = await import(${JSON.stringify(database)});
    const db = openDatabase(${JSON.stringify(file)}, [{ id: 'test/001', sql: 'CREATE TABLE t (x INTEGER)' }]);
    db.transaction(() => { db.prepare('INSERT INTO t VALUES (1)').run(); const end = Date.now() + 20; while (Date.now() < end); })();
    db.close();
    console.log('ok');`;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('openDatabase from several processes at once', () => {
  test('16 processes open, migrate and write one new database together: all succeed', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'idsync-store-'));
    try {
      const file = path.join(dir, 'idsync.db');
      const results = await Promise.all(Array.from({ length: 16 }, () => opener(file)));
      for (const r of results) assert.equal(r.code, 0, r.out);
      const { openDatabase } = await import('../../src/store/database.js');
      const db = openDatabase(file);
      assert.equal(db.prepare('SELECT count(*) FROM t').pluck().get(), 16);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A temporary folder for one test, removed afterwards. */
function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-datadir-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const modeOf = (p: string) => statSync(p).mode & 0o7777;

describe('the data directory: created owner-only, an existing one never chmodded', () => {
  test('an existing shared folder (mode 1777, as /tmp) keeps its mode; a warning says others can write to it', async (t) => {
    const { openDatabase } = await import('../../src/store/database.js');
    const shared = path.join(scratch(t), 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    const warnings: string[] = [];
    openDatabase(path.join(shared, 'idsync.db'), [], { warn: (m) => warnings.push(m) }).close();
    assert.equal(modeOf(shared).toString(8), '1777', 'the shared folder was not chmodded');
    assert.equal(modeOf(path.join(shared, 'idsync.db')).toString(8), '600', 'the database file itself is owner-only');
    assert.equal(warnings.length, 1, 'one warning');
    assert.match(warnings[0]!, new RegExp(`data directory ${shared} \\(mode 1777\\) is writable by other users`));
    assert.match(warnings[0]!, /chmod 700/);
  });

  test('an existing group-readable folder (0750) keeps its mode; the warning says readable', async (t) => {
    const { openDatabase } = await import('../../src/store/database.js');
    const dir = path.join(scratch(t), 'data');
    mkdirSync(dir);
    chmodSync(dir, 0o750);
    const warnings: string[] = [];
    openDatabase(path.join(dir, 'idsync.db'), [], { warn: (m) => warnings.push(m) }).close();
    assert.equal(modeOf(dir).toString(8), '750');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /\(mode 750\) is readable by other users/);
  });

  test('a folder idsync creates (with its missing parents) is 0700, and an owner-only folder draws no warning', async (t) => {
    const { openDatabase } = await import('../../src/store/database.js');
    const dir = path.join(scratch(t), 'a', 'b', 'data');
    const warnings: string[] = [];
    openDatabase(path.join(dir, 'idsync.db'), [], { warn: (m) => warnings.push(m) }).close();
    assert.equal(modeOf(dir).toString(8), '700');
    assert.equal(modeOf(path.dirname(dir)).toString(8), '700');
    openDatabase(path.join(dir, 'idsync.db'), [], { warn: (m) => warnings.push(m) }).close();
    assert.deepEqual(warnings, []);
  });
});

describe('file-system failures of the store: a stable code, the path and the fix', () => {
  test('a data directory under a regular file (ENOTDIR): PATH_UNUSABLE naming the path', async (t) => {
    const { openDatabase } = await import('../../src/store/database.js');
    const file = path.join(scratch(t), 'people.ldif');
    writeFileSync(file, 'dn: dc=x\n');
    const dir = path.join(file, 'data');
    assert.throws(() => openDatabase(path.join(dir, 'idsync.db')), (err: unknown) => {
      assert.ok(isIdsyncError(err, 'PATH_UNUSABLE'), String(err));
      assert.equal(err.message, `cannot create the data directory ${dir}: a part of the path is a regular file, not a folder (ENOTDIR)`);
      assert.match(err.hint ?? '', /move the file that is in the way/);
      assert.equal(err.details.errno, 'ENOTDIR');
      return true;
    });
  });

  test('a data directory that is a regular file (EEXIST): PATH_UNUSABLE', async (t) => {
    const { openDatabase } = await import('../../src/store/database.js');
    const file = path.join(scratch(t), 'data');
    writeFileSync(file, 'not a folder');
    assert.throws(() => openDatabase(path.join(file, 'idsync.db')), (err: unknown) => {
      assert.ok(isIdsyncError(err, 'PATH_UNUSABLE'), String(err));
      assert.match(err.message, new RegExp(`^cannot create the data directory ${file}: it exists and is not a folder`));
      return true;
    });
  });
});

/**
 * Read-only and full file systems, for real: root writes through permission bits (0500 stops
 * nothing), so the child opens the store in a mount namespace of its own, on a read-only bind mount
 * or on a small tmpfs. SQLite's "database or disk is full" needs no fake this way.
 */
// Skipped only where the OS forbids a mount namespace (not root, an unprivileged container): a
// capability of the machine, not a server the suite could start. CI runs as root, where it runs.
describe('the store on a read-only or full file system (private mount namespace)', { skip: mountNamespaceUnavailable() }, () => {
  /** Opens `file` with `migrations` in the namespace; prints the error as JSON. */
  function openIn(setup: string, file: string, migrations: { id: string; sql: string }[]) {
    const script = `
      const { openDatabase } = await import(${JSON.stringify(database)});
      try { openDatabase(${JSON.stringify(file)}, ${JSON.stringify(migrations)}).close(); console.log(JSON.stringify({ ok: true })); }
      catch (err) { console.log(JSON.stringify({ name: err.name, code: err.code, message: err.message, hint: err.hint, details: err.details })); }`;
    return runInMountNamespace(setup, [process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], { cwd: path.dirname(database) });
  }
  const parse = (r: { stdout: string; stderr: string }) => {
    const line = r.stdout.trim().split('\n').pop() ?? '';
    assert.ok(line.startsWith('{'), `no result line: ${r.stdout}${r.stderr}`);
    return JSON.parse(line) as { ok?: true; code?: string; message?: string; hint?: string; details?: Record<string, unknown> };
  };

  test('a new data directory on a read-only file system: PATH_UNUSABLE says read-only (EROFS), not ENOENT', async (t) => {
    const ro = scratch(t);
    const dir = path.join(ro, 'data');
    const out = parse(await openIn(readOnlyMount(ro), path.join(dir, 'idsync.db'), []));
    assert.equal(out.code, 'PATH_UNUSABLE', JSON.stringify(out));
    assert.equal(out.message, `cannot create the data directory ${dir}: the file system is read-only (EROFS)`);
    assert.match(out.hint ?? '', /read-write/);
  });

  test('an existing data directory on a read-only file system: STORE_FAILED naming the folder', async (t) => {
    const ro = scratch(t);
    const out = parse(await openIn(readOnlyMount(ro), path.join(ro, 'idsync.db'), []));
    assert.equal(out.code, 'STORE_FAILED', JSON.stringify(out));
    assert.match(out.message ?? '', new RegExp(`${ro}: the file system is read-only`));
    assert.match(out.hint ?? '', /read-write/);
  });

  test('a migration that fills the disk: STORE_FAILED "disk is full" with the free-space hint, not a bare SqliteError', async (t) => {
    const full = scratch(t);
    // 256 KiB of tmpfs; the migration writes 2 MiB.
    const big = [{ id: 'test/big', sql: 'CREATE TABLE big AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 512) SELECT randomblob(4096) AS b FROM n' }];
    const out = parse(await openIn(smallTmpfs(full, 256), path.join(full, 'idsync.db'), big));
    assert.equal(out.code, 'STORE_FAILED', JSON.stringify(out));
    assert.match(out.message ?? '', new RegExp(`^cannot update the schema of database ${full}/idsync.db: database or disk is full`));
    assert.equal(out.details?.sqliteCode, 'SQLITE_FULL');
    assert.match(out.hint ?? '', /Free space/);
  });
});
