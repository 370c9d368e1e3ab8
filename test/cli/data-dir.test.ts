/**
 * The data directory and the other folders idsync writes, as an administrator meets them through
 * the real CLI: a shared folder keeps its mode (a warning says others can read or write it), and a
 * folder that cannot be made or written gives a stable code, the path and the fix instead of
 * `error [INTERNAL]: ENOTDIR ...`. Read-only and full file systems are made for real in a private
 * mount namespace (root writes through permission bits).
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { mountNamespaceUnavailable, readOnlyMount, runInMountNamespace, smallTmpfs } from '../helpers/mount-ns.js';
import { repoRoot, runCli } from '../helpers/run-cli.js';

const RUNNER = path.join(repoRoot, 'test/helpers/idsync-main.ts');

/** A configuration with an LDIF source and the given data directory (and optional events file). */
function installation(t: { after(fn: () => void): void }, dataDir: (dir: string) => string, jsonFile?: (dir: string) => string): { dir: string; file: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-data-dir-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'people.ldif'), 'dn: dc=example,dc=com\nobjectClass: domain\ndc: example\n');
  const file = path.join(dir, 'idsync.yaml');
  writeFileSync(
    file,
    [
      `dataDir: ${JSON.stringify(dataDir(dir))}`,
      'connectors:',
      '  - { type: ldif, name: people, path: ./people.ldif }',
      'cloud:',
      '  url: http://127.0.0.1:9/',
      '  auth: { type: client_credentials, clientId: sync }',
      ...(jsonFile ? ['events:', `  jsonFile: ${JSON.stringify(jsonFile(dir))}`] : []),
      '',
    ].join('\n'),
  );
  return { dir, file };
}

describe('the data directory through the CLI', () => {
  test('an existing shared data directory (1777) keeps its mode; stderr warns that others can write to it', async (t) => {
    const { dir, file } = installation(t, (d) => path.join(d, 'shared'));
    const shared = path.join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    const r = await runCli(['--config', file, 'credentials', 'list']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((statSync(shared).mode & 0o7777).toString(8), '1777');
    assert.match(r.stderr, new RegExp(`^warning: the data directory ${shared} \\(mode 1777\\) is writable by other users`, 'm'));
  });

  test('a data directory under a regular file: error [PATH_UNUSABLE] naming it, with the fix', async (t) => {
    const { dir, file } = installation(t, (d) => path.join(d, 'people.ldif', 'data'));
    const r = await runCli(['--config', file, 'credentials', 'list']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^error \\[PATH_UNUSABLE\\]: cannot create the data directory ${path.join(dir, 'people.ldif', 'data')}: a part of the path is a regular file, not a folder \\(ENOTDIR\\)$`, 'm'));
    assert.match(r.stderr, /^ {2}fix: Fix the path in the configuration/m);
  });

  test('events.jsonFile in a folder that cannot be made: error [PATH_UNUSABLE] naming the folder', async (t) => {
    const { dir, file } = installation(t, (d) => path.join(d, 'data'), (d) => path.join(d, 'people.ldif', 'events.jsonl'));
    const r = await runCli(['--config', file, 'sync']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^error \\[PATH_UNUSABLE\\]: cannot create the folder of events.jsonFile ${path.join(dir, 'people.ldif')}: it exists and is not a folder`, 'm'));
  });
});

// Skipped only where the OS forbids a mount namespace (not root, an unprivileged container): a
// capability of the machine, not a server the suite could start. CI runs as root, where it runs.
describe('the data directory on a read-only or full file system (private mount namespace)', { skip: mountNamespaceUnavailable() }, () => {
  const cli = (setup: string, file: string, args: string[]) => runInMountNamespace(setup, [process.execPath, '--import', 'tsx', RUNNER, '--config', file, ...args], { cwd: repoRoot });

  test('an installation on a file system mounted read-only: STORE_FAILED with a hint, not a bare SQLite message', async (t) => {
    const { dir, file } = installation(t, (d) => path.join(d, 'data'));
    const first = await runCli(['--config', file, 'credentials', 'list']);
    assert.equal(first.code, 0, first.stderr);
    const r = await cli(readOnlyMount(path.join(dir, 'data')), file, ['credentials', 'list', '--json']);
    assert.equal(r.code, 1, r.stderr);
    const { error } = JSON.parse(r.stdout) as { error: { code: string; message: string; hint: string } };
    assert.equal(error.code, 'STORE_FAILED');
    assert.match(error.message, new RegExp(`${path.join(dir, 'data', 'idsync.db')}`));
    assert.match(error.hint, /read-write/);
  });

  test('a new data directory on a read-only file system: PATH_UNUSABLE "the file system is read-only"', async (t) => {
    const { dir, file } = installation(t, (d) => path.join(d, 'ro', 'data'));
    mkdirSync(path.join(dir, 'ro'));
    const r = await cli(readOnlyMount(path.join(dir, 'ro')), file, ['credentials', 'list']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^error \\[PATH_UNUSABLE\\]: cannot create the data directory ${path.join(dir, 'ro', 'data')}: the file system is read-only \\(EROFS\\)$`, 'm'));
    assert.match(r.stderr, /fix: Remount the file system/);
  });

  test('a full file system: STORE_FAILED whose fix says to free space', async (t) => {
    const { dir, file } = installation(t, (d) => path.join(d, 'full'));
    mkdirSync(path.join(dir, 'full'));
    // Every block of a 64 KiB tmpfs taken: the database cannot grow past its empty file.
    const r = await cli(smallTmpfs(path.join(dir, 'full'), 64, 64), file, ['credentials', 'list', '--json']);
    assert.equal(r.code, 1, r.stderr);
    const { error } = JSON.parse(r.stdout) as { error: { code: string; message: string; hint: string } };
    assert.equal(error.code, 'STORE_FAILED', r.stdout);
    assert.match(error.hint, /df -h/);
  });
});
