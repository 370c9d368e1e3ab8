import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { EVENTS } from '../../src/events/catalog.js';
import { EventLog, eventMigrations, renderTemplate, type EventRecord, type EventSink } from '../../src/events/log.js';
import { openDatabase, type Database } from '../../src/store/database.js';

let dir: string;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'idsync-events-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function freshDb(): Database {
  return openDatabase(path.join(dir, `db${++n}`, 'idsync.db'), eventMigrations);
}

/** A clock the test moves by hand. */
function clock(start = '2026-05-10T12:00:00.000Z') {
  let t = new Date(start).getTime();
  return { now: () => new Date(t), advance: (ms: number) => (t += ms) };
}

test('emit stores a rendered, durable record and returns it', () => {
  const file = path.join(dir, 'durable', 'idsync.db');
  const c = clock();
  let db = openDatabase(file, eventMigrations);
  const log = new EventLog(db, { now: c.now });
  const r = log.emit(EVENTS.CLOUD_ACCESS_DENIED, { error: 'HTTP 401 invalid_client', connector: 'cloud' });
  assert.equal(r.seq, 1);
  assert.equal(r.id, 115);
  assert.equal(r.name, 'CLOUD_ACCESS_DENIED');
  assert.equal(r.source, 'Directory Synchronization');
  assert.equal(r.level, 'Error');
  assert.equal(r.time, '2026-05-10T12:00:00.000Z');
  assert.equal(r.message, 'Access to the cloud directory has been denied: HTTP 401 invalid_client');
  assert.match(r.resolution, /idsync credentials set cloud/);
  assert.deepEqual(r.details, { error: 'HTTP 401 invalid_client', connector: 'cloud' });
  db.close();

  // survives a reopen (with the migration applied twice: by openDatabase and by EventLog)
  db = openDatabase(file, eventMigrations);
  const again = new EventLog(db).query();
  assert.deepEqual(again, [r]);
  db.close();
});

test('resolution placeholders are filled from details; missing ones stay visible', () => {
  const db = freshDb();
  const log = new EventLog(db);
  const r = log.emit(EVENTS.AUTH_USER_OR_PASSWORD_INCORRECT, { connector: 'corp-ad' });
  assert.match(r.message, /^The user name or password is incorrect: connector corp-ad/);
  assert.match(r.resolution, /`idsync credentials set corp-ad`/);
  const bare = log.emit(EVENTS.AUTH_USER_OR_PASSWORD_INCORRECT);
  assert.match(bare.message, /connector \{connector\}/);
  assert.deepEqual(bare.details, {});
  assert.equal(renderTemplate('{a} {b} {c} {d}', { a: 1, b: { message: 'boom' }, c: [1], d: null }), '1 boom [1] {d}');
  db.close();
});

