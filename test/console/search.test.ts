/**
 * The console's metaverse search: the attribute index (kept by triggers, src/console/migrations.ts)
 * and the walk over the objects' JSON must find the same objects, for equals and starts with, on
 * seeded random metaverses written the way the sync writes them (insert, then set the attributes),
 * then changed and partly deleted. Multi-valued attributes, mixed case and values longer than the
 * index's 200 characters included. Real SQLite on disk, the engine's own migrations.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { searchIndexed, searchScan, usesIndex, type SearchQuery } from '../../src/console/search.js';
import { openContext, type EngineContext } from '../../src/engine/context.js';
import { prng } from '../helpers/prng.js';

const SEED = Number(process.env.IDSYNC_PROPERTY_SEED ?? 1414);

describe('console search: the attribute index agrees with the scan', () => {
  let dir: string;
  let ctx: EngineContext;
  const rnd = prng(SEED);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const words = ['ann', 'Anna', 'bob', 'BOBBY', 'carl', 'dora', 'éva', 'Zoë'];
  const long = 'x'.repeat(198);
  const randomAttrs = () => {
    const who = pick(words) + (rnd() < 0.5 ? String(Math.floor(rnd() * 20)) : '');
    const a: Record<string, unknown> = { userName: `${who}@example.test`, mail: rnd() < 0.2 ? `${who.toUpperCase()}@Example.test` : `${who}@example.test` };
    if (rnd() < 0.6) a.proxyAddresses = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => `smtp:${pick(words)}${Math.floor(rnd() * 5)}@x.test`);
    // Long values share their first 200 characters: the index alone cannot tell them apart.
    if (rnd() < 0.3) a.displayName = `${long}${pick(['ab', 'AB', 'ac'])}${pick(words)}`;
    else a.displayName = `${pick(words)} ${pick(words)}`;
    return a;
  };

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'idsync-console-search-'));
    writeFileSync(path.join(dir, 'idsync.yaml'), stringify({ dataDir: './data', connectors: [{ name: 'hr', type: 'ldif', path: './x.ldif' }], cloud: { url: 'http://127.0.0.1:9' } }));
    ctx = openContext(loadConfig(path.join(dir, 'idsync.yaml')));
    // As the sync step writes: a new object with '{}', then its attributes (src/engine/sync.ts).
    const insert = ctx.db.prepare("INSERT INTO mv_objects (object_type, source_anchor, attrs, pending_export, updated_at) VALUES ('user', ?, '{}', 1, 'now')");
    const set = ctx.db.prepare('UPDATE mv_objects SET attrs = ? WHERE id = ?');
    ctx.db.transaction(() => {
      for (let i = 0; i < 1500; i++) set.run(JSON.stringify(randomAttrs()), insert.run(`anchor-${i}`).lastInsertRowid);
      for (let i = 0; i < 400; i++) set.run(JSON.stringify(randomAttrs()), 1 + Math.floor(rnd() * 1500));
      ctx.db.prepare('DELETE FROM mv_objects WHERE id % 7 = 0').run();
    })();
  });

  after(() => {
    ctx?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Every page, following `next`; the ids found, in order. */
  const all = (fn: typeof searchIndexed, q: SearchQuery): number[] => {
    const ids: number[] = [];
    for (let after: string | undefined, pages = 0; ; pages++) {
      assert.ok(pages < 1000, 'paging ends');
      const r = fn(ctx.db, { ...q, ...(after !== undefined ? { after } : {}) });
      ids.push(...r.objects.map((o) => o.id!));
      if (r.next === null) return ids;
      after = r.next;
    }
  };

  test('equals and starts with: the same objects from the index and from the scan, on 200 random queries', () => {
    let nonEmpty = 0;
    for (let i = 0; i < 200; i++) {
      const attr = pick(['mail', 'userName', 'proxyAddresses', 'displayName']);
      const op = pick(['eq', 'sw'] as const);
      const w = pick(words);
      const value = (
        attr === 'displayName'
          ? op === 'eq' ? `${long}${pick(['ab', 'AB'])}${w}` : pick([`${long}a`, `${long}ab`, `${w} `, w.slice(0, 2)])
          : attr === 'proxyAddresses'
            ? op === 'eq' ? `smtp:${w}${Math.floor(rnd() * 5)}@x.test` : `smtp:${w.slice(0, 1 + Math.floor(rnd() * 3))}`
            : op === 'eq' ? `${w}@example.test` : w.slice(0, 1 + Math.floor(rnd() * 3))
      ).toLowerCase();
      const q: SearchQuery = { space: 'mv', attr, op, value, limit: 1 + Math.floor(rnd() * 40) };
      assert.ok(usesIndex(q));
      const indexed = all(searchIndexed, q);
      const scanned = all(searchScan, q);
      assert.equal(new Set(indexed).size, indexed.length, `no object twice: ${JSON.stringify(q)}`);
      assert.deepEqual([...indexed].sort((a, b) => a - b), scanned, JSON.stringify(q));
      if (scanned.length) nonEmpty++;
    }
    assert.ok(nonEmpty > 100, `${nonEmpty} queries found something`);
  });

  test('attribute names are case-insensitive in the index; a deleted object leaves no index row', () => {
    const q: SearchQuery = { space: 'mv', attr: 'MAIL', op: 'sw', value: 'ann', limit: 500 };
    assert.deepEqual(all(searchIndexed, q).sort((a, b) => a - b), all(searchScan, { ...q, attr: 'mail' }));
    const orphans = ctx.db.prepare('SELECT count(*) AS n FROM mv_attr_index WHERE mv_id NOT IN (SELECT id FROM mv_objects)').get() as { n: number };
    assert.equal(orphans.n, 0);
    const stale = ctx.db.prepare('SELECT count(*) AS n FROM mv_attr_index AS x WHERE NOT EXISTS (SELECT 1 FROM mv_objects AS m, json_each(m.attrs) AS a WHERE m.id = x.mv_id AND lower(a.key) = x.attr)').get() as { n: number };
    assert.equal(stale.n, 0, 'no row for an attribute its object no longer has');
  });

  test('a page of the index is a range of its primary key, not a scan', () => {
    const plan = (sql: string) => (ctx.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map((r) => r.detail).join('; ');
    assert.match(plan("SELECT mv_id FROM mv_attr_index WHERE attr = 'mail' AND value = 'x' AND mv_id > 0 ORDER BY mv_id LIMIT 51"), /SEARCH mv_attr_index USING PRIMARY KEY \(attr=\? AND value=\? AND mv_id>\?\)/);
    const sw = plan("SELECT value, mv_id FROM mv_attr_index WHERE attr = 'mail' AND value >= 'a' AND value < 'a' || char(1114111) AND (value, mv_id) > ('', 0) ORDER BY value, mv_id LIMIT 51");
    assert.match(sw, /SEARCH mv_attr_index USING PRIMARY KEY \(attr=\? AND value>\? AND value<\?\)/);
    assert.doesNotMatch(sw, /TEMP B-TREE/);
  });
});
