/**
 * `idsync service install` writes units a Linux administrator would ship (issue 11, point 6),
 * through the real CLI: a dedicated system user (named, or created with a sysusers.d entry),
 * StateDirectory=/ConfigurationDirectory=, the installed command rather than a checkout's files,
 * a clear refusal for files under /tmp (the unit has PrivateTmp=yes), and a unit for
 * `idsync cloud serve`. Each unit is checked with `systemd-analyze verify` where it is installed;
 * without it the test checks the unit's structure itself (sections, Key=value lines) and says so.
 *
 * The unit's paths must not be under /tmp (that is refused), so this test makes its folders in
 * /var/lib (and one in /etc for ConfigurationDirectory=) when it may write there, and removes them.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findBinary } from '../helpers/integration.js';
import { repoRoot, runCli } from '../helpers/run-cli.js';

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

const systemdAnalyze = findBinary('systemd-analyze');

/** `systemd-analyze verify`, or (not installed) a structural check of the unit text. */
function verifyUnit(file: string): void {
  if (systemdAnalyze) {
    const r = spawnSync(systemdAnalyze, ['verify', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, `systemd-analyze verify ${file}:\n${r.stdout}${r.stderr}`);
    assert.equal(r.stderr.trim(), '', `systemd-analyze verify has no complaints:\n${r.stderr}`);
    return;
  }
  // Structural fallback (systemd-analyze is not installed here).
  const text = readFileSync(file, 'utf8');
  const sections = [...text.matchAll(/^\[(\w+)\]$/gm)].map((m) => m[1]);
  assert.deepEqual(sections, ['Unit', 'Service', 'Install']);
  for (const line of text.split('\n')) if (line && !line.startsWith('#') && !line.startsWith('[')) assert.match(line, /^[A-Z][A-Za-z]+=\S/, `a Key=value line: ${line}`);
  const exec = /^ExecStart=(\S+)/m.exec(text)![1]!;
  assert.ok(path.isAbsolute(exec), 'ExecStart= is an absolute path');
  accessSync(exec, constants.X_OK);
}

const lines = (file: string) => readFileSync(file, 'utf8').split('\n');

function configYaml(dataDir: string, extra = ''): string {
  return `dataDir: ${dataDir}\nconnectors:\n  - name: hr\n    type: ldif\n    path: people.ldif\n${extra}cloud:\n  url: http://127.0.0.1:8080\n  auth: { type: client_credentials, clientId: idsync }\n`;
}

const canWriteSystemDirs = writable('/var/lib') && writable('/etc');

describe('service install: units an administrator would ship (real CLI)', { skip: canWriteSystemDirs ? false : 'needs to write in /var/lib and /etc (root)' }, () => {
  let root: string; // /var/lib/idsync-unit-XXXX
  let etc: string; // /etc/idsync-unit-XXXX
  let exe: string;
  before(() => {
    root = mkdtempSync('/var/lib/idsync-unit-');
    etc = mkdtempSync('/etc/idsync-unit-');
    mkdirSync(path.join(root, 'bin'));
    // The installed command stands in as a script: the unit must run it, not node + this checkout.
    exe = path.join(root, 'bin', 'idsync');
    writeFileSync(exe, '#!/bin/sh\nexit 0\n');
    chmodSync(exe, 0o755);
    writeFileSync(path.join(etc, 'idsync.yaml'), configYaml(path.join(root, 'data')));
  });
  after(() => {
    if (root) rmSync(root, { recursive: true, force: true });
    if (etc) rmSync(etc, { recursive: true, force: true });
  });

  it('the sync unit runs the installed command as a created idsync user, with StateDirectory and ConfigurationDirectory', async () => {
    const out = path.join(root, 'units', 'idsync.service');
    const r = await runCli(['-c', path.join(etc, 'idsync.yaml'), 'service', 'install', '--output', out, '--create-user', '--exec', exe, '--interval', '10m']);
    assert.equal(r.code, 0, r.stderr);
    const unit = lines(out);
    for (const l of [
      `ExecStart=${exe} -c ${path.join(etc, 'idsync.yaml')} serve --interval 10m`,
      'User=idsync',
      'Group=idsync',
      `StateDirectory=${path.basename(root)}/data`,
      'StateDirectoryMode=0700',
      `ConfigurationDirectory=${path.basename(etc)}`,
      'ProtectSystem=strict',
      'PrivateTmp=yes',
      'Restart=on-failure',
      'WantedBy=multi-user.target',
    ]) {
      assert.ok(unit.includes(l), `missing line: ${l}\n${unit.join('\n')}`);
    }
    assert.ok(!unit.some((l) => l.includes(repoRoot)), 'nothing in the unit points into the git checkout');
    assert.ok(!unit.some((l) => l.startsWith('ReadWritePaths=')), 'systemd manages the data directory (StateDirectory=)');
    const sysusers = readFileSync(path.join(root, 'units', 'idsync.sysusers.conf'), 'utf8');
    assert.match(sysusers, new RegExp(`^u idsync - "[^"]+" ${path.join(root, 'data')}$`, 'm'));
    assert.match(r.stdout, /systemd-sysusers/);
    assert.match(r.stdout, /sudo systemctl daemon-reload && sudo systemctl enable --now idsync/);
    verifyUnit(out);
  });

  it('a named user that does not exist gets a warning saying how to create it', async () => {
    const out = path.join(root, 'units', 'named.service');
    const r = await runCli(['-c', path.join(etc, 'idsync.yaml'), 'service', 'install', '--output', out, '--run-as', 'idsync-nosuchuser', '--exec', exe]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(lines(out).includes('User=idsync-nosuchuser'));
    assert.match(r.stderr, /warning: the user idsync-nosuchuser does not exist yet: create it with --create-user/);
  });

  it('without an installed command a system unit is refused instead of pointing at the checkout; an npm-linked checkout gets a warning', async () => {
    const empty = path.join(root, 'empty-path');
    mkdirSync(empty, { recursive: true });
    const r = await runCli(['-c', path.join(etc, 'idsync.yaml'), 'service', 'install', '--output', '-'], { env: { PATH: `${path.dirname(process.execPath)}:${empty}` } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /the `idsync` command is not on PATH/);
    assert.match(r.stderr, /npm install -g/);

    const linked = await runCli(['-c', path.join(etc, 'idsync.yaml'), 'service', 'install', '--output', '-', '--exec', path.join(repoRoot, 'bin', 'idsync.js')]);
    assert.equal(linked.code, 0, linked.stderr);
    assert.match(linked.stderr, /warning: .*resolves into the git checkout/);
  });

  it('files under /tmp are refused with the reason (PrivateTmp) and the fix', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'idsync-unit-tmp-'));
    try {
      writeFileSync(path.join(dir, 'idsync.yaml'), configYaml('./data'));
      const r = await runCli(['-c', path.join(dir, 'idsync.yaml'), 'service', 'install', '--output', '-', '--exec', exe]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /the configuration file \/tmp\/\S+, .* under \/tmp: the service runs with PrivateTmp=yes \(its own empty \/tmp\)/);
      assert.match(r.stderr, /\/var\/lib\/idsync/);
      // A --user unit (a test on a workstation) has no PrivateTmp and is allowed.
      const user = await runCli(['-c', path.join(dir, 'idsync.yaml'), 'service', 'install', '--user', '--output', '-', '--exec', exe]);
      assert.equal(user.code, 0, user.stderr);
      assert.ok(!user.stdout.includes('PrivateTmp'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--cloud writes idsync-cloud.service for `idsync cloud serve`; plain HTTP off loopback gets a warning', async () => {
    const out = path.join(root, 'units', 'idsync-cloud.service');
    const data = path.join(root, 'cloud');
    const r = await runCli(['service', 'install', '--cloud', '--output', out, '--create-user', '--exec', exe, '--data', data, '--port', '8443']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', 'loopback: no warning');
    const unit = lines(out);
    for (const l of [
      `ExecStart=${exe} cloud serve --data ${data} --host 127.0.0.1 --port 8443`,
      'User=idsync-cloud',
      `StateDirectory=${path.basename(root)}/cloud`,
      'EnvironmentFile=-/etc/idsync/cloud.env',
      'PrivateTmp=yes',
    ]) {
      assert.ok(unit.includes(l), `missing line: ${l}\n${unit.join('\n')}`);
    }
    assert.match(readFileSync(path.join(root, 'units', 'idsync-cloud.sysusers.conf'), 'utf8'), /^u idsync-cloud /m);
    verifyUnit(out);

    const open = await runCli(['service', 'install', '--cloud', '--output', '-', '--exec', exe, '--data', data, '--host', '0.0.0.0']);
    assert.equal(open.code, 0, open.stderr);
    assert.match(open.stderr, /warning: the cloud directory listens with plain HTTP on 0\.0\.0\.0/);
  });
});
