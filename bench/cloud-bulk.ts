/**
 * `npm run bench:cloud-bulk`: SCIM Bulk requests of 100 operations sent over an undici Pool to the
 * cloud directory (the server of `idsync cloud serve`, in its own process), in three phases over
 * the same users: create (POST), replace (PUT with one attribute changed: what the sync engine
 * sends for an update) and patch (PATCH of one attribute). The users are the resources the sync
 * engine's default outbound flow makes of bench/sync.ts's directory entries (core, enterprise and
 * on-premises attributes). Beside it, the floor measured in the same run: a minimal fastify +
 * SQLite Bulk endpoint (bench/cloud-bulk-floor.ts, DESIGN.md §4's prototype) given the same creates.
 *
 * Per phase: wall-clock users/s, and the server's CPU time per user (robust on a busy machine),
 * split into its main thread (HTTP, tokens) and the rest (the SCIM worker, GC and libuv threads).
 * The writer is a sync client (as the engine is). Asserts nothing. The goals (issue 13): ≤ 25 µs of cloud CPU per created user, ≥ 40k users/s.
 *
 *   IDSYNC_BENCH_USERS=20000     users per server (default 20000)
 *   IDSYNC_BENCH_CONNECTIONS=4   Pool connections, one Bulk in flight on each (default 4)
 *   IDSYNC_BENCH_STORE=postgres  the cloud on a private PostgreSQL 15 (test/helpers/postgres.ts) as well
 *   IDSYNC_BENCH_CPU_PROF=dir    CPU profiles of the servers' threads into dir
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Pool } from 'undici';
import { createSyncClient, fetchToken } from '../src/cloud/admin-api-client.js';
import { SCHEMA_ENTERPRISE, SCHEMA_ONPREM_USER, SCHEMA_USER } from '../src/engine/flows.js';
import { startPostgres } from '../test/helpers/postgres.js';
import { benchUser } from './floors.js';

const USERS = Number(process.env.IDSYNC_BENCH_USERS ?? 20_000);
const CONNECTIONS = Number(process.env.IDSYNC_BENCH_CONNECTIONS ?? 4);
const PER_BULK = 100;
const WARMUP = 2_000;
const DESIGN_FLOOR = 80_000;
const root = path.resolve(import.meta.dirname, '..');
const BULK = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const ADMIN_PASSWORD = 'Bench-admin-pass-1!';
// IDSYNC_BENCH_CPU_PROF=<dir>: CPU profiles of the servers' threads (.cpuprofile) into dir.
const prof = process.env.IDSYNC_BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(process.env.IDSYNC_BENCH_CPU_PROF)}`] : [];

interface Server {
  url: string;
  child: ChildProcess;
}

async function start(script: string, dataDir: string, env: Record<string, string> = {}): Promise<Server> {
  mkdirSync(dataDir, { recursive: true });
  const child = spawn(process.execPath, [...prof, '--import', 'tsx', script, dataDir], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, IDSYNC_CLOUD_ADMIN_PASSWORD: ADMIN_PASSWORD, IDSYNC_BENCH_LOOP_MONITOR: '0', ...env },
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

/** CPU seconds (user + system) used so far by the process, and by its main thread alone. */
function cpuSeconds(pid: number): { all: number; main: number } {
  const ticks = (file: string) => {
    const f = readFileSync(file, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  };
  return { all: ticks(`/proc/${pid}/stat`), main: ticks(`/proc/${pid}/task/${pid}/stat`) };
}

/** The SCIM resource the engine's default outbound flow makes of bench user i (as bench/floors.ts's raw Bulk). */
function engineUser(prefix: string, i: number, title = 'Engineer'): Record<string, unknown> {
  const u = benchUser(i);
  const mail = `${prefix}${u.mail}`;
  return {
    schemas: [SCHEMA_USER, SCHEMA_ENTERPRISE, SCHEMA_ONPREM_USER],
    externalId: `${prefix}-${i}`,
    userName: mail,
    name: { givenName: u.givenName, familyName: u.sn },
    displayName: u.cn,
    title,
    active: true,
    emails: [{ value: mail, type: 'work', primary: true }],
    [SCHEMA_ENTERPRISE]: { department: u.departmentNumber, employeeNumber: u.employeeNumber },
    [SCHEMA_ONPREM_USER]: { onPremisesSamAccountName: u.uid, onPremisesDistinguishedName: `uid=${u.uid},ou=people,dc=lab,dc=test`, onPremisesDomainName: 'lab.test', onPremisesImmutableId: `${prefix}-${i}` },
  };
}

type Phase = 'create' | 'replace' | 'patch';

function operation(phase: Phase, prefix: string, i: number, ids: string[]): unknown {
  if (phase === 'create') return { method: 'POST', path: '/Users', bulkId: `b${i}`, data: engineUser(prefix, i) };
  if (phase === 'replace') return { method: 'PUT', path: `/Users/${ids[i]}`, data: engineUser(prefix, i, `Engineer ${i % 7}`) };
  return { method: 'PATCH', path: `/Users/${ids[i]}`, data: { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'title', value: `Lead ${i % 5}` }] } };
}

interface Measured {
  wall: number;
  cpu: number;
  mainCpu: number;
}

