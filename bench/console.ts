/**
 * `npm run bench:console [-- 100000,1000000]`: the sync console's search and lineage latency on a
 * metaverse of N users (each with a connector-space object and an export record), through the
 * console's real fastify routes (in process, `inject`: no network), every search kind the console
 * offers: the attribute index, the index with objects changed since it caught up, the bounded walk
 * on the metaverse and the connector space (with how far its first page got), and lineage.
 * Prints the median and worst of several queries per kind, and at the end the worst page of each
 * kind (every page it timed, "search further" included) per store, with the load average the
 * machine had meanwhile. Asserts nothing. The issue's goal: ≤ 300 ms per search page on 1M.
 *
 * Stores: SQLite always; PostgreSQL too with IDSYNC_BENCH_DATABASE=private (a private PostgreSQL
 * 15 cluster, as the tests start it). On PostgreSQL the objects and the caught-up index are written
 * by set-based SQL (through the synchronous bridge, a million single-row statements would take the
 * whole run); the searches are the console's own routes, as on SQLite.
 *
 * First it prints what keeping the index costs: the sync's CPU per metaverse write (engine only,
 * with engine/007's updated_at index, and with console/001's old triggers) and the projection's
 * CPU per object, paid in the background by `idsync serve`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { Sqlite } from '../src/store/sqlite-driver.js';
import Fastify from 'fastify';
import { stringify } from 'yaml';
import { consoleMigrations } from '../src/console/migrations.js';
import { engineMigrations } from '../src/engine/migrations.js';
import { writeConsoleAccount } from '../src/console/account.js';
import { AttrIndex } from '../src/console/attr-index.js';
import type { SearchResult } from '../src/console/api-types.js';
import { consolePlugin } from '../src/console/plugin.js';
import { loadConfig } from '../src/config/load.js';
import { openContext, type EngineContext } from '../src/engine/context.js';
import { postgresStoreConfig } from '../test/helpers/store.js';

const sizes = (process.argv[2] ?? '100000').split(',').map(Number);
if (process.argv.includes('--help')) {
  console.log('usage: [IDSYNC_BENCH_DATABASE=private] npm run bench:console [-- N[,N...]]   e.g. -- 100000,1000000');
  process.exit(0);
}
type Store = 'sqlite' | 'postgres';
const stores: Store[] = process.env.IDSYNC_BENCH_DATABASE === 'private' ? ['sqlite', 'postgres'] : ['sqlite'];

/** The worst page of each query kind, per store and size: what the summary prints. */
const worstPages = new Map<string, Map<string, number>>();
const noteWorst = (run: string, kind: string, ms: number): void => {
  const m = worstPages.get(run) ?? new Map<string, number>();
  worstPages.set(run, m);
  m.set(kind, Math.max(m.get(kind) ?? 0, ms));
};
/** The 1-minute load average, sampled every second while the bench runs. */
const loads: number[] = [];
const sampler = setInterval(() => loads.push(loadavg()[0]!), 1000);
sampler.unref();

const cpuMs = (c: NodeJS.CpuUsage): number => (c.user + c.system) / 1000;
const fmt = (n: number): string => n.toLocaleString('en');

