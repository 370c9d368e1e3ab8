/**
 * What the check at the start of every cycle costs (engine/connector-identity.ts
 * `connectorSpaceNames`: a loose index scan over cs_objects' primary key), against the obvious
 * query it replaces (`SELECT DISTINCT connector`, which reads every row), on a SQLite store with
 * N connector-space objects spread over a few connectors. CPU time, not wall time (the machine is
 * shared); the ratio is what holds on a busy machine.
 *
 *   node --import tsx bench/connector-guard.ts            # 1,000,000 objects, 3 connectors
 *   node --import tsx bench/connector-guard.ts 200000 5
 *   IDSYNC_BENCH_PG_URL=postgres://... node --import tsx bench/connector-guard.ts   # on PostgreSQL
 *     (an empty database; the client's CPU is what is measured there, plus the wall time per check)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { allMigrations } from '../src/app/migrations.js';
import { connectorSpaceNames } from '../src/engine/connector-identity.js';
import { openStore } from '../src/store/database.js';

const total = Number(process.argv[2] ?? 1_000_000);
const connectors = Number(process.argv[3] ?? 3);
const dir = mkdtempSync(path.join(tmpdir(), 'idsync-bench-guard-'));
const pgUrl = process.env.IDSYNC_BENCH_PG_URL;
const db = openStore(pgUrl ? { type: 'postgres', url: pgUrl } : { type: 'sqlite', file: path.join(dir, 'idsync.db') }, allMigrations);

const insert = db.prepare("INSERT INTO cs_objects (connector, anchor, object_type, dn, dn_norm, attrs, hash) VALUES (?, ?, 'user', ?, ?, '{}', '')");
const BATCH = 20_000;
for (let start = 0; start < total; start += BATCH) {
  db.transaction(() => {
    for (let i = start; i < Math.min(total, start + BATCH); i++) {
      const c = `conn-${i % connectors}`;
      const dn = `uid=u${i},ou=people,dc=x`;
      insert.run(c, `anchor-${i.toString().padStart(8, '0')}`, dn, dn);
    }
  })();
}

/** CPU of this process per call (SQLite runs in it), and wall time per call (PostgreSQL runs in its server). */
function cost(fn: () => unknown, runs: number): { cpu: number; wall: number } {
  fn(); // warm the page cache
  const t0 = process.cpuUsage();
  const w0 = performance.now();
  for (let i = 0; i < runs; i++) fn();
  const d = process.cpuUsage(t0);
  return { cpu: (d.user + d.system) / 1000 / runs, wall: (performance.now() - w0) / runs };
}

const names = connectorSpaceNames(db);
if (pgUrl) db.exec('ANALYZE cs_objects');
const loose = cost(() => connectorSpaceNames(db), 50);
const distinct = cost(() => db.prepare('SELECT DISTINCT connector FROM cs_objects').all(), 3);
const step = 'SELECT (SELECT MIN(connector) FROM cs_objects WHERE connector > ?) AS x';
const plan = pgUrl
  ? (db.prepare(`EXPLAIN ${step}`).all('x') as Record<string, string>[]).map((r) => Object.values(r)[0]!.trim())
  : (db.prepare(`EXPLAIN QUERY PLAN ${step}`).all('x') as { detail: string }[]).map((r) => r.detail);
const which = pgUrl ? 'wall' : 'cpu';

console.log(`store: ${pgUrl ? 'postgres' : 'sqlite'}; objects: ${total.toLocaleString('en')}, connectors: ${names.join(', ')}`);
console.log(`loose index scan (the cycle's check): ${loose[which].toFixed(3)} ms ${which} per check (client CPU ${loose.cpu.toFixed(3)} ms)`);
console.log(`SELECT DISTINCT connector (every row): ${distinct[which].toFixed(1)} ms ${which} per query`);
console.log(`ratio: the check costs ${(loose[which] / distinct[which]).toExponential(2)} of a full read`);
console.log(`plan of one step: ${plan.join(' / ')}`);
db.close();
rmSync(dir, { recursive: true, force: true });
