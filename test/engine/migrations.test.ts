/**
 * engine/008-cs-objects-by-arrival: the connector space rebuilt as a table in arrival order with its
 * key in a unique index (SQLite; PostgreSQL's is a heap already). A store written by the previous
 * schema keeps every row and column, the key is still enforced, and the upgraded store has the same
 * indexes as a new one — the login-name look-ups' among them (first made by passwords/001), and
 * used by their statements.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { allMigrations } from '../../src/app/migrations.js';
import { ConnectorSpaceUsers } from '../../src/engine/connector-space-users.js';
import { migrate, openDatabase, type Database } from '../../src/store/database.js';
import { prng } from '../helpers/prng.js';

const NEW = new Set(['engine/008-cs-objects-by-arrival']);

const indexes = (db: Database): { name: string; sql: string }[] =>
  db.prepare<[], { name: string; sql: string }>("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'cs_objects' AND sql IS NOT NULL ORDER BY name").all();
const rows = (db: Database): unknown[] => db.prepare('SELECT connector, anchor, object_type, dn, dn_norm, attrs, hash, pending, mv_id FROM cs_objects ORDER BY connector, anchor').all();

test('a connector space written by the previous schema keeps every row, its key and every index; the look-ups use them', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-cs-migration-'));
  try {
    const db = openDatabase(path.join(dir, 'old.db'), allMigrations.filter((m) => !NEW.has(m.id)));
    assert.match(db.prepare<[], { sql: string }>("SELECT sql FROM sqlite_master WHERE name = 'cs_objects'").get()!.sql, /WITHOUT ROWID/, 'the previous schema');
    const rnd = prng(8);
    const insert = db.prepare('INSERT INTO cs_objects (connector, anchor, object_type, dn, dn_norm, attrs, hash, pending, mv_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    for (let i = 0; i < 300; i++) {
      const connector = rnd() < 0.5 ? 'corp' : 'lab';
      const type = rnd() < 0.8 ? 'user' : 'group';
      const pending = [null, 'add', 'update', 'delete'][Math.floor(rnd() * 4)]!;
      const attrs = type === 'user' ? { uid: [`u${i}`], samaccountname: [`U${i}`], userprincipalname: [`u${i}@lab.test`] } : { cn: [`g${i}`] };
      insert.run(connector, `${Math.floor(rnd() * 1e9).toString(16)}-${i}`, type, `CN=O${i},DC=lab`, `cn=o${i},dc=lab`, JSON.stringify(attrs), `h${i}`, pending, pending === 'add' ? null : i);
    }
    const before = rows(db);
    const indexesBefore = indexes(db).map((i) => i.name);
    migrate(db, allMigrations);

    assert.doesNotMatch(db.prepare<[], { sql: string }>("SELECT sql FROM sqlite_master WHERE name = 'cs_objects'").get()!.sql, /WITHOUT ROWID/, 'a table in arrival order');
    assert.deepEqual(rows(db), before, 'every row and column kept');
    const [first] = before as { connector: string; anchor: string }[];
    assert.throws(() => insert.run(first!.connector, first!.anchor, 'user', 'x', 'x', '{}', 'h', null, null), /UNIQUE constraint failed/, 'the key is still enforced');
    const fresh = openDatabase(path.join(dir, 'new.db'), allMigrations);
    assert.deepEqual(indexes(db).map((i) => i.name), [...indexesBefore, 'cs_objects_key'].sort(), 'every index it had, and the key');
    assert.deepEqual(indexes(db), indexes(fresh), 'the same indexes as a new store');
    assert.ok(
      indexes(db).some((i) => i.name === 'phs_cs_uid'),
      'the password look-ups have their index again',
    );
    fresh.close();

    // The statements find their rows through the indexes (not a scan of the table), and find them.
    const users = new ConnectorSpaceUsers(db);
    const live = (before as { connector: string; anchor: string; object_type: string; pending: string | null; attrs: string }[]).filter((r) => r.object_type === 'user' && r.pending !== 'delete');
    const u = live[0]!;
    assert.deepEqual(users.byAnchor(u.anchor).map((r) => r.anchor), [u.anchor]);
    const uid = (JSON.parse(u.attrs) as { uid: string[] }).uid[0]!;
    assert.deepEqual(users.byAnchorOrLoginName('nobody', 'x', 'y', uid).map((r) => r.anchor), [u.anchor]);
    const plan = (sql: string, ...params: unknown[]) => (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((p) => p.detail).join('; ');
    assert.match(plan("SELECT dn FROM cs_objects WHERE connector = ? AND anchor = ?", 'corp', 'a'), /USING INDEX cs_objects_key/);
    assert.match(plan("SELECT anchor FROM cs_objects WHERE object_type = 'user' AND lower(json_extract(attrs, '$.uid[0]')) = ?", 'u1'), /USING INDEX phs_cs_uid/);
    assert.doesNotMatch(plan("SELECT anchor FROM cs_objects WHERE anchor = ? AND object_type = 'user'", 'a'), /^SCAN/);
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
