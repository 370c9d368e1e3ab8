/**
 * The console's search (src/console/search.ts) on seeded random metaverses and connector spaces,
 * written the way the engine writes them (insert with '{}', then the attributes; changes; tombstones
 * and hard deletes), real SQLite on disk with every module's migrations:
 *
 *  - the index-backed search (attr-index.ts, caught up at random points, or partly, or not at all)
 *    finds exactly what a reference walk over every object's parsed attributes finds;
 *  - the bounded walk (attributes outside the index, the connector space) does too, page by page,
 *    whatever the budget cuts, and says how many objects it has searched of how many;
 *  - writing the metaverse no longer touches the index (no trigger), and the index catches up.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { AttrIndex, OVERLAP_MS } from '../../src/console/attr-index.js';
import type { SearchResult } from '../../src/console/api-types.js';
import { search, type SearchBudget, type SearchQuery } from '../../src/console/search.js';
import { openContext, type EngineContext } from '../../src/engine/context.js';
import { ImportStager } from '../../src/engine/connector-space.js';
import { EngineQueries } from '../../src/engine/queries.js';
import { emptyCounts } from '../../src/engine/runs.js';
import type { SourceObject } from '../../src/connectors/types.js';
import { prng } from '../helpers/prng.js';
import { testStoreConfig, testStoreKind } from '../helpers/store.js';

const SEED = Number(process.env.IDSYNC_PROPERTY_SEED ?? 1414);

/** SQLite, or with IDSYNC_TEST_STORE=postgres a new PostgreSQL database (the walks' SQL differs: lower() there). */
const STORE = testStoreKind();

async function openTemp(): Promise<{ dir: string; ctx: EngineContext }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-console-search-'));
  const store = await testStoreConfig();
  writeFileSync(path.join(dir, 'idsync.yaml'), stringify({ dataDir: './data', ...(store ? { store } : {}), connectors: [{ name: 'hr', type: 'ldif', path: './x.ldif' }], cloud: { url: 'http://127.0.0.1:9' } }));
  return { dir, ctx: openContext(loadConfig(path.join(dir, 'idsync.yaml'))) };
}

/** Every page of a search, following `next`: the hits' ids (or keys) in order, and the pages. */
function all(engine: EngineQueries, index: AttrIndex | null, q: SearchQuery, budget?: SearchBudget): { keys: string[]; pages: SearchResult[] } {
  const keys: string[] = [];
  const pages: SearchResult[] = [];
  for (let after: string | undefined; ; ) {
    assert.ok(pages.length < 5000, 'paging ends');
    const r = search(engine, index, { ...q, ...(after !== undefined ? { after } : {}) }, budget ? { budget } : {});
    pages.push(r);
    assert.ok(r.objects.length <= q.limit, 'a page holds at most its limit');
    keys.push(...r.objects.map((o) => (q.space === 'mv' ? String(o.id) : `${o.connector}/${o.anchor}`)));
    if (r.next === null) return { keys, pages };
    after = r.next;
  }
}

/** The reference: every object's parsed attributes, compared as the console promises (case-insensitive, multi-valued). */
function reference(rows: { key: string; attrs: string }[], q: SearchQuery): string[] {
  return rows
    .filter((r) => {
      const a = JSON.parse(r.attrs) as Record<string, unknown>;
      const vs = Object.entries(a)
        .filter(([k]) => k.toLowerCase() === q.attr.toLowerCase())
        .flatMap(([, v]) => (Array.isArray(v) ? v : [v]))
        .filter((v): v is string | number => typeof v === 'string' || typeof v === 'number')
        .map((v) => String(v).toLowerCase());
      return q.op === 'eq' ? vs.includes(q.value) : q.op === 'sw' ? vs.some((v) => v.startsWith(q.value)) : vs.some((v) => v !== '');
    })
    .map((r) => r.key)
    .sort();
}

