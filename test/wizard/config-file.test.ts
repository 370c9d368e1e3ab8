/**
 * `idsync configure` rewrites the configuration file atomically (temp file + rename). The new file
 * must be the old one in all but its text: an administrator's `nobody:nogroup 0640` used to come
 * back as `root:root 0600` (a new inode, and the CLI's umask 077 narrowed the mode), and a
 * symbolic link was replaced by a regular file. Runs the real CLI on real files; as root (CI runs
 * as root), since only root can hand a file to another owner.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../../src/wizard/config-file.js';
import { repoRoot, runCli } from '../helpers/run-cli.js';

const NOBODY = 65534;
const configFileModule = fileURLToPath(new URL('../../src/wizard/config-file.ts', import.meta.url));

/** Why the cases that hand a file to nobody cannot run here (they need root, as CI has), or false. */
function nobodySkip(): string | false {
  if (process.getuid?.() !== 0) return 'runs a child as nobody: needs root';
  if (!existsSync('/dev/shm')) return 'no /dev/shm for a folder nobody can reach';
  return false;
}

/** A configuration with an LDIF source: `configure --task password-hash-sync` needs no server. */
function installation(t: { after(fn: () => void): void }): { dir: string; file: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-config-file-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'people.ldif'), 'dn: dc=example,dc=com\nobjectClass: domain\ndc: example\n');
  const file = path.join(dir, 'idsync.yaml');
  writeFileSync(
    file,
    [
      '# kept: a comment of the administrator',
      'dataDir: ./data',
      'connectors:',
      '  - { type: ldif, name: people, path: ./people.ldif }',
      'cloud:',
      '  url: http://127.0.0.1:9/',
      '  auth: { type: client_credentials, clientId: sync }',
      '',
    ].join('\n'),
  );
  return { dir, file };
}

const modeOf = (p: string) => (statSync(p).mode & 0o7777).toString(8);

describe('configure keeps the configuration file\'s owner, group and mode', () => {
  test('a file owned by nobody:nogroup with mode 0640 stays so after `configure --task password-hash-sync`', { skip: process.getuid?.() !== 0 && 'only root can give a file to nobody' }, async (t) => {
    const { file } = installation(t);
    chownSync(file, NOBODY, NOBODY);
    chmodSync(file, 0o640);
    const r = await runCli(['--config', file, 'configure', '--task', 'password-hash-sync', '--disable']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(readFileSync(file, 'utf8'), /enabled: false/, 'the change was written');
    assert.match(readFileSync(file, 'utf8'), /# kept: a comment of the administrator/);
    const st = statSync(file);
    assert.deepEqual({ uid: st.uid, gid: st.gid, mode: modeOf(file) }, { uid: NOBODY, gid: NOBODY, mode: '640' });
    assert.doesNotMatch(r.stderr, /warning/, 'root keeps the owner: nothing to warn about');
  });

  test('a mode wider than the umask (0644) is kept although the CLI runs with umask 077', async (t) => {
    const { file } = installation(t);
    chmodSync(file, 0o644);
    const r = await runCli(['--config', file, 'configure', '--task', 'password-hash-sync', '--disable']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(modeOf(file), '644');
  });

  test('a configuration reached through a symbolic link: the link stays, its target gets the new text', async (t) => {
    const { dir, file } = installation(t);
    const link = path.join(dir, 'link.yaml');
    symlinkSync(file, link);
    const r = await runCli(['--config', link, 'configure', '--task', 'password-hash-sync', '--disable']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(lstatSync(link).isSymbolicLink(), 'still a symbolic link');
    assert.match(readFileSync(file, 'utf8'), /enabled: false/);
  });

  test('not root: the owner cannot be kept, a warning says how to restore it, the mode is kept', { skip: nobodySkip() }, async (t) => {
    // A folder nobody (uid 65534) can write in and reach: /dev/shm, since the temporary folder may be root's alone.
    const dir = mkdtempSync('/dev/shm/idsync-config-file-');
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    chmodSync(dir, 0o777);
    const file = path.join(dir, 'idsync.yaml');
    writeFileSync(file, 'a: 1\n');
    chmodSync(file, 0o644);
    const script = `const { writeFileAtomic } = await import(${JSON.stringify(configFileModule)}); writeFileAtomic(${JSON.stringify(file)}, 'a: 2\\n');`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      uid: NOBODY,
      gid: NOBODY,
      cwd: repoRoot, // where --import tsx is found
      env: { ...process.env, TMPDIR: dir, HOME: dir }, // tsx keeps its cache in the temporary folder
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(file, 'utf8'), 'a: 2\n');
    assert.equal(modeOf(file), '644');
    assert.equal(statSync(file).uid, NOBODY);
    assert.match(r.stderr, new RegExp(`warning: ${file} was owned by uid 0 gid 0; only root can keep that owner.*chown 0:0 ${file}`));
  });

  test('writeFileAtomic: a new file takes the umask\'s mode; an existing one keeps its own', (t) => {
    const { dir } = installation(t);
    const fresh = path.join(dir, 'new.yaml');
    const old = process.umask(0o077);
    try {
      writeFileAtomic(fresh, 'a: 1\n');
      assert.equal(modeOf(fresh), '600');
      chmodSync(fresh, 0o640);
      writeFileAtomic(fresh, 'a: 2\n');
      assert.equal(modeOf(fresh), '640');
      assert.equal(readFileSync(fresh, 'utf8'), 'a: 2\n');
    } finally {
      process.umask(old);
    }
  });
});
