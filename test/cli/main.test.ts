/**
 * The command line loads only the command group a command line runs (src/cli/commands/index.ts):
 * which groups an argv needs, that the table says what each group registers, and through the real
 * CLI in a child process that help, a group's commands and a mistyped command still work.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Command } from 'commander';
import { commandGroups } from '../../src/cli/commands/index.js';
import { groupsFor } from '../../src/cli/main.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const RUNNER = path.join(ROOT, 'test/helpers/idsync-main.ts');
const TSX = path.join(ROOT, 'node_modules/tsx/dist/loader.mjs');

function idsync(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    delete env.IDSYNC_CONFIG;
    const child = spawn(process.execPath, ['--import', TSX, RUNNER, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const names = (argv: string[]) => groupsFor(['node', 'idsync', ...argv]).map((g) => g.name);
const ALL = commandGroups.map((g) => g.name);

describe('the CLI loads the command group it runs', () => {
  test('which groups a command line needs', () => {
    assert.deepEqual(names(['passwords', 'status', 'alice']), ['passwords']);
    assert.deepEqual(names(['-c', 'events.yaml', 'passwords', 'status', 'alice']), ['passwords'], "the configuration file's name is not the command");
    assert.deepEqual(names(['--config', 'sync', 'doctor', '--json']), ['doctor']);
    assert.deepEqual(names(['--config=x.yaml', 'service', 'status']), ['service']);
    assert.deepEqual(names(['-cx.yaml', 'events']), ['events']);
    assert.deepEqual(names(['sync', '--help']), ['sync']);
    assert.deepEqual(names(['--version']), []);
    assert.deepEqual(names(['-V']), []);
    assert.deepEqual(names([]), ALL, 'no command: the help lists them all');
    assert.deepEqual(names(['--help']), ALL);
    assert.deepEqual(names(['--version', '--help']), ALL);
    assert.deepEqual(names(['help', 'sync']), ALL);
    assert.deepEqual(names(['pasword', 'status']), ALL, 'a mistyped command: its error suggests from all of them');
    assert.deepEqual(names(['--', 'sync']), ALL);
    assert.deepEqual(names(['-c', '--version']), ALL, "`--version` as the configuration file's name is no version request");
    assert.deepEqual(names(['--config', '-V', 'sync']), ['sync']);
  });

  test('each group registers exactly the one top-level command it is listed under', async () => {
    assert.equal(new Set(ALL).size, ALL.length, 'no name twice');
    for (const group of commandGroups) {
      const program = new Command('idsync');
      (await group.load())(program);
      assert.deepEqual(program.commands.map((c) => c.name()), [group.name], `src/cli/commands/${group.name}.ts`);
      assert.ok(readFileSync(path.join(ROOT, 'src/cli/commands', `${group.name}.ts`)), 'the file is named after the group');
    }
  });

  test('through the real CLI: help lists every group, a group runs, a typo is a usage error with a suggestion', async () => {
    const [help, version, group, typo] = await Promise.all([idsync(['--help']), idsync(['--version']), idsync(['hash', 'nt', '--help']), idsync(['pasword', 'status', 'x'])]);
    assert.equal(help.code, 0);
    for (const name of ALL) assert.match(help.stdout, new RegExp(`^  ${name}\\b`, 'm'), `--help lists ${name}`);
    assert.equal(version.code, 0);
    assert.equal(version.stdout.trim(), (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
    assert.equal(group.code, 0, group.stderr);
    assert.match(group.stdout, /Usage: idsync hash nt/);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /unknown command 'pasword'/);
    assert.match(typo.stderr, /Did you mean passwords\?/);
  });
});
