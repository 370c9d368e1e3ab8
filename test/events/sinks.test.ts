import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { isIdsyncError } from '../../src/core/errors.js';
import { EVENTS } from '../../src/events/catalog.js';
import { EventLog, eventMigrations } from '../../src/events/log.js';
import { createEventSinks, formatSyslogLine, JournaldSink, JsonLinesFileSink, LoggerSink, underSystemd } from '../../src/events/sinks.js';
import { openDatabase } from '../../src/store/database.js';

let dir: string;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'idsync-sinks-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function waitFor(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(20);
  }
}

test('JSON lines file: one scrubbed object per line, appended, survives rotation', () => {
  const file = path.join(dir, 'logs', 'events.jsonl');
  const db = openDatabase(path.join(dir, 'jsonl.db'), eventMigrations);
  const log = new EventLog(db, { sinks: [new JsonLinesFileSink(file)] });
  const a = log.emit(EVENTS.SERVICE_STARTED, { version: '0.1.0', pid: 7 });
  const b = log.emit(EVENTS.CLOUD_ACCESS_DENIED, { error: 'denied', clientSecret: 'abc' });
  const lines = readFileSync(file, 'utf8').split('\n');
  assert.equal(lines.length, 3);
  assert.equal(lines[2], '');
  assert.deepEqual(JSON.parse(lines[0]!), a);
  assert.deepEqual(JSON.parse(lines[1]!), b);
  assert.ok(!lines[1]!.includes('abc"'));
  assert.equal(statSync(file).mode & 0o777, 0o600);
  // logrotate moves the file away: the next event starts a new one
  renameSync(file, file + '.1');
  log.emit(EVENTS.SERVICE_STOPPED);
  assert.equal(readFileSync(file, 'utf8').trim().split('\n').length, 1);
  db.close();
});

test('journald lines carry the syslog priority, ID, name and, for problems, the fix', () => {
  const db = openDatabase(path.join(dir, 'journald.db'), eventMigrations);
  const out: string[] = [];
  const log = new EventLog(db, { sinks: [new JournaldSink((l) => out.push(l))] });
  log.emit(EVENTS.PHS_PING_ERROR, { error: 'The user name or password is incorrect\nsecond line' });
  log.emit(EVENTS.PHS_HEARTBEAT);
  log.emit(EVENTS.HEALTH_DEGRADED, { check: 'cloud', reason: 'auth' });
  assert.equal(out.length, 3);
  assert.match(out[0]!, /^<3>event 655 PHS_PING_ERROR \(Directory Synchronization\): Password hash synchronization could not ping the cloud directory: The user name or password is incorrect second line Fix: .*idsync credentials set cloud.*\n$/);
  assert.equal(out[0]!.split('\n').length, 2); // exactly one line
  assert.equal(out[1], '<6>event 654 PHS_HEARTBEAT (Directory Synchronization): Password hash synchronization is running: the cloud directory answered the ping (heartbeat).\n');
  assert.match(out[2]!, /^<4>event 6110 /);
  db.close();
});

test('systemd detection and the sink factory', () => {
  assert.equal(underSystemd({}), false);
  assert.equal(underSystemd({ INVOCATION_ID: 'abc' }), true);
  assert.equal(underSystemd({ JOURNAL_STREAM: '8:1234' }), true);
  assert.equal(createEventSinks({ env: {} }).length, 0);
  const sd = createEventSinks({ env: { INVOCATION_ID: 'x' } });
  assert.equal(sd.length, 1);
  assert.ok(sd[0] instanceof JournaldSink);
  assert.equal(createEventSinks({ env: { INVOCATION_ID: 'x' }, systemLog: 'off' }).length, 0);
  const file = path.join(dir, 'factory', 'e.jsonl');
  const both = createEventSinks({ jsonFile: file, systemLog: 'journald' });
  assert.ok(both[0] instanceof JsonLinesFileSink && both[1] instanceof JournaldSink);
});

test('syslog via one long-lived logger process (a stand-in here)', async () => {
  const file = path.join(dir, 'fake-logger.txt');
  const script = `process.stdin.pipe(require('fs').createWriteStream(${JSON.stringify(file)}))`;
  const sink = new LoggerSink({ command: process.execPath, args: ['-e', script] });
  assert.equal(sink.active, true);
  const db = openDatabase(path.join(dir, 'logger.db'), eventMigrations);
  const log = new EventLog(db, { sinks: [sink] });
  log.emit(EVENTS.CONNECTOR_TLS_FAILED, { connector: 'corp-ad', url: 'ldaps://dc1', error: 'self-signed certificate' });
  log.emit(EVENTS.CREDENTIAL_TEST_OK, { connector: 'corp-ad' });
  log.close();
  await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').split('\n').length >= 3);
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  assert.match(lines[0]!, /^<3>event 6303 CONNECTOR_TLS_FAILED/);
  assert.match(lines[1]!, /^<6>event 6203 CREDENTIAL_TEST_OK/);
  db.close();
});

test('a missing logger turns the sink off instead of failing', async () => {
  const sink = new LoggerSink({ command: path.join(dir, 'no-such-logger') });
  await waitFor(() => !sink.active);
  const rec = { seq: 1, id: 654, name: 'PHS_HEARTBEAT', source: 'Directory Synchronization', level: 'Information', time: '', message: 'm', details: {}, resolution: '' } as const;
  sink.write(rec);
  assert.equal(formatSyslogLine(rec), '<6>event 654 PHS_HEARTBEAT (Directory Synchronization): m');
});

test('events.jsonFile in the configuration: every event of a context also goes to that JSON lines file', async () => {
  const { loadConfig } = await import('../../src/config/load.js');
  const { openContext } = await import('../../src/engine/context.js');
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-sinkcfg-'));
  try {
    writeFileSync(
      path.join(dir, 'idsync.yaml'),
      'connectors:\n  - { name: hr, type: ldif, path: ./x.ldif }\ncloud:\n  url: http://127.0.0.1:1\nevents:\n  jsonFile: ./events.jsonl\n  systemLog: off\n',
    );
    const ctx = openContext(loadConfig(path.join(dir, 'idsync.yaml')));
    ctx.events.emit(EVENTS.SYNC_CYCLE_STARTED, { runId: 7, profile: 'cycle' });
    ctx.close();
    const lines = readFileSync(path.join(dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: number });
    assert.deepEqual(lines.map((l) => l.id), [6001]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('JSON lines file whose folder cannot be made (under a regular file): PATH_UNUSABLE naming the folder', () => {
  const blocker = path.join(dir, 'not-a-folder');
  writeFileSync(blocker, 'x');
  const folder = path.join(blocker, 'logs');
  assert.throws(() => new JsonLinesFileSink(path.join(folder, 'events.jsonl')), (err: unknown) => {
    assert.ok(isIdsyncError(err, 'PATH_UNUSABLE'), String(err));
    assert.equal(err.message, `cannot create the folder of events.jsonFile ${folder}: a part of the path is a regular file, not a folder (ENOTDIR)`);
    assert.match(err.hint ?? '', /Fix the path in the configuration/);
    return true;
  });
});
