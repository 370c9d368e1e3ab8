/**
 * The secret scanner finds a planted secret in every encoding and every place it searches — so a
 * clean scan in an end-to-end test means something — and stays quiet when nothing is planted.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ntHash } from '../../src/passwords/hash.js';
import { Sqlite } from '../../src/store/sqlite-driver.js';
import { assertNoSecrets, scanForSecrets, SecretSet } from './secret-scan.js';

const PASSWORD = 'Planted-Pa55word!';
const TOKEN = 'tok_3f9a0c1d2e7b44aa';

describe('secret scanner', () => {
  let dir: string;
  let secrets: SecretSet;
  let nt: Buffer;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'idsync-secret-scan-'));
    secrets = await new SecretSet().password('planted user', PASSWORD);
    secrets.token('agent token', TOKEN);
    nt = await ntHash(PASSWORD);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Scans a fresh folder holding one file with these bytes; returns the forms found. */
  const plantFile = (name: string, bytes: Buffer): string[] => {
    const d = mkdtempSync(path.join(dir, 'case-'));
    mkdirSync(path.join(d, 'nested', 'deeper'), { recursive: true });
    writeFileSync(path.join(d, 'nested', 'deeper', name), Buffer.concat([Buffer.from('\x00prefix '), bytes, Buffer.from(' suffix\xff')]));
    return scanForSecrets(secrets, { dirs: [d] }).findings.map((f) => `${f.label} / ${f.form}`);
  };

  test('a password in a file, as UTF-8 and as UTF-16LE', () => {
    assert.deepEqual(plantFile('a.log', Buffer.from(PASSWORD, 'utf8')), ['password of planted user / UTF-8']);
    assert.deepEqual(plantFile('b.bin', Buffer.from(PASSWORD, 'utf16le')), ['password of planted user / UTF-16LE']);
  });

  test('an NT hash as raw bytes, as upper and lower hex, each in UTF-8 and UTF-16LE', () => {
    assert.deepEqual(plantFile('raw.bin', nt), ['NT hash of planted user / raw bytes']);
    const hex = nt.toString('hex');
    assert.deepEqual(plantFile('lower.txt', Buffer.from(hex)), ['NT hash of planted user / hex (lower) UTF-8']);
    assert.deepEqual(plantFile('upper.txt', Buffer.from(hex.toUpperCase())), ['NT hash of planted user / hex (upper) UTF-8']);
    assert.deepEqual(plantFile('lower16.txt', Buffer.from(hex, 'utf16le')), ['NT hash of planted user / hex (lower) UTF-16LE']);
    assert.deepEqual(plantFile('upper16.txt', Buffer.from(hex.toUpperCase(), 'utf16le')), ['NT hash of planted user / hex (upper) UTF-16LE']);
  });

  test('a token in a file and in captured console output', () => {
    assert.deepEqual(plantFile('token.json', Buffer.from(JSON.stringify({ token: TOKEN }))), ['agent token / UTF-8']);
    const r = scanForSecrets(secrets, { texts: [{ what: 'idsync serve', text: `listening\nAuthorization: Bearer ${TOKEN}\n` }] });
    assert.deepEqual(
      r.findings.map((f) => [f.where, f.label]),
      [['idsync serve', 'agent token']],
    );
  });

  test('a secret in a SQLite database: in the -wal before a checkpoint, in the db file after, and in a deleted row', () => {
    const d = mkdtempSync(path.join(dir, 'sqlite-'));
    const file = path.join(d, 'idsync.db');
    const db = new Sqlite(file);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('wal_autocheckpoint = 0');
      db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)');
      db.prepare('INSERT INTO t (v, b) VALUES (?, ?)').run(`note ${PASSWORD}`, nt);
      assert.ok(existsSync(`${file}-wal`) && existsSync(`${file}-shm`));
      const inWal = scanForSecrets(secrets, { dirs: [d] }).findings;
      assert.ok(inWal.some((f) => f.where === `${file}-wal` && f.form === 'UTF-8'), 'the password in the -wal');
      assert.ok(inWal.some((f) => f.where === `${file}-wal` && f.form === 'raw bytes'), 'the NT hash in the -wal');

      db.pragma('wal_checkpoint(TRUNCATE)');
      db.prepare('DELETE FROM t').run();
      db.pragma('wal_checkpoint(TRUNCATE)');
      assert.deepEqual(db.prepare('SELECT count(*) AS n FROM t').get(), { n: 0 });
      // The row is gone from every query, but its bytes stay on a free page: the scan still finds it.
      const inDb = scanForSecrets(secrets, { dirs: [d] }).findings;
      assert.ok(inDb.some((f) => f.where === file && f.label === 'password of planted user'), 'the deleted password in the db file');
      assert.ok(inDb.some((f) => f.where === file && f.label === 'NT hash of planted user'), 'the deleted NT hash in the db file');
    } finally {
      db.close();
    }
  });

  test('assertNoSecrets names what it found and where (never the secret), and passes when clean', () => {
    const d = mkdtempSync(path.join(dir, 'assert-'));
    writeFileSync(path.join(d, 'clean.txt'), 'nothing to see here, no secret at all');
    const scanned = assertNoSecrets(secrets, { dirs: [d], texts: [{ what: 'out', text: 'Initial-1! is someone else' }] });
    assert.equal(scanned.files, 1);
    writeFileSync(path.join(d, 'leak.txt'), `pw=${PASSWORD}`);
    assert.throws(
      () => assertNoSecrets(secrets, { dirs: [d] }),
      (err: Error) => /password of planted user \(UTF-8\) in .*leak\.txt/.test(err.message) && !err.message.includes(PASSWORD),
    );
    // A source of truth may hold secrets when the test says why.
    assertNoSecrets(secrets, { dirs: [d], exclude: [{ file: path.join(d, 'leak.txt'), why: 'the source' }] });
  });

  test('refuses secrets too short to search for reliably, and an empty scan', () => {
    assert.throws(() => new SecretSet().token('short', 'secret'), /at least 8 bytes/);
    assert.throws(() => assertNoSecrets(secrets, { dirs: [path.join(dir, 'missing')] }), /nothing was scanned/);
  });
});
