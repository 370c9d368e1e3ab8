/**
 * Every idsync process runs with NODE_FLAGS (src/service/node-flags.ts): the installed command by
 * its first line (`env -S`), a user unit of a checkout by its ExecStart=. Checked on the process
 * itself: bin/idsync.js run as a program (its own first line starts node), its command line read
 * from /proc.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../../src/config/load.js';
import { NODE_FLAGS } from '../../src/service/node-flags.js';
import { renderSyncUnit } from '../../src/service/systemd.js';
import { repoRoot } from '../helpers/run-cli.js';

const bin = path.join(repoRoot, 'bin', 'idsync.js');
const dir = mkdtempSync(path.join(tmpdir(), 'idsync-node-flags-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test("bin/idsync.js's first line starts node with the flags", () => {
  assert.ok(NODE_FLAGS.length > 0);
  assert.equal(readFileSync(bin, 'utf8').split('\n')[0], `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
});

test('run as a program, bin/idsync.js is a node process with the flags', async () => {
  // `cloud serve` stays up long enough to read its command line; the process is the command itself.
  const child = spawn(bin, ['cloud', 'serve', '--data', path.join(dir, 'cloud'), '--port', '0'], {
    env: { ...process.env, IDSYNC_CLOUD_ADMIN_PASSWORD: 'Node-Flags-Test-1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    for (let i = 0; i < 200 && !/127\.0\.0\.1:\d+/.test(out); i++) {
      if (child.exitCode !== null) assert.fail(`bin/idsync.js exited ${child.exitCode}: ${out}`);
      await sleep(50);
    }
    const argv = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    assert.match(path.basename(argv[0]!), /^node/, argv.join(' '));
    for (const flag of NODE_FLAGS) assert.ok(argv.includes(flag), `${flag} in ${argv.join(' ')}`);
    assert.ok(argv.indexOf(NODE_FLAGS[0]!) < argv.findIndex((a) => a.endsWith('idsync.js')), 'given to node, before the script');
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
  }
});

test('a user unit that runs a checkout passes the flags to node', () => {
  const config = path.join(dir, 'idsync.yaml');
  writeFileSync(config, 'dataDir: ./data\nconnectors:\n  - name: hr\n    type: ldif\n    path: people.ldif\ncloud:\n  url: http://127.0.0.1:8080\n  auth: { type: client_credentials, clientId: idsync }\n');
  const unit = renderSyncUnit(loadConfig(config), { user: true, searchPath: path.join(dir, 'no-such-dir') }).unit;
  const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(' ');
  assert.equal(exec[0], process.execPath);
  assert.deepEqual(exec.slice(1, 1 + NODE_FLAGS.length), [...NODE_FLAGS]);
  assert.ok(exec[1 + NODE_FLAGS.length]!.endsWith(path.join('bin', 'idsync.js')), exec.join(' '));
});
