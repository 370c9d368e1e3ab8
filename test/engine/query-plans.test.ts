/**
 * Every statement the import stager and the sync prepare finds its rows through an index, never by
 * walking every member row of a connector (SQLite chose that plan for the member-by-DN look-ups once
 * cs_members got `member_anchor`: one look-up per object over all member rows made the initial sync
 * quadratic — 50,000 users took minutes in bench:sync). Checked on the plans SQLite makes for the
 * engine's own statements, so a new statement with the same trap fails here too.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ImportStager } from '../../src/engine/connector-space.js';
import { Synchronizer } from '../../src/engine/sync.js';
import { compileRules } from '../../src/rules/index.js';
import { openDatabase } from '../../src/store/database.js';
import { allMigrations } from '../../src/app/migrations.js';

test('no engine statement walks all member rows of a connector', () => {
  const db = openDatabase(':memory:', allMigrations);
  const texts = new Set<string>();
  const prepare = db.prepare.bind(db);
  db.prepare = ((sql: string) => {
    texts.add(sql);
    return prepare(sql);
  }) as typeof db.prepare;
  new ImportStager(db, 'ldap', 'ldap');
  new ImportStager(db, 'ad', 'ad');
  new Synchronizer(db, { kinds: new Map([['ldap', 'ldap']]), rules: compileRules(undefined, [{ name: 'ldap', type: 'ldap' }]), joinRules: false, scopeRules: false });
  db.prepare = prepare;
  assert.ok(texts.size > 10, 'the statements were seen');
  const walks: string[] = [];
  for (const sql of texts) {
    const params = Array.from({ length: (sql.match(/\?/g) ?? []).length }, () => 'x');
    const plan = prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[];
    for (const { detail } of plan) if (/^SEARCH (cs_members|m) USING (PRIMARY KEY|COVERING INDEX sqlite_autoindex\w*) \(connector=\?\)$/.test(detail) || /^SCAN (cs_members|cs_objects)\b/.test(detail)) walks.push(`${detail}  <=  ${sql.replace(/\s+/g, ' ')}`);
  }
  // engine/009: the metaverse is looked up by anchor only for a tombstone, through the index of the
  // deleted objects alone (a new object's random anchor is not indexed).
  const byAnchor = [...texts].filter((sql) => /FROM mv_objects\b/.test(sql) && /source_anchor (=|IN)/.test(sql));
  assert.ok(byAnchor.length >= 2, 'the tombstone look-ups were seen');
  for (const sql of byAnchor) {
    const params = Array.from({ length: (sql.match(/\?/g) ?? []).length }, () => '[]');
    const plan = (prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((p) => p.detail).join('; ');
    assert.match(plan, /USING INDEX mv_objects_tombstone_anchor/, sql);
  }
  db.close();
  assert.deepEqual(walks, []);
});