/** N users as the sync leaves them: metaverse object, connector-space object, export record. */
function writeObjects(ctx: EngineContext, store: Store, n: number, written: number): void {
  if (store === 'postgres') {
    // The same rows as below, made by the server (JSON text as JSON.stringify writes it).
    const at = new Date(written).toISOString();
    const attrs = `'{"userName":"u' || i || '@example.test","mail":"u' || i || '@example.test","displayName":"User ' || i || '","department":"d' || (i % 100) || '"}'`;
    ctx.db.prepare(`INSERT INTO mv_objects (id, object_type, source_anchor, attrs, updated_at) SELECT i, 'user', 'anchor-' || i, ${attrs}, ? FROM generate_series(1, ?) AS i`).run(at, n);
    ctx.db.prepare("SELECT setval(pg_get_serial_sequence('mv_objects', 'id'), ?)").get(n);
    ctx.db.prepare(`INSERT INTO cs_objects (connector, anchor, object_type, dn, dn_norm, attrs, hash, mv_id) SELECT 'hr', 'anchor-' || lpad(i::text, 7, '0'), 'user', 'uid=u' || i || ',ou=people,dc=example,dc=test', 'uid=u' || i || ',ou=people,dc=example,dc=test', ${attrs}, 'h', i FROM generate_series(1, ?) AS i`).run(n);
    ctx.db.prepare(`INSERT INTO export_objects (mv_id, object_type, cloud_id, updated_at) SELECT i, 'user', 'cloud-' || i, ? FROM generate_series(1, ?) AS i`).run(at, n);
    ctx.db.exec('ANALYZE');
    return;
  }
  const mv = ctx.db.prepare('INSERT INTO mv_objects (id, object_type, source_anchor, attrs, updated_at) VALUES (?, ?, ?, ?, ?)');
  const cs = ctx.db.prepare('INSERT INTO cs_objects (connector, anchor, object_type, dn, dn_norm, attrs, hash, mv_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  const ex = ctx.db.prepare('INSERT INTO export_objects (mv_id, object_type, cloud_id, updated_at) VALUES (?, ?, ?, ?)');
  ctx.db.transaction(() => {
    for (let i = 1; i <= n; i++) {
      const attrs = JSON.stringify({ userName: `u${i}@example.test`, mail: `u${i}@example.test`, displayName: `User ${i}`, department: `d${i % 100}` });
      mv.run(i, 'user', `anchor-${i}`, attrs, new Date(written + Math.floor((i / n) * 30_000)).toISOString());
      cs.run('hr', `anchor-${String(i).padStart(7, '0')}`, 'user', `uid=u${i},ou=people,dc=example,dc=test`, `uid=u${i},ou=people,dc=example,dc=test`, attrs, 'h', i);
      ex.run(i, 'user', `cloud-${i}`, new Date(written).toISOString());
    }
  })();
}

async function bench(store: Store, n: number): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-bench-console-'));
  const run = `${store}, ${fmt(n)}`;
  try {
    const storeBlock = store === 'postgres' ? { store: await postgresStoreConfig() } : {};
    writeFileSync(path.join(dir, 'idsync.yaml'), stringify({ dataDir: './data', ...storeBlock, connectors: [{ name: 'hr', type: 'ldif', path: './x.ldif' }], cloud: { url: 'http://127.0.0.1:9' } }));
    const ctx = openContext(loadConfig(path.join(dir, 'idsync.yaml')));
    const t0 = Date.now();
    const written = Date.now() - 60_000;
    writeObjects(ctx, store, n, written);
    console.log(`\n${store}: ${fmt(n)} objects written in ${((Date.now() - t0) / 1000).toFixed(1)} s (load average ${loadavg()[0]!.toFixed(1)})`);

    const attrIndex = new AttrIndex(ctx.db);
    if (store === 'sqlite') {
      // The projection catching up from nothing, as `idsync serve` does it after an upgrade or a first cycle.
      const c0 = process.cpuUsage();
      const w0 = Date.now();
      await attrIndex.catchUp();
      const cpu = cpuMs(process.cpuUsage(c0));
      console.log(`attribute index caught up from nothing: ${fmt(n)} objects in ${((Date.now() - w0) / 1000).toFixed(1)} s, ${(cpu / 1000).toFixed(1)} s CPU (${((cpu / n) * 1000).toFixed(1)} µs per object, in the background)`);
    } else {
      // What a caught-up projection holds, written by the server (see the header).
      ctx.db.prepare("INSERT INTO console_attr_index (attr, value, mv_id) SELECT a.attr, CASE a.attr WHEN 'displayname' THEN 'user ' || i ELSE 'u' || i || '@example.test' END, i FROM generate_series(1, ?) AS i, (VALUES ('username'), ('mail'), ('displayname')) AS a (attr)").run(n);
      ctx.db.prepare('UPDATE console_attr_index_state SET pos_at = ?, pos_id = ?, watermark = ? WHERE id = 1').run(new Date(written).toISOString(), n, new Date(Date.now() - 2000).toISOString());
      ctx.db.exec('ANALYZE');
      console.log('attribute index: written caught up by SQL');
    }

    const password = 'Bench-console-pass-1!';
    await writeConsoleAccount(ctx.loaded.dataDir, 'bench', password, { logN: 10, r: 8, p: 1 });
    const app = Fastify({ logger: false });
    await app.register(consolePlugin, { prefix: '/console', ctx, attrIndex, health: () => { throw new Error('not used'); }, runNow: async () => undefined, secure: false });
    const origin = 'http://bench.local';
    const signin = await app.inject({ method: 'POST', url: '/console/api/signin', headers: { host: 'bench.local', origin, 'content-type': 'application/json' }, payload: { username: 'bench', password } });
    const cookie = String(signin.headers['set-cookie']).split(';')[0]!;
    const get = async (url: string): Promise<{ ms: number; r: SearchResult }> => {
      const t = process.hrtime.bigint();
      const res = await app.inject({ method: 'GET', url, headers: { cookie } });
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (res.statusCode !== 200) throw new Error(`${url}: HTTP ${res.statusCode} ${res.body}`);
      return { ms, r: JSON.parse(res.body) as SearchResult };
    };
    const time = async (label: string, urls: string[]) => {
      const ms: number[] = [];
      let last: SearchResult | undefined;
      for (const url of urls) {
        const x = await get(url);
        ms.push(x.ms);
        last = x.r;
      }
      ms.sort((a, b) => a - b);
      noteWorst(run, label, ms[ms.length - 1]!);
      const how = last && 'method' in last ? `, ${last.objects.length} found, ${last.method === 'scan' ? `searched ${fmt(last.scanned)} of ${fmt(last.total)}` : `${fmt(last.total)} changed objects checked`}${last.partial ? ', search further' : ''}` : '';
      console.log(`  ${label.padEnd(48)} median ${ms[Math.floor(ms.length / 2)]!.toFixed(1)} ms, worst ${ms[ms.length - 1]!.toFixed(1)} ms (${ms.length} queries${how})`);
    };
    /** Follows "search further" to the end: pages, the slowest page, and the total. */
    const further = async (label: string, url: string) => {
      let pages = 0;
      let worst = 0;
      let total = 0;
      let found = 0;
      let last: SearchResult | undefined;
      const started = Date.now();
      for (let next: string | null = ''; next !== null; pages++) {
        // A minute of pages is enough to know the worst (PostgreSQL's walk is far slower).
        if (Date.now() - started > 60_000) break;
        const x = await get(next ? `${url}&after=${next}` : url);
        worst = Math.max(worst, x.ms);
        total += x.ms;
        found += x.r.objects.length;
        next = x.r.next;
        last = x.r;
      }
      noteWorst(run, `${label}, every page to the end`, worst);
      const how = last?.next ? `stopped after ${pages} pages (a minute), searched ${fmt(last.scanned)} of ${fmt(last.total)}` : `${pages} pages to search all`;
      console.log(`  ${label.padEnd(48)} ${how}, worst page ${worst.toFixed(1)} ms, ${(total / 1000).toFixed(2)} s in all, ${found} found`);
    };
    const picks = Array.from({ length: 7 }, (_, k) => 1 + Math.floor(((k + 0.5) / 7) * n));
    const q = (s: string) => `/console/api/search?${s}`;
    console.log('metaverse, attribute index:');
    await time('mv mail equals, 1 hit', picks.map((i) => q(`attr=mail&op=eq&value=u${i}@example.test`)));
    await time('mv mail equals, no hit', picks.map((i) => q(`attr=mail&op=eq&value=nobody${i}@example.test`)));
    await time('mv mail starts with, page 1', picks.map((i) => q(`attr=mail&op=sw&value=u${String(i).slice(0, 2)}`)));
    await time('mv mail starts with, 1 hit', picks.map((i) => q(`attr=mail&op=sw&value=u${i}@`)));
    await time('mv mail starts with, no hit', picks.map((i) => q(`attr=mail&op=sw&value=nobody${i}`)));
    await time('mv mail present, page 1', picks.map(() => q('attr=mail&op=pr')));
    console.log('metaverse, bounded walk (attributes outside the index):');
    await time('mv department equals, page 1', picks.map((i) => q(`attr=department&op=eq&value=d${i % 100}`)));
    await time('mv department starts with, page 1', picks.map((i) => q(`attr=department&op=sw&value=d${i % 10}`)));
    await time('mv department present, page 1', picks.map(() => q('attr=department&op=pr')));
    await time('mv department equals, no hit (page 1)', picks.map((i) => q(`attr=department&op=eq&value=none${i}`)));
    await further('mv department equals, no hit', q('attr=department&op=eq&value=none'));
    console.log('connector space, bounded walk:');
    await time('cs mail equals, 1 hit (page 1)', picks.map((i) => q(`space=cs&attr=mail&op=eq&value=u${i}@example.test`)));
    await time('cs mail equals, no hit (page 1)', picks.map((i) => q(`space=cs&attr=mail&op=eq&value=nobody${i}@example.test`)));
    await time('cs mail starts with, page 1', picks.map((i) => q(`space=cs&attr=mail&op=sw&value=u${String(i).slice(0, 2)}`)));
    await time('cs mail starts with, 1 hit (page 1)', picks.map((i) => q(`space=cs&attr=mail&op=sw&value=u${i}@`)));
    await time('cs mail starts with, no hit (page 1)', picks.map((i) => q(`space=cs&attr=mail&op=sw&value=nobody${i}`)));
    await time('cs mail present, page 1', picks.map(() => q('space=cs&attr=mail&op=pr')));
    await time('cs department present, page 1', picks.map(() => q('space=cs&attr=department&op=pr')));
    await further('cs mail equals, 1 hit', q(`space=cs&attr=mail&op=eq&value=u${picks[3]}@example.test`));
    await further('cs mail starts with, no hit', q('space=cs&attr=mail&op=sw&value=nobody'));

    // The index behind the engine: 1 % of the objects changed since it last caught up.
    const changed = Math.max(1, Math.floor(n / 100));
    const set = ctx.db.prepare('UPDATE mv_objects SET attrs = ?, updated_at = ? WHERE id = ?');
    const now = new Date().toISOString();
    ctx.db.transaction(() => {
      for (let k = 0; k < changed; k++) {
        const i = 1 + Math.floor((k / changed) * n);
        set.run(JSON.stringify({ userName: `u${i}@example.test`, mail: `moved${i}@example.test`, displayName: `User ${i}`, department: `d${i % 100}` }), now, i);
      }
    })();
    console.log(`metaverse, attribute index with ${fmt(changed)} objects changed since it caught up (checked one by one):`);
    await time('mv mail equals, 1 hit (a changed object)', picks.slice(0, 1).map(() => q(`attr=mail&op=eq&value=moved1@example.test`)));
    await time('mv mail equals, no hit', picks.map((i) => q(`attr=mail&op=eq&value=nobody${i}@example.test`)));
    await time('mv mail starts with, page 1', picks.map((i) => q(`attr=mail&op=sw&value=u${String(i).slice(0, 2)}`)));
    const c1 = process.cpuUsage();
    await attrIndex.catchUp();
    console.log(`  the index caught up with them: ${cpuMs(process.cpuUsage(c1)).toFixed(0)} ms CPU`);

    console.log('lineage:');
    const ms: number[] = [];
    for (const i of picks) {
      const t = process.hrtime.bigint();
      const res = await app.inject({ method: 'GET', url: `/console/api/objects/${i}`, headers: { cookie } });
      ms.push(Number(process.hrtime.bigint() - t) / 1e6);
      if (res.statusCode !== 200) throw new Error(`lineage ${i}: HTTP ${res.statusCode}`);
    }
    ms.sort((a, b) => a - b);
    noteWorst(run, 'lineage of one object', ms[6]!);
    console.log(`  ${'lineage of one object'.padEnd(48)} median ${ms[3]!.toFixed(1)} ms, worst ${ms[6]!.toFixed(1)} ms (7 queries)`);
    await app.close();
    ctx.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What the index costs the sync: CPU time of writing 20k metaverse objects as the sync step does
 * (insert, then set the attributes; then change a tenth): the engine's tables without engine/007,
 * with it (today), and with console/001's old triggers (before). CPU time: robust on a busy machine.
 */
function indexWriteCost(): void {
  const n = 20_000;
  const cost: number[] = [];
  const variants = [
    { label: 'engine without engine/007', migrations: engineMigrations.filter((m) => m.id !== 'engine/007-mv-changed-since') },
    { label: 'engine (with engine/007, today)', migrations: engineMigrations },
    { label: "engine + console/001's triggers (before)", migrations: [...engineMigrations.filter((m) => m.id !== 'engine/007-mv-changed-since'), consoleMigrations[0]!] },
  ];
  for (const v of variants) {
    const db = new Sqlite(':memory:');
    for (const m of v.migrations) db.exec(m.sql);
    const insert = db.prepare("INSERT INTO mv_objects (object_type, source_anchor, attrs, pending_export, updated_at) VALUES ('user', ?, '{}', 1, ?)");
    const set = db.prepare('UPDATE mv_objects SET attrs = ?, updated_at = ? WHERE id = ?');
    const c0 = process.cpuUsage();
    db.transaction(() => {
      for (let i = 1; i <= n; i++) {
        const attrs = { userName: `u${i}@example.test`, mail: `u${i}@example.test`, displayName: `User ${i}`, givenName: 'User', sn: String(i), department: `d${i % 100}` };
        const now = new Date().toISOString();
        set.run(JSON.stringify(attrs), now, insert.run(`anchor-${i}`, now).lastInsertRowid);
      }
      for (let i = 1; i <= n; i += 10) set.run(JSON.stringify({ userName: `u${i}@example.test`, mail: `v${i}@example.test`, displayName: `User ${i}` }), new Date().toISOString(), i);
    })();
    cost.push(cpuMs(process.cpuUsage(c0)));
    db.close();
  }
  console.log(`metaverse writes as the sync does them, ${fmt(n)} objects + 10% changed (CPU):`);
  variants.forEach((v, k) => console.log(`  ${v.label.padEnd(44)} ${cost[k]!.toFixed(0)} ms${k > 0 ? ` (+${(((cost[k]! - cost[0]!) / n) * 1000).toFixed(1)} µs per object)` : ''}`));
}

indexWriteCost();
for (const store of stores) for (const n of sizes) await bench(store, n);

// The summary the issue asks for: the worst page of each kind, per store and size, and the load meanwhile.
const runs = [...worstPages.keys()];
const kinds = [...new Set(runs.flatMap((r) => [...worstPages.get(r)!.keys()]))];
loads.push(loadavg()[0]!);
console.log(`\nworst page per query kind (ms; goal ≤ 300 per page), load average ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} on ${cpus().length} cores meanwhile:`);
console.log(`  ${'kind'.padEnd(56)} ${runs.map((r) => r.padStart(20)).join('')}`);
for (const k of kinds) console.log(`  ${k.padEnd(56)} ${runs.map((r) => (worstPages.get(r)!.get(k)?.toFixed(1) ?? '–').padStart(20)).join('')}`);
const over = runs.flatMap((r) => [...worstPages.get(r)!].filter(([k, ms]) => ms > 300 && k !== 'lineage of one object').map(([k, ms]) => `${r}: ${k} ${ms.toFixed(0)} ms`));
console.log(over.length ? `pages over 300 ms: ${over.join('; ')}` : 'every search page within 300 ms');
process.exit(0);
