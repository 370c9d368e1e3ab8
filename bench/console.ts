/**
 * `npm run bench:console [-- 100000,1000000]`: the sync console's search and lineage latency on a
 * metaverse of N users (each with a connector-space object and an export record), through the
 * console's real fastify routes (in process, `inject`: no network). Prints the median and worst of
 * several queries per kind. Asserts nothing. The goal: ≤ 300 ms per search page on 1M.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import Fastify from 'fastify';
import { consoleMigrations } from '../src/console/migrations.js';
import { engineMigrations } from '../src/engine/migrations.js';
import { stringify } from 'yaml';
import { writeConsoleAccount } from '../src/console/account.js';
import { consolePlugin } from '../src/console/plugin.js';
import { loadConfig } from '../src/config/load.js';
import { openContext } from '../src/engine/context.js';

const sizes = (process.argv[2] ?? '100000').split(',').map(Number);
if (process.argv.includes('--help')) {
  console.log('usage: npm run bench:console [-- N[,N...]]   e.g. -- 100000,1000000');
  process.exit(0);
}

async function bench(n: number): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-bench-console-'));
  try {
    writeFileSync(path.join(dir, 'idsync.yaml'), stringify({ dataDir: './data', connectors: [{ name: 'hr', type: 'ldif', path: './x.ldif' }], cloud: { url: 'http://127.0.0.1:9' } }));
    const ctx = openContext(loadConfig(path.join(dir, 'idsync.yaml')));
    const t0 = Date.now();
    const now = new Date().toISOString();
    const mv = ctx.db.prepare('INSERT INTO mv_objects (id, object_type, source_anchor, attrs, updated_at) VALUES (?, ?, ?, ?, ?)');
    const cs = ctx.db.prepare('INSERT INTO cs_objects (connector, anchor, object_type, dn, dn_norm, attrs, hash, mv_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    const ex = ctx.db.prepare('INSERT INTO export_objects (mv_id, object_type, cloud_id, updated_at) VALUES (?, ?, ?, ?)');
    ctx.db.transaction(() => {
      for (let i = 1; i <= n; i++) {
        const attrs = JSON.stringify({ userName: `u${i}@example.test`, mail: `u${i}@example.test`, displayName: `User ${i}`, department: `d${i % 100}` });
        mv.run(i, 'user', `anchor-${i}`, attrs, now);
        cs.run('hr', `anchor-${i}`, 'user', `uid=u${i},ou=people,dc=example,dc=test`, `uid=u${i},ou=people,dc=example,dc=test`, attrs, 'h', i);
        ex.run(i, 'user', `cloud-${i}`, now);
      }
    })();
    console.log(`${n.toLocaleString('en')} objects written in ${((Date.now() - t0) / 1000).toFixed(1)} s (with the attribute index, kept by triggers)`);
    const password = 'Bench-console-pass-1!';
    await writeConsoleAccount(ctx.loaded.dataDir, 'bench', password, { logN: 10, r: 8, p: 1 });
    const app = Fastify({ logger: false });
    await app.register(consolePlugin, { prefix: '/console', ctx, health: () => { throw new Error('not used'); }, runNow: async () => undefined, secure: false });
    const origin = 'http://bench.local';
    const signin = await app.inject({ method: 'POST', url: '/console/api/signin', headers: { host: 'bench.local', origin, 'content-type': 'application/json' }, payload: { username: 'bench', password } });
    const cookie = String(signin.headers['set-cookie']).split(';')[0]!;
    const time = async (label: string, urls: string[]) => {
      const ms: number[] = [];
      for (const url of urls) {
        const t = process.hrtime.bigint();
        const r = await app.inject({ method: 'GET', url, headers: { cookie } });
        ms.push(Number(process.hrtime.bigint() - t) / 1e6);
        if (r.statusCode !== 200) throw new Error(`${url}: HTTP ${r.statusCode} ${r.body}`);
      }
      ms.sort((a, b) => a - b);
      console.log(`  ${label.padEnd(42)} median ${ms[Math.floor(ms.length / 2)]!.toFixed(1)} ms, worst ${ms[ms.length - 1]!.toFixed(1)} ms (${ms.length} queries)`);
    };
    const picks = Array.from({ length: 7 }, (_, k) => 1 + Math.floor(((k + 0.5) / 7) * n));
    await time('mv mail equals, 1 hit (index)', picks.map((i) => `/console/api/search?attr=mail&op=eq&value=u${i}@example.test`));
    await time('mv mail equals, no hit (index)', picks.map((i) => `/console/api/search?attr=mail&op=eq&value=nobody${i}@example.test`));
    await time('mv mail starts with, page 1 (index)', picks.map((i) => `/console/api/search?attr=mail&op=sw&value=u${String(i).slice(0, 2)}`));
    await time('mv mail starts with, 1 hit (index)', picks.map((i) => `/console/api/search?attr=mail&op=sw&value=u${i}@`));
    await time('mv mail present, page 1 (scan)', picks.map(() => `/console/api/search?attr=mail&op=pr`));
    await time('mv department equals, page 2 (scan)', picks.map((i) => `/console/api/search?attr=department&op=eq&value=d${i % 100}&after=${i}`));
    await time('mv department equals, no hit (scan)', picks.map((i) => `/console/api/search?attr=department&op=eq&value=none${i}`));
    await time('cs mail equals, 1 hit (scan)', picks.map((i) => `/console/api/search?space=cs&attr=mail&op=eq&value=u${i}@example.test`));
    await time('cs uid present, page 1 (scan)', picks.map(() => `/console/api/search?space=cs&attr=mail&op=pr`));
    await time('lineage of one object', picks.map((i) => `/console/api/objects/${i}`));
    await app.close();
    ctx.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What the attribute index costs the sync: CPU time of writing 20k metaverse objects as the sync
 * step does (insert, then set the attributes; then change a tenth), without and with the index's
 * triggers. CPU time, not wall time: robust on a busy machine.
 */
function indexWriteCost(): void {
  const n = 20_000;
  const cost: number[] = [];
  for (const withIndex of [false, true]) {
    const db = new Database(':memory:');
    for (const m of engineMigrations) db.exec(m.sql);
    if (withIndex) for (const m of consoleMigrations) db.exec(m.sql);
    const insert = db.prepare("INSERT INTO mv_objects (object_type, source_anchor, attrs, pending_export, updated_at) VALUES ('user', ?, '{}', 1, 'now')");
    const set = db.prepare('UPDATE mv_objects SET attrs = ? WHERE id = ?');
    const c0 = process.cpuUsage();
    db.transaction(() => {
      for (let i = 1; i <= n; i++) {
        const attrs = { userName: `u${i}@example.test`, mail: `u${i}@example.test`, displayName: `User ${i}`, givenName: 'User', sn: String(i), department: `d${i % 100}` };
        set.run(JSON.stringify(attrs), insert.run(`anchor-${i}`).lastInsertRowid);
      }
      for (let i = 1; i <= n; i += 10) set.run(JSON.stringify({ userName: `u${i}@example.test`, mail: `v${i}@example.test`, displayName: `User ${i}` }), i);
    })();
    const c = process.cpuUsage(c0);
    cost.push((c.user + c.system) / 1000);
    db.close();
  }
  const [without, withIdx] = cost as [number, number];
  console.log(`metaverse writes, ${n.toLocaleString('en')} objects + 10% changed: ${without.toFixed(0)} ms CPU without the index, ${withIdx.toFixed(0)} ms with it (+${(((withIdx - without) / n) * 1000).toFixed(1)} µs per object)`);
}

indexWriteCost();
for (const n of sizes) await bench(n);
