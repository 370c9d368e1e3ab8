/**
 * `npm run bench:cloud-bulk`: users/s of SCIM Bulk requests of 100 creates sent over an undici Pool
 * to the cloud directory (the server of `idsync cloud serve`, in its own process), beside the floor
 * measured in the same run: a minimal fastify + SQLite Bulk endpoint (bench/cloud-bulk-floor.ts,
 * DESIGN.md §4's prototype, ≈ 80k users/s on a quiet 2-core machine). Prints wall-clock users/s and
 * the server's CPU time per 1,000 users (robust on a busy machine), each as a ratio to the floor.
 * Asserts nothing.
 *
 *   IDSYNC_BENCH_USERS=20000     users per server (default 20000)
 *   IDSYNC_BENCH_CONNECTIONS=4   Pool connections, one Bulk in flight on each (default 4)
 *   IDSYNC_BENCH_CPU_PROF=dir    CPU profiles of the servers' threads into dir
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Pool } from 'undici';
import { fetchToken } from '../src/cloud/admin-api-client.js';

const USERS = Number(process.env.IDSYNC_BENCH_USERS ?? 20_000);
const CONNECTIONS = Number(process.env.IDSYNC_BENCH_CONNECTIONS ?? 4);
const PER_BULK = 100;
const WARMUP = 2_000;
const DESIGN_FLOOR = 80_000;
const root = path.resolve(import.meta.dirname, '..');
const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const BULK = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
const ADMIN_PASSWORD = 'Bench-admin-pass-1!';
// IDSYNC_BENCH_CPU_PROF=<dir>: CPU profiles of the servers' threads (.cpuprofile) into dir.
const prof = process.env.IDSYNC_BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(process.env.IDSYNC_BENCH_CPU_PROF)}`] : [];

interface Server {
  url: string;
  child: ChildProcess;
}

async function start(script: string, dataDir: string): Promise<Server> {
  mkdirSync(dataDir, { recursive: true });
  const child = spawn(process.execPath, [...prof, '--import', 'tsx', script, dataDir], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, IDSYNC_CLOUD_ADMIN_PASSWORD: ADMIN_PASSWORD },
  });
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${script} exited ${code}`)));
    lines.once('line', (l) => resolve((JSON.parse(l) as { url: string }).url));
  });
  return { url, child };
}

async function stop(s: Server): Promise<void> {
  s.child.kill('SIGTERM');
  await new Promise((r) => s.child.once('exit', r));
}

/** CPU seconds (user + system, every thread) the process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

function bulkBody(prefix: string, start: number, n: number): string {
  const ops = Array.from({ length: n }, (_, k) => {
    const i = start + k;
    return {
      method: 'POST',
      path: '/Users',
      bulkId: `b${i}`,
      data: { schemas: [USER], userName: `${prefix}${i}@bulk.example`, externalId: `${prefix}-ext-${i}`, displayName: `Bulk User ${i}`, active: true },
    };
  });
  return JSON.stringify({ schemas: [BULK], Operations: ops });
}

/** Sends users [from, to) in Bulks of PER_BULK, CONNECTIONS at a time; returns wall seconds and server CPU seconds. */
async function load(s: Server, token: string | undefined, prefix: string, from: number, to: number): Promise<{ wall: number; cpu: number }> {
  const pool = new Pool(s.url, { connections: CONNECTIONS, pipelining: 1 });
  const headers = { 'content-type': 'application/scim+json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
  let next = from;
  const cpu0 = cpuSeconds(s.child.pid!);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (next < to) {
        const start = next;
        const n = Math.min(PER_BULK, to - start);
        next += n;
        const res = await pool.request({ method: 'POST', path: '/scim/v2/Bulk', headers, body: bulkBody(prefix, start, n) });
        const out = (await res.body.json()) as { Operations?: { status: string }[] };
        if (res.statusCode !== 200 || out.Operations?.length !== n || out.Operations.some((o) => o.status !== '201')) {
          throw new Error(`a Bulk answered ${res.statusCode}: ${JSON.stringify(out).slice(0, 300)}`);
        }
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(s.child.pid!) - cpu0;
  await pool.close();
  return { wall, cpu };
}

const dir = mkdtempSync(path.join(tmpdir(), 'idsync-bench-bulk-'));
try {
  const results: { name: string; usersPerSecond: number; cpuMsPer1000: number }[] = [];
  for (const [name, script] of [
    ['floor (fastify + one prepared INSERT per user)', 'bench/cloud-bulk-floor.ts'],
    ['cloud directory (SCIM worker)', 'bench/hostile-server.ts'],
  ] as const) {
    const s = await start(script, path.join(dir, String(results.length)));
    try {
      const token = script.includes('hostile') ? await fetchToken(s.url, { grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD }) : undefined;
      await load(s, token, 'w', 0, WARMUP);
      const { wall, cpu } = await load(s, token, 'u', 0, USERS);
      results.push({ name, usersPerSecond: USERS / wall, cpuMsPer1000: (cpu * 1000) / (USERS / 1000) });
    } finally {
      await stop(s);
    }
  }
  const [floor, cloud] = results as [(typeof results)[0], (typeof results)[0]];
  console.log(`Bulk of ${PER_BULK} creates, ${USERS} users per server, ${CONNECTIONS} connections (undici Pool)`);
  for (const r of results) console.log(`  ${r.name.padEnd(48)} ${Math.round(r.usersPerSecond).toString().padStart(7)} users/s   server CPU ${r.cpuMsPer1000.toFixed(1).padStart(6)} ms / 1000 users`);
  console.log(`cloud vs floor measured in this run: ${((100 * cloud.usersPerSecond) / floor.usersPerSecond).toFixed(0)} % of its users/s, ${(cloud.cpuMsPer1000 / floor.cpuMsPer1000).toFixed(2)}× its CPU per user`);
  console.log(`cloud vs DESIGN.md floor (≈ ${DESIGN_FLOOR} users/s, quiet 2-core machine): ${((100 * cloud.usersPerSecond) / DESIGN_FLOOR).toFixed(0)} %`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
