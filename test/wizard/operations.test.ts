/**
 * `idsync init` writes the configuration file last: when setting up the store fails (here: a data
 * directory under a regular file), no idsync.yaml is left behind (the next `init` used to refuse
 * with "already exists"), and `init --force` leaves the file it was to replace as it was. The real
 * CLI against a real cloud directory (in this process) and an LDIF source.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { runCli } from '../helpers/run-cli.js';

describe('init leaves no configuration file when it fails after the secrets were tested', () => {
  let cloud: TestCloud;
  before(async () => {
    cloud = await startTestCloud();
  });
  after(async () => {
    await cloud.close();
  });

  const SECRET_ENV = 'IDSYNC_TEST_CLOUD_SECRET';
  function init(dir: string, dataDir: string, extra: string[] = []) {
    return runCli(
      [
        '--config', path.join(dir, 'idsync.yaml'), 'init', '--non-interactive',
        '--source-type', 'ldif', '--source-name', 'people', '--source-path', path.join(dir, 'people.ldif'),
        '--cloud-url', cloud.url, '--cloud-client-id', cloud.syncClientId, '--cloud-secret-env', SECRET_ENV,
        '--data-dir', dataDir, ...extra,
      ],
      { env: { [SECRET_ENV]: cloud.syncSecret } },
    );
  }
  function scratch(t: { after(fn: () => void): void }): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'idsync-init-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, 'people.ldif'), 'dn: dc=example,dc=com\nobjectClass: domain\ndc: example\n');
    return dir;
  }

  test('a data directory under a regular file: PATH_UNUSABLE, no idsync.yaml; the corrected init then succeeds', async (t) => {
    const dir = scratch(t);
    const bad = path.join(dir, 'people.ldif', 'data');
    const r = await init(dir, bad);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`error \\[PATH_UNUSABLE\\]: cannot create the data directory ${bad}: a part of the path is a regular file`));
    assert.ok(!existsSync(path.join(dir, 'idsync.yaml')), 'no configuration file was left behind');

    const again = await init(dir, path.join(dir, 'data'));
    assert.equal(again.code, 0, again.stderr);
    assert.match(readFileSync(path.join(dir, 'idsync.yaml'), 'utf8'), /dataDir: .*\/data/);
  });

  test('init --force that fails leaves the existing configuration file untouched', async (t) => {
    const dir = scratch(t);
    const file = path.join(dir, 'idsync.yaml');
    const ok = await init(dir, path.join(dir, 'data'));
    assert.equal(ok.code, 0, ok.stderr);
    const before = readFileSync(file, 'utf8');
    const r = await init(dir, path.join(dir, 'people.ldif', 'data'), ['--force']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /PATH_UNUSABLE/);
    assert.equal(readFileSync(file, 'utf8'), before, 'the file is the one the first init wrote');
  });
});