/** Sends users [from, to) in Bulks of PER_BULK, CONNECTIONS at a time. */
async function load(s: Server, token: string | undefined, phase: Phase, prefix: string, from: number, to: number, ids: string[]): Promise<Measured> {
  const pool = new Pool(s.url, { connections: CONNECTIONS, pipelining: 1 });
  const headers = { 'content-type': 'application/scim+json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
  const want = phase === 'create' ? '201' : '200';
  let next = from;
  const cpu0 = cpuSeconds(s.child.pid!);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (next < to) {
        const start = next;
        const n = Math.min(PER_BULK, to - start);
        next += n;
        const ops = Array.from({ length: n }, (_, k) => operation(phase, prefix, start + k, ids));
        const res = await pool.request({ method: 'POST', path: '/scim/v2/Bulk', headers, body: JSON.stringify({ schemas: [BULK], Operations: ops }) });
        const out = (await res.body.json()) as { Operations?: { status: string; location?: string }[] };
        if (res.statusCode !== 200 || out.Operations?.length !== n || out.Operations.some((o) => o.status !== want)) {
          throw new Error(`a Bulk (${phase}) answered ${res.statusCode}: ${JSON.stringify(out).slice(0, 300)}`);
        }
        if (phase === 'create') out.Operations.forEach((o, k) => (ids[start + k] = o.location!.slice(o.location!.lastIndexOf('/') + 1)));
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = cpuSeconds(s.child.pid!);
  await pool.close();
  return { wall, cpu: cpu1.all - cpu0.all, mainCpu: cpu1.main - cpu0.main };
}

interface Row {
  name: string;
  usersPerSecond: number;
  usPerUser: number;
  mainUsPerUser: number;
}

const row = (name: string, m: Measured): Row => ({ name, usersPerSecond: USERS / m.wall, usPerUser: (m.cpu * 1e6) / USERS, mainUsPerUser: (m.mainCpu * 1e6) / USERS });

async function measureServer(label: string, script: string, dataDir: string, phases: Phase[], env: Record<string, string> = {}): Promise<Row[]> {
  const s = await start(script, dataDir, env);
  try {
    // The cloud is written by a sync client, as the sync engine writes it (DirectorySynchronizationAccounts).
    let token: string | undefined;
    if (script.includes('hostile')) {
      const secret = await createSyncClient(s.url, { username: 'admin', password: ADMIN_PASSWORD }, 'bench');
      token = await fetchToken(s.url, { grant_type: 'client_credentials', client_id: 'bench', client_secret: secret });
    }
    const warm: string[] = [];
    await load(s, token, 'create', 'w', 0, WARMUP, warm);
    const ids: string[] = new Array<string>(USERS);
    const rows: Row[] = [];
    for (const phase of phases) rows.push(row(`${label}: ${phase}`, await load(s, token, phase, 'u', 0, USERS, ids)));
    return rows;
  } finally {
    await stop(s);
  }
}

const dir = mkdtempSync(path.join(tmpdir(), 'idsync-bench-bulk-'));
try {
  const load0 = loadavg();
  const rows: Row[] = [];
  rows.push(...(await measureServer('floor (fastify + one prepared INSERT per user)', 'bench/cloud-bulk-floor.ts', path.join(dir, 'floor'), ['create'])));
  rows.push(...(await measureServer('cloud directory, SQLite', 'bench/hostile-server.ts', path.join(dir, 'sqlite'), ['create', 'replace', 'patch'])));
  if (process.env.IDSYNC_BENCH_STORE === 'postgres') {
    const pg = await startPostgres();
    try {
      const url = await pg.createDatabase();
      rows.push(...(await measureServer('cloud directory, PostgreSQL', 'bench/hostile-server.ts', path.join(dir, 'pg'), ['create', 'replace', 'patch'], { IDSYNC_BENCH_CLOUD_DATABASE: url })));
    } finally {
      await pg.stop();
    }
  }
  const fmt = (n: number) => n.toFixed(1).padStart(6);
  console.log(
    `Bulk of ${PER_BULK} operations, ${USERS} engine-shaped users per phase, ${CONNECTIONS} connections (undici Pool), Node ${process.version}, load average ${load0.map((l) => l.toFixed(2)).join(' ')} → ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  for (const r of rows) {
    console.log(`  ${r.name.padEnd(56)} ${Math.round(r.usersPerSecond).toString().padStart(7)} users/s   server CPU ${fmt(r.usPerUser)} µs/user (main thread ${fmt(r.mainUsPerUser)}, other threads ${fmt(r.usPerUser - r.mainUsPerUser)})`);
  }
  const floor = rows[0]!;
  const create = rows[1]!;
  console.log(`cloud create vs floor measured in this run: ${((100 * create.usersPerSecond) / floor.usersPerSecond).toFixed(0)} % of its users/s, ${(create.usPerUser / floor.usPerUser).toFixed(2)}× its CPU per user`);
  console.log(`cloud create vs DESIGN.md floor (≈ ${DESIGN_FLOOR} users/s, quiet 2-core machine): ${((100 * create.usersPerSecond) / DESIGN_FLOOR).toFixed(0)} %`);
  console.log(`goals (issue 13): ≤ 25 µs cloud CPU per created user (measured ${create.usPerUser.toFixed(1)}); ≥ 40000 users/s create and update (measured ${rows
    .slice(1, 4)
    .map((r) => Math.round(r.usersPerSecond))
    .join(', ')})`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
