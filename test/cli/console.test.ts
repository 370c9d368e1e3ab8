/**
 * `idsync console set-password|status` through a real process (the CLI from src/ via tsx): the
 * password from stdin, only an scrypt hash on disk (0600), event 6155, clear refusals.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { checkConsolePassword, consoleAccountPath } from '../../src/console/account.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { EVENTS } from '../../src/events/catalog.js';
import { openContext } from '../../src/engine/context.js';
import { loadConfig } from '../../src/config/load.js';
import { commandGroupCode, ROOT } from '../helpers/processes.js';

const CODE = commandGroupCode('console', 'registerConsoleCommands');
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function setup(): { config: string; dataDir: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-cli-console-'));
  dirs.push(dir);
  const config = path.join(dir, 'idsync.yaml');
  writeFileSync(config, ['dataDir: ./data', 'connectors:', '  - name: hr', '    type: ldif', '    path: ./people.ldif', 'cloud:', '  url: http://127.0.0.1:9', ''].join('\n'));
  return { config, dataDir: path.join(dir, 'data') };
}

function idsync(args: string[], input = '') {
  const env = { ...process.env };
  delete env.IDSYNC_CONFIG;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CODE, '--', ...args], { cwd: ROOT, input, encoding: 'utf8', env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('idsync console', () => {
  it('set-password stores only an scrypt hash (0600), records event 6155, and the password checks', async () => {
    const { config, dataDir } = setup();
    const password = 'Console-cli-pass-77!';
    const r = idsync(['-c', config, 'console', 'set-password', '--user', 'ops'], `${password}\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /console account "ops" saved/);
    assert.ok(!r.stdout.includes(password) && !r.stderr.includes(password));
    const file = consoleAccountPath(dataDir);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const text = readFileSync(file, 'utf8');
    assert.ok(!text.includes(password), 'the password is not stored');
    assert.match(JSON.parse(text).hash, /^scrypt\$/);
    assert.equal(await checkConsolePassword(dataDir, 'ops', password), true);
    assert.equal(await checkConsolePassword(dataDir, 'ops', password + 'x'), false);
    assert.equal(await checkConsolePassword(dataDir, 'other', password), false);
    const ctx = openContext(loadConfig(config));
    try {
      const ev = ctx.events.latest(EVENTS.CONSOLE_ACCOUNT_SET);
      assert.equal(ev?.details.user, 'ops');
    } finally {
      ctx.close();
    }
    const s = idsync(['-c', config, 'console', 'status', '--json']);
    assert.equal(s.code, 0, s.stderr);
    const status = JSON.parse(s.stdout);
    assert.equal(status.username, 'ops');
    assert.equal(status.hash, undefined, 'status never shows the hash');
  });

  it('a short password or a bad user name is refused with exit 2 and nothing written', () => {
    const { config, dataDir } = setup();
    const short = idsync(['-c', config, 'console', 'set-password'], 'short\n');
    assert.equal(short.code, EXIT.USAGE, short.stderr);
    assert.match(short.stderr, /too short/);
    const bad = idsync(['-c', config, 'console', 'set-password', '--user', 'a b'], 'Long-enough-password-1\n');
    assert.equal(bad.code, EXIT.USAGE, bad.stderr);
    const empty = idsync(['-c', config, 'console', 'set-password'], '\n');
    assert.equal(empty.code, EXIT.USAGE, empty.stderr);
    assert.match(empty.stderr, /no password on standard input/);
    assert.equal(existsSync(consoleAccountPath(dataDir)), false);
    const s = idsync(['-c', config, 'console', 'status']);
    assert.match(s.stdout, /no console account yet/);
  });
});