describe('console search: index, gap and bounded walk agree with a reference walk', () => {
  let dir: string;
  let ctx: EngineContext;
  let engine: EngineQueries;
  const rnd = prng(SEED);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const words = ['ann', 'Anna', 'bob', 'BOBBY', 'carl', 'dora', 'éva', 'Zoë', 'o"neil', '50%_off'];
  const long = 'x'.repeat(198);
  const randomAttrs = () => {
    const who = pick(words) + (rnd() < 0.5 ? String(Math.floor(rnd() * 20)) : '');
    const a: Record<string, unknown> = { userName: `${who}@example.test`, mail: rnd() < 0.2 ? `${who.toUpperCase()}@Example.test` : `${who}@example.test` };
    if (rnd() < 0.6) a.proxyAddresses = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => `smtp:${pick(words)}${Math.floor(rnd() * 5)}@x.test`);
    // Long values share their first 200 characters: the index alone cannot tell them apart.
    if (rnd() < 0.3) a.displayName = `${long}${pick(['ab', 'AB', 'ac'])}${pick(words)}`;
    else a.displayName = `${pick(words)} ${pick(words)}`;
    if (rnd() < 0.5) a.department = pick(['Sales', 'sales-emea', 'R&D', 'ops']);
    if (rnd() < 0.1) a.MAIL = `${who}@upper.test`; // the same attribute under another case
    return a;
  };
  const randomQuery = (attrs: string[], space: 'mv' | 'cs'): SearchQuery => {
    const attr = pick(attrs);
    const op = pick(['eq', 'sw', 'sw', 'pr'] as const);
    const w = pick(words);
    const value =
      op === 'pr'
        ? ''
        : (attr === 'displayName'
            ? op === 'eq' ? `${long}${pick(['ab', 'AB'])}${w}` : pick([`${long}a`, `${long}ab`, `${w} `, w.slice(0, 2)])
            : attr === 'proxyAddresses'
              ? op === 'eq' ? `smtp:${w}${Math.floor(rnd() * 5)}@x.test` : `smtp:${w.slice(0, 1 + Math.floor(rnd() * 3))}`
              : attr === 'department'
                ? op === 'eq' ? pick(['sales', 'r&d', 'nothing']) : pick(['sa', 'r', 'zz'])
                : op === 'eq' ? pick([`${w}@example.test`, `${w}@upper.test`, 'nobody@example.test']) : w.slice(0, 1 + Math.floor(rnd() * 3))
          ).toLowerCase();
    return { space, attr, op, value, limit: 1 + Math.floor(rnd() * 40) };
  };

  // The engine's clock, as ISO text: each write a few ms later; `late` writes a little in the past.
  let clock = Date.parse('2026-12-06T08:00:00Z');
  const tick = (late = false): string => {
    clock += 1 + Math.floor(rnd() * 5);
    return new Date(late ? clock - Math.floor(rnd() * (OVERLAP_MS / 2)) : clock).toISOString();
  };

  before(async () => {
    ({ dir, ctx } = await openTemp());
    engine = new EngineQueries(ctx.db);
  });
  after(() => {
    ctx?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const mvRows = () => (ctx.db.prepare('SELECT id, attrs FROM mv_objects').all() as { id: number; attrs: string }[]).map((r) => ({ key: String(r.id), attrs: r.attrs }));
  const csRows = () => (ctx.db.prepare('SELECT connector, anchor, attrs FROM cs_objects').all() as { connector: string; anchor: string; attrs: string }[]).map((r) => ({ key: `${r.connector}/${r.anchor}`, attrs: r.attrs }));

  /** Random adds, changes, tombstones and hard deletes, as the engine writes them. */
  function mutate(n: number): void {
    const insert = ctx.db.prepare("INSERT INTO mv_objects (object_type, source_anchor, attrs, pending_export, updated_at) VALUES ('user', ?, '{}', 1, ?)");
    const set = ctx.db.prepare('UPDATE mv_objects SET attrs = ?, deleted = 0, pending_export = 1, updated_at = ? WHERE id = ?');
    const tombstone = ctx.db.prepare('UPDATE mv_objects SET deleted = 1, pending_export = 1, updated_at = ? WHERE id = ?');
    const remove = ctx.db.prepare('DELETE FROM mv_objects WHERE id = ?');
    const ids = () => ctx.db.prepare('SELECT id FROM mv_objects').pluck().all() as number[];
    ctx.db.transaction(() => {
      let known = ids();
      for (let i = 0; i < n; i++) {
        const r = rnd();
        if (r < 0.5 || known.length === 0) {
          const id = Number(insert.run(`anchor-${clock}-${i}`, tick()).lastInsertRowid);
          set.run(JSON.stringify(randomAttrs()), tick(), id);
          known.push(id);
        } else if (r < 0.8) set.run(JSON.stringify(randomAttrs()), tick(rnd() < 0.1), pick(known));
        else if (r < 0.9) tombstone.run(tick(), pick(known));
        else {
          remove.run(pick(known));
          known = ids();
        }
      }
    })();
  }

  test('the index-backed search finds what the reference walk finds, through random writes and partial catch-ups', () => {
    const index = new AttrIndex(ctx.db, undefined, () => clock);
    let checked = 0;
    let fromIndex = 0;
    for (let round = 0; round < 12; round++) {
      mutate(150 + Math.floor(rnd() * 150));
      // Caught up fully, by a few batches only, or not at all since the last writes.
      const r = rnd();
      if (r < 0.5) while (!index.step(50));
      else if (r < 0.8) for (let k = 0; k < 1 + Math.floor(rnd() * 4); k++) index.step(37);
      const rows = mvRows();
      for (let i = 0; i < 25; i++) {
        const q = randomQuery(['mail', 'userName', 'proxyAddresses', 'displayName'], 'mv');
        assert.ok(index.indexes(q.attr));
        const budget = rnd() < 0.5 ? { ms: 60_000, rows: 1 + Math.floor(rnd() * 300) } : undefined;
        const got = all(engine, index, q, budget);
        assert.equal(new Set(got.keys).size, got.keys.length, `no object twice: ${JSON.stringify(q)}`);
        assert.deepEqual([...got.keys].sort(), reference(rows, q), `round ${round}: ${JSON.stringify(q)}`);
        assert.ok(got.pages.every((p) => p.method === 'index'));
        checked++;
        if (got.keys.length && got.pages[0]!.total < rows.length) fromIndex++;
      }
    }
    assert.ok(fromIndex > 50, `${fromIndex} of ${checked} searches found objects with the index covering part of the metaverse`);
  });

  test('a caught-up index leaves nothing to check one by one, and deleted objects leave no row after the sweep', () => {
    const index = new AttrIndex(ctx.db, undefined, () => clock);
    mutate(200);
    while (!index.step());
    // The last OVERLAP_MS of writes are still checked one by one: move the clock past them.
    clock += OVERLAP_MS * 2;
    ctx.db.prepare("UPDATE mv_objects SET updated_at = ? WHERE id = (SELECT max(id) FROM mv_objects)").run(tick());
    while (!index.step());
    const r = search(engine, index, { space: 'mv', attr: 'mail', op: 'sw', value: 'a', limit: 10 });
    assert.equal(r.total, 1, 'only the object written after the others is checked one by one');
    for (let i = 0; i < 20; i++) index.step();
    const orphans = ctx.db.prepare('SELECT count(*) AS n FROM console_attr_index WHERE mv_id NOT IN (SELECT id FROM mv_objects)').get() as { n: number };
    assert.equal(orphans.n, 0);
  });

  test('writing the metaverse does not touch the index: no trigger is left, the projection catches up', async () => {
    const triggers = ctx.db.prepare(STORE === 'sqlite' ? "SELECT name FROM sqlite_master WHERE type = 'trigger'" : 'SELECT tgname FROM pg_trigger WHERE NOT tgisinternal').pluck().all();
    assert.deepEqual(triggers, []);
    const index = new AttrIndex(ctx.db, undefined, () => clock);
    await index.catchUp();
    const before = (ctx.db.prepare('SELECT count(*) AS n FROM console_attr_index').get() as { n: number }).n;
    const id = Number(ctx.db.prepare("INSERT INTO mv_objects (object_type, source_anchor, attrs, updated_at) VALUES ('user', 'fresh', ?, ?)").run(JSON.stringify({ mail: 'fresh@example.test' }), tick()).lastInsertRowid);
    assert.equal((ctx.db.prepare('SELECT count(*) AS n FROM console_attr_index').get() as { n: number }).n, before, 'the write added no index row');
    const found = search(engine, index, { space: 'mv', attr: 'mail', op: 'eq', value: 'fresh@example.test', limit: 5 });
    assert.deepEqual(found.objects.map((o) => o.id), [id], 'found before the index caught up');
    await index.catchUp();
    assert.ok(ctx.db.prepare("SELECT 1 FROM console_attr_index WHERE attr = 'mail' AND value = 'fresh@example.test' AND mv_id = ?").get(id));
  });

  test('another list of indexed attributes starts the index again', async () => {
    const index = new AttrIndex(ctx.db, ['department'], () => clock);
    assert.equal((ctx.db.prepare('SELECT count(*) AS n FROM console_attr_index').get() as { n: number }).n, 0);
    assert.equal(index.watermark(), '');
    await index.catchUp();
    assert.deepEqual(ctx.db.prepare('SELECT DISTINCT attr FROM console_attr_index').pluck().all(), ['department']);
    assert.ok(!index.indexes('mail'));
    const q: SearchQuery = { space: 'mv', attr: 'department', op: 'sw', value: 'sa', limit: 7 };
    assert.deepEqual(all(engine, index, q).keys.sort(), reference(mvRows(), q));
  });

  test('the bounded walk (attributes outside the index, and the connector space) finds the same whatever the budget cuts', () => {
    const cs = ctx.db.prepare('INSERT INTO cs_objects (connector, anchor, object_type, dn, dn_norm, attrs, hash, mv_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    ctx.db.transaction(() => {
      for (let i = 0; i < 900; i++) {
        const anchor = `a${Math.floor(rnd() * 1e9)}-${i}`;
        const conn = pick(['hr', 'ad', 'zz']);
        cs.run(conn, anchor, 'user', `uid=${anchor},dc=x`, `uid=${anchor},dc=x`, JSON.stringify(randomAttrs()), 'h', rnd() < 0.5 ? i : null);
      }
    })();
    const index = new AttrIndex(ctx.db, undefined, () => clock);
    for (let i = 0; i < 120; i++) {
      const space = rnd() < 0.5 ? 'mv' : 'cs';
      const q = randomQuery(space === 'mv' ? ['department'] : ['mail', 'department', 'proxyAddresses', 'displayName'], space);
      const rows = space === 'mv' ? mvRows() : csRows();
      const budget = rnd() < 0.7 ? { ms: 60_000, rows: 1 + Math.floor(rnd() * 500) } : undefined;
      const got = all(engine, index, q, budget);
      assert.equal(new Set(got.keys).size, got.keys.length, `no object twice: ${JSON.stringify(q)}`);
      assert.deepEqual([...got.keys].sort(), reference(rows, q), JSON.stringify(q));
      const last = got.pages[got.pages.length - 1]!;
      assert.ok(got.pages.every((p) => p.method === 'scan' && p.total === rows.length));
      assert.equal(last.scanned, rows.length, 'the last page has searched every object');
      for (let k = 1; k < got.pages.length; k++) assert.ok(got.pages[k]!.scanned >= got.pages[k - 1]!.scanned, 'searched only grows');
      assert.ok(got.pages.every((p) => !p.partial || p.next !== null), 'a partial page can be searched further');
    }
  });

  test('the connector-space walk agrees with a reference walk through imports, updates, pending deletes and applied deletes', () => {
    // Written by the engine's own import stager (and the sync's statement that removes an applied
    // delete), as LDAP sources give them: lower-case attribute names, every value in an array.
    const connectors = ['ad', 'hr', 'ldap2'] as const;
    const stagers = new Map(connectors.map((c) => [c, new ImportStager(ctx.db, c, c === 'ad' ? 'ad' : 'ldap')]));
    const remove = ctx.db.prepare('DELETE FROM cs_objects WHERE connector = ? AND anchor = ?');
    const known = new Map<string, string[]>(connectors.map((c) => [c, []]));
    const sourceObject = (anchor: string): SourceObject => {
      const a = randomAttrs();
      const attributes: Record<string, string[]> = {};
      for (const [k, v] of Object.entries(a)) attributes[k.toLowerCase()] = Array.isArray(v) ? (v as string[]) : [String(v)];
      if (rnd() < 0.3) attributes.cn = [pick(words)];
      return { anchor, objectType: 'user', dn: `cn=${anchor},ou=people,dc=x`, attributes };
    };
    const mutateCs = (n: number): void => {
      for (const c of connectors) {
        const anchors = known.get(c)!;
        const changes: Parameters<ImportStager['stageDelta']>[0] = [];
        const gone: string[] = [];
        for (let i = 0; i < n; i++) {
          const r = rnd();
          if (r < 0.45 || anchors.length === 0) {
            const anchor = `${Math.floor(rnd() * 1e9).toString(36)}-${anchors.length}`;
            anchors.push(anchor);
            changes.push({ kind: 'upsert', object: sourceObject(anchor) });
          } else if (r < 0.75) changes.push({ kind: 'upsert', object: sourceObject(pick(anchors)) });
          else if (r < 0.9) changes.push({ kind: 'delete', anchor: pick(anchors), gone: true });
          else gone.push(anchors.splice(Math.floor(rnd() * anchors.length), 1)[0]!);
        }
        stagers.get(c)!.stageDelta(changes, emptyCounts());
        ctx.db.transaction(() => gone.forEach((a) => remove.run(c, a)))();
      }
    };
    const index = new AttrIndex(ctx.db, undefined, () => clock);
    let found = 0;
    for (let round = 0; round < 10; round++) {
      mutateCs(60 + Math.floor(rnd() * 120));
      const rows = csRows();
      const current = new Map((ctx.db.prepare('SELECT connector, anchor, dn, pending FROM cs_objects').all() as { connector: string; anchor: string; dn: string; pending: string | null }[]).map((r) => [`${r.connector}/${r.anchor}`, r]));
      for (let i = 0; i < 15; i++) {
        const q = randomQuery(['mail', 'department', 'proxyAddresses', 'displayName', 'cn', 'userName'], 'cs');
        const budget = rnd() < 0.7 ? { ms: 60_000, rows: 1 + Math.floor(rnd() * 400) } : undefined;
        const got = all(engine, index, q, budget);
        assert.equal(new Set(got.keys).size, got.keys.length, `no object twice: ${JSON.stringify(q)}`);
        assert.deepEqual([...got.keys].sort(), reference(rows, q), `round ${round}: ${JSON.stringify(q)}`);
        for (const o of got.pages.flatMap((p) => p.objects)) {
          const row = current.get(`${o.connector}/${o.anchor}`)!;
          assert.equal(o.dn, row.dn);
          assert.equal(o.deleted, row.pending === 'delete', 'a pending delete shows as deleted');
        }
        assert.equal(got.pages[got.pages.length - 1]!.scanned, rows.length, 'the last page has searched every object');
        found += got.keys.length;
      }
    }
    assert.ok(found > 200, `${found} hits in all: the queries find things`);
  });

  test('a search with no hit stops at its budget and says how far it got', () => {
    const total = engine.metaverseCount();
    const r = search(engine, null, { space: 'mv', attr: 'department', op: 'eq', value: 'no such department', limit: 50 }, { budget: { ms: 60_000, rows: 100 } });
    assert.equal(r.objects.length, 0);
    assert.equal(r.partial, true);
    assert.ok(r.next !== null);
    assert.ok(r.scanned > 0 && r.scanned < total, `searched ${r.scanned} of ${total}`);
    // A clock that has run out still lets the page read one chunk: searching further always ends.
    let now = 0;
    const stalled = search(engine, null, { space: 'mv', attr: 'department', op: 'eq', value: 'no such department', limit: 50 }, { budget: { ms: 10, rows: Infinity }, clock: () => (now += 1000) });
    assert.ok(stalled.scanned > 0);
  });

  test('a cursor of another search, or a forged one, is refused', () => {
    const mv = search(engine, null, { space: 'mv', attr: 'department', op: 'pr', value: '', limit: 1 });
    assert.ok(mv.next);
    assert.throws(() => search(engine, null, { space: 'cs', attr: 'department', op: 'pr', value: '', limit: 1, after: mv.next! }), /another search/);
    assert.throws(() => search(engine, null, { space: 'mv', attr: 'department', op: 'pr', value: '', limit: 1, after: 'bm9wZQ' }), /`next` of the previous page/);
  });

  test('index pages and change walks are ranges of their indexes, not scans', { skip: STORE === 'postgres' && "SQLite's query plans" }, () => {
    const plan = (sql: string) => (ctx.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map((r) => r.detail).join('; ');
    assert.match(plan("SELECT value, mv_id FROM console_attr_index WHERE attr = 'mail' AND value = 'x' AND mv_id > 0 ORDER BY mv_id LIMIT 51"), /SEARCH console_attr_index USING PRIMARY KEY \(attr=\? AND value=\? AND mv_id>\?\)/);
    const sw = plan("SELECT value, mv_id FROM console_attr_index WHERE attr = 'mail' AND value >= 'a' AND value < 'b' AND (value, mv_id) > ('', 0) ORDER BY value, mv_id LIMIT 51");
    assert.match(sw, /SEARCH console_attr_index USING PRIMARY KEY \(attr=\? AND value>\? AND value<\?\)/);
    assert.doesNotMatch(sw, /TEMP B-TREE/);
    const changes = plan("SELECT id FROM mv_objects WHERE (updated_at, id) > ('2026', 0) ORDER BY updated_at, id LIMIT 1 OFFSET 10");
    assert.match(changes, /USING COVERING INDEX mv_objects_updated/);
    assert.doesNotMatch(changes, /TEMP B-TREE/);
  });
});
