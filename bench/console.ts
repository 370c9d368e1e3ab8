/**
 * `npm run bench:console [-- 100000,1000000]`: the sync console's search and lineage latency on a
 * metaverse of N users (each with a connector-space object and an export record), through the
 * console's real fastify routes (in process, `inject`: no network). Prints the median and worst of
 * several queries per kind. Asserts nothing. The goal: ≤ 300 ms per search page on 1M.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
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
    console.log(`${n.toLocaleString('en')} objects written in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
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
      console.log(`  ${label.padEnd(40)} median ${ms[Math.floor(ms.length / 2)]!.toFixed(1)} ms, worst ${ms[ms.length - 1]!.toFixed(1)} ms (${ms.length} queries)`);
    };
    const picks = Array.from({ length: 7 }, (_, k) => 1 + Math.floor(((k + 0.5) / 7) * n));
    await time('search mail equals (1 hit)', picks.map((i) => `/console/api/search?attr=mail&op=eq&value=u${i}@example.test`));
    await time('search mail starts with, first page', picks.map((i) => `/console/api/search?attr=mail&op=sw&value=u${String(i).slice(0, 2)}`));
    await time('search department equals, page 2', picks.map((i) => `/console/api/search?attr=department&op=eq&value=d${i % 100}&after=${i}`));
    await time('lineage of one object', picks.map((i) => `/console/api/objects/${i}`));
    await app.close();
    ctx.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const n of sizes) await bench(n);
