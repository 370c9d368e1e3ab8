/**
 * A delete that names an object by its DN alone (an OpenLDAP accesslog entry without
 * reqEntryUUID). An entry deleted and created again at the same DN between two cycles comes in the
 * delta as the new entry's upsert (the changed entries are read first), then the old entry's
 * delete by DN: the delete is about the old object, never the new one the same delta staged.
 * The accesslog this needs cannot be had from Debian's slapd (it logs reqEntryUUID), so the delta
 * is handed to the stager directly; the rest is real (the engine's SQLite on disk).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { allMigrations } from '../../src/app/migrations.js';
import { ImportStager } from '../../src/engine/connector-space.js';
import { openDatabase } from '../../src/store/database.js';

const dir = mkdtempSync(path.join(tmpdir(), 'idsync-cs-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const counts = () => ({ adds: 0, updates: 0, deletes: 0, unchanged: 0, errors: 0 });

test('a delete by DN after the DN was reused in the same delta marks the old object, not the new one', () => {
  const db = openDatabase(path.join(dir, 'reuse.db'), allMigrations);
  const dn = 'uid=jdoe,ou=people,dc=lab,dc=test';
  // The old entry sorts after the new one: a look-up by DN that takes the first row finds the new one.
  new ImportStager(db, 'src', 'ldap').stagePage([{ anchor: 'z-old', objectType: 'user', dn, attributes: { uid: ['jdoe'] } }], counts());
  db.prepare('UPDATE cs_objects SET pending = NULL').run();
  const c = counts();
  new ImportStager(db, 'src', 'ldap').stageDelta(
    [
      { kind: 'upsert', object: { anchor: 'a-new', objectType: 'user', dn, attributes: { uid: ['jdoe'], cn: ['new'] } } },
      { kind: 'delete', anchor: '', dn, gone: true },
    ],
    c,
  );
  const rows = db.prepare('SELECT anchor, pending FROM cs_objects ORDER BY anchor').all();
  assert.deepEqual(rows, [
    { anchor: 'a-new', pending: 'add' },
    { anchor: 'z-old', pending: 'delete' },
  ]);
  assert.equal(c.adds, 1);
  assert.equal(c.deletes, 1);
  db.close();
});

test('a delete by DN in a later page of the delta than the upsert at that DN is about the old object too', () => {
  const db = openDatabase(path.join(dir, 'pages.db'), allMigrations);
  const dn = 'uid=jane,ou=people,dc=lab,dc=test';
  new ImportStager(db, 'src', 'ldap').stagePage([{ anchor: 'z-old', objectType: 'user', dn, attributes: { uid: ['jane'] } }], counts());
  db.prepare('UPDATE cs_objects SET pending = NULL').run();
  const stager = new ImportStager(db, 'src', 'ldap');
  stager.stageDelta([{ kind: 'upsert', object: { anchor: 'a-new', objectType: 'user', dn, attributes: { uid: ['jane'] } } }], counts());
  stager.stageDelta([{ kind: 'delete', anchor: '', dn, gone: true }], counts());
  assert.deepEqual(db.prepare('SELECT anchor, pending FROM cs_objects ORDER BY anchor').all(), [
    { anchor: 'a-new', pending: 'add' },
    { anchor: 'z-old', pending: 'delete' },
  ]);
  db.close();
});
