/**
 * `idsync events` on a real database: a real configuration file, the real withContext (which opens
 * idsync.db in the data directory), the command run in a child process as a user would run it.
 * The driver builds the program the way src/cli/main.ts does, with only this command registered, so
 * the test does not depend on the command index.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { InvalidArgumentError } from 'commander';
import { formatEvent, parseIdOption, parseLevelOption, parseLimitOption, parseSinceOption, parseSourceOption } from '../../src/cli/commands/events.js';
import { EVENTS } from '../../src/events/catalog.js';
import { EventLog, eventMigrations, type EventRecord } from '../../src/events/log.js';
import { openDatabase } from '../../src/store/database.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = (p: string) => JSON.stringify(pathToFileURL(path.join(ROOT, p)).href);

const DRIVER = `
import { Command, CommanderError } from 'commander';
import { registerEventsCommands } from ${src('src/cli/commands/events.ts')};
import { reportError } from ${src('src/cli/output.ts')};
const program = new Command('idsync').option('-c, --config <file>').exitOverride();
registerEventsCommands(program);
const args = process.argv.slice(1);
try {
  await program.parseAsync(args, { from: 'user' });
} catch (err) {
  process.exitCode = err instanceof CommanderError ? (err.exitCode === 0 ? 0 : 2) : reportError(err, args.includes('--json'));
}
`;

let dir: string;
let config: string;
let dbFile: string;

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'idsync-cli-events-'));
  config = path.join(dir, 'idsync.yaml');
  writeFileSync(
    config,
    ['dataDir: ./data', 'connectors:', '  - type: ldif', '    name: people', '    path: people.ldif', 'cloud:', '  url: http://127.0.0.1:9', ''].join('\n'),
  );
  dbFile = path.join(dir, 'data', 'idsync.db');
  const db = openDatabase(dbFile, eventMigrations);
  let t = Date.now() - 3 * 3_600_000; // 3 hours ago, then a minute apart
  const log = new EventLog(db, { now: () => new Date((t += 60_000)) });
  log.emit(EVENTS.SERVICE_STARTED, { version: '0.1.0', pid: 42 });
  log.emit(EVENTS.CREDENTIAL_CHANGED, { connector: 'cloud' });
  log.emit(EVENTS.CLOUD_ACCESS_DENIED, { error: 'HTTP 401', token: 'eyJx.eyJy.z' });
  log.emit(EVENTS.PHS_PING_ERROR, { error: 'The user name or password is incorrect' });
  log.emit(EVENTS.PHS_HEARTBEAT);
  db.close();
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function idsync(args: string[], options: { onStdout?: (all: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', DRIVER, '--', '--config', config, ...args], {
      cwd: ROOT,
      env: { ...process.env, IDSYNC_CONFIG: '', INVOCATION_ID: '', JOURNAL_STREAM: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      options.onStdout?.(stdout, child);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('--json prints every matching event as an array', async () => {
  const r = await idsync(['events', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const events = JSON.parse(r.stdout) as EventRecord[];
  assert.deepEqual(events.map((e) => e.id), [6101, 6201, 115, 655, 654]);
  assert.equal(events[2]!.details.token, '[redacted]');
  assert.match(events[2]!.resolution, /idsync credentials set cloud/);
});

test('filters: level, id (numbers or names), source, since, limit', async () => {
  const ids = async (...args: string[]) => {
    const r = await idsync(['events', '--json', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as EventRecord[]).map((e) => e.id);
  };
  assert.deepEqual(await ids('--level', 'Error'), [115, 655]);
  assert.deepEqual(await ids('--id', '115,PHS_HEARTBEAT', '--source', 'directory'), [115, 654]);
  assert.deepEqual(await ids('--source', 'credentials'), [6201]);
  assert.deepEqual(await ids('--since', '2h'), []);
  assert.deepEqual(await ids('--since', new Date(Date.now() - 3 * 3_600_000 + 150_000).toISOString()), [115, 655, 654]);
  assert.deepEqual(await ids('-n', '2'), [655, 654]);
});

test('table output shows the fix under errors and warnings', async () => {
  const r = await idsync(['events']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^TIME\s+ID\s+LEVEL\s+SOURCE\s+MESSAGE$/);
  const i = lines.findIndex((l) => /\s115\s+Error\s+Directory Synchronization\s+Access to the cloud directory has been denied: HTTP 401$/.test(l));
  assert.ok(i > 0, r.stdout);
  assert.match(lines[i + 1]!, /^\s+fix: The cloud directory refused .*`idsync credentials set cloud`/);
  const hb = lines.findIndex((l) => /\s654\s+Information\s/.test(l));
  assert.equal(hb, lines.length - 1); // information: no fix line
  const none = await idsync(['events', '--id', '6900']);
  assert.match(none.stdout, /no events match/);
});

test('a bad --since, level, id or limit is a usage error (exit 2) that says what is expected', async () => {
  for (const [args, expected] of [
    [['--since', 'yesterday'], /expected a duration such as 30m, 2h or 7d, or an ISO 8601 time/],
    [['--level', 'fatal'], /unknown level "fatal"/],
    [['--id', 'nope'], /not an event ID or name/],
    [['--limit', '0'], /whole number/],
  ] as const) {
    const r = await idsync(['events', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, expected);
    assert.equal(r.stdout, '');
  }
});

test('--help explains the filters with examples', async () => {
  const r = await idsync(['events', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /--since <when>/);
  assert.match(r.stdout, /Examples:/);
  assert.match(r.stdout, /idsync events --follow/);
});

test('--follow --json prints new events as JSON lines until SIGINT', async () => {
  let emitted = false;
  let interrupted = false;
  const r = await idsync(['events', '--follow', '--json', '--level', 'Error,Warning'], {
    onStdout: (all, child) => {
      const lines = all.split('\n').filter(Boolean);
      if (!emitted && lines.length >= 2) {
        emitted = true;
        const db = openDatabase(dbFile, eventMigrations);
        const log = new EventLog(db);
        log.emit(EVENTS.PHS_HEARTBEAT); // filtered out
        log.emit(EVENTS.PCN_ERROR, { error: 'access denied' });
        db.close();
      } else if (!interrupted && lines.some((l) => l.includes('"id":6900'))) {
        interrupted = true;
        child.kill('SIGINT');
      }
    },
  });
  assert.equal(r.code, 0, r.stderr);
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as EventRecord);
  assert.deepEqual(events.map((e) => e.id), [115, 655, 6900]);
  assert.equal(events[2]!.message, 'The server encountered an unexpected error while processing a password change notification: access denied');
});

test('option parsers', () => {
  assert.deepEqual(parseLevelOption('error, warn,Information'), ['Error', 'Warning', 'Information']);
  assert.deepEqual(parseIdOption('0,115, phs_ping_error'), [0, 115, 655]);
  assert.deepEqual(parseSourceOption('idsync service,engine'), ['idsync Service', 'idsync Sync Engine']);
  assert.throws(() => parseSourceOption('idsync'), (e: unknown) => e instanceof InvalidArgumentError && /ambiguous/.test(e.message));
  assert.throws(() => parseLevelOption(','), InvalidArgumentError);
  assert.throws(() => parseSinceOption('2x'), InvalidArgumentError);
  assert.equal(parseLimitOption('10'), 10);
  assert.throws(() => parseLimitOption('1e3'), InvalidArgumentError);
  const line = formatEvent({
    seq: 1, id: 0, name: 'AUTH_USER_OR_PASSWORD_INCORRECT', source: 'Directory Synchronization', level: 'Error',
    time: '2026-05-01T08:00:00.123Z', message: 'm', details: {}, resolution: 'do x',
  });
  assert.equal(line, `2026-05-01 08:00:00Z      0  Error        Directory Synchronization  m\n${' '.repeat(29)}fix: do x`);
});