test('query filters by level, ids, source, since, afterSeq and limit', () => {
  const db = freshDb();
  const c = clock();
  const log = new EventLog(db, { now: c.now });
  log.emit(EVENTS.SERVICE_STARTED, { version: '0.1.0', pid: 1 }); // 1  t0
  c.advance(60_000);
  log.emit(EVENTS.PHS_HEARTBEAT); // 2  t0+1m
  c.advance(60_000);
  log.emit(EVENTS.CLOUD_ACCESS_DENIED, { error: 'denied' }); // 3  t0+2m
  c.advance(60_000);
  log.emit(EVENTS.PHS_PING_ERROR, { error: 'The user name or password is incorrect' }); // 4
  c.advance(60_000);
  log.emit(EVENTS.HEALTH_DEGRADED, { check: 'cloud', reason: 'auth' }); // 5
  c.advance(60_000);
  log.emit(EVENTS.CREDENTIAL_CHANGED, { connector: 'cloud' }); // 6  t0+5m

  const seqs = (rs: EventRecord[]) => rs.map((r) => r.seq);
  assert.deepEqual(seqs(log.query()), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(seqs(log.query({ level: 'Error' })), [3, 4]);
  assert.deepEqual(seqs(log.query({ level: ['Error', 'Warning'] })), [3, 4, 5]);
  assert.deepEqual(seqs(log.query({ ids: [115, 655] })), [3, 4]);
  assert.deepEqual(seqs(log.query({ ids: [654] })), [2]);
  assert.deepEqual(seqs(log.query({ source: 'idsync Service' })), [1, 5]);
  assert.deepEqual(seqs(log.query({ source: ['idsync Credentials', 'idsync Service'] })), [1, 5, 6]);
  assert.deepEqual(seqs(log.query({ since: new Date('2026-05-10T12:03:00.000Z') })), [4, 5, 6]);
  assert.deepEqual(seqs(log.query({ since: new Date('2026-05-10T12:03:00.000Z'), level: 'Error' })), [4]);
  // limit without afterSeq: the newest N, oldest first
  assert.deepEqual(seqs(log.query({ limit: 2 })), [5, 6]);
  // afterSeq: the first N after it, for following
  assert.deepEqual(seqs(log.query({ afterSeq: 2, limit: 2 })), [3, 4]);
  assert.deepEqual(seqs(log.query({ afterSeq: 6 })), []);
  assert.deepEqual(seqs(log.query({ ids: [] , level: [] })), [1, 2, 3, 4, 5, 6]);
  assert.equal(log.lastSeq(), 6);

  assert.equal(log.latest(EVENTS.PHS_HEARTBEAT)?.seq, 2);
  assert.equal(log.latest(EVENTS.PCN_ERROR), undefined);
  db.close();
});

test('emit never persists secrets, in details or in the message', () => {
  const db = freshDb();
  const log = new EventLog(db);
  const orgId = 'v1;PPH1_MD4,0a1b2c3d4e5f60718293,1000,' + 'ab'.repeat(32) + ';';
  const nt = '8846f7eaee8fb117ad06bdd830b7586c';
  const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig-nature_x';
  log.emit(EVENTS.PHS_CHANGE_REQUEST, {
    anchor: nt, // would render into the message
    dn: `CN=x,${orgId}`,
    password: 'Passw0rd!',
    orgIdHash: orgId,
    token: jwt,
    unicodePwd: Buffer.from('"Passw0rd!"', 'utf16le'),
    error: `Bearer ${jwt}`,
  });
  log.emit(EVENTS.PCN_ERROR, { error: `hash ${orgId} rejected`, credential: 'hunter2' });
  const dump = JSON.stringify(db.prepare('SELECT * FROM events').all());
  for (const secret of [orgId, 'PPH1', nt, jwt, 'Passw0rd', 'hunter2', 'eyJ']) assert.ok(!dump.includes(secret), `leaked ${secret}`);
  const [r] = log.query({ ids: [656] });
  assert.equal(r!.message, 'Password change request for [redacted] (CN=x,[redacted]).');
  assert.equal(r!.details.password, '[redacted]');
  assert.equal(r!.details.unicodePwd, '[redacted]');
  db.close();
});

test('sinks receive each record after it is stored; a failing sink does not fail emit', () => {
  const db = freshDb();
  const seen: EventRecord[] = [];
  const good: EventSink = { write: (r) => void seen.push(r) };
  const bad: EventSink = {
    write: () => {
      throw new Error('disk full');
    },
  };
  let closed = 0;
  const log = new EventLog(db, { sinks: [bad, good, { write() {}, close: () => void closed++ }] });
  const r = log.emit(EVENTS.SERVICE_STARTED, { version: '1', pid: 2, secret: 'x' });
  assert.deepEqual(seen, [r]);
  assert.equal(seen[0]!.details.secret, '[redacted]');
  assert.equal(log.sinkErrors, 1);
  log.close();
  assert.equal(closed, 1);
  db.close();
});

test('prune removes events older than the retention and keeps seq increasing', () => {
  const db = freshDb();
  const c = clock();
  const log = new EventLog(db, { now: c.now });
  log.emit(EVENTS.PHS_HEARTBEAT);
  c.advance(20 * 86_400_000);
  log.emit(EVENTS.PHS_HEARTBEAT);
  c.advance(15 * 86_400_000); // first is 35 days old, second 15
  assert.equal(log.prune(), 1);
  assert.deepEqual(log.query().map((r) => r.seq), [2]);
  assert.equal(log.prune(7), 1);
  assert.deepEqual(log.query(), []);
  // an emptied log does not reuse positions (followers rely on afterSeq)
  assert.equal(log.emit(EVENTS.PHS_HEARTBEAT).seq, 3);
  assert.throws(() => log.prune(-1), /retention/);
  db.close();
});

test('a store failure is reported as STORE_FAILED', () => {
  const db = freshDb();
  const log = new EventLog(db);
  db.exec('DROP TABLE events');
  assert.throws(() => log.emit(EVENTS.PHS_HEARTBEAT), (err: unknown) => (err as { code?: string }).code === 'STORE_FAILED');
  db.close();
});

test('tryEmit records like emit; when the store fails it hands the redacted message and code to the fallback and throws nothing', () => {
  const db = freshDb();
  const log = new EventLog(db);
  const said: string[] = [];
  const ok = log.tryEmit(EVENTS.PHS_BATCH_ERROR, { connector: 'cloud', error: 'boom', code: 'LEASE_LOST' }, (m) => said.push(m));
  assert.equal(ok?.id, 652);
  assert.deepEqual(log.query({ ids: [652] }).map((r) => r.details.code), ['LEASE_LOST']);
  assert.equal(said.length, 0);
  db.exec('DROP TABLE events');
  const lost = log.tryEmit(EVENTS.PHS_BATCH_ERROR, { connector: 'cloud', error: 'a value 8846F7EAEE8FB117AD06BDD830B7586C leaked', code: 'STORE_FAILED' }, (m) => said.push(m));
  assert.equal(lost, undefined);
  assert.equal(said.length, 1);
  assert.match(said[0]!, /^event 652 PHS_BATCH_ERROR \(STORE_FAILED\): A password hash synchronization batch for connector cloud failed: .*; not recorded in the event log: /);
  assert.doesNotMatch(said[0]!, /8846F7EA/, 'the fallback gets the redacted text, as the log would have');
  db.close();
});
