/**
 * `npm run bench:hostile`: /healthz and sign-in latency while 8 clients send the heaviest requests
 * the SCIM limits allow (issue 9, defect 3). The cloud directory runs in its own process with 5,000
 * users; probes alternate GET /healthz and a directory user's password sign-in every 25 ms, first
 * with no load (baseline), then under load. Prints p50/p99/max; asserts nothing. Goal: p99 ≤ 100 ms.
 *
 *   IDSYNC_BENCH_SECONDS=20   seconds under load (default 20)
 *   IDSYNC_BENCH_CLIENTS=8    hostile clients (default 8)
 *   IDSYNC_BENCH_USERS=5000   seeded users (default 5000)
 *   IDSYNC_BENCH_CPU_PROF=dir  write CPU profiles of the server's threads (.cpuprofile) into dir
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { request } from 'undici';
import { fetchToken } from '../src/cloud/admin-api-client.js';
import { DEFAULT_LIMITS, MAX_FILTER_SUBSTRING_TERMS, MAX_FILTER_TERMS, MAX_MULTI_VALUES, MAX_VALUE_LENGTH } from '../src/cloud/scim/limits.js';
import { ntHash, orgIdHashFromNt } from '../src/passwords/hash.js';

const SECONDS = Number(process.env.IDSYNC_BENCH_SECONDS ?? 20);
const CLIENTS = Number(process.env.IDSYNC_BENCH_CLIENTS ?? 8);
const USERS = Number(process.env.IDSYNC_BENCH_USERS ?? 5000);
const GOAL_MS = 100;
const root = path.resolve(import.meta.dirname, '..');
const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const BULK = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
const SIGNIN_PASSWORD = 'Bench-signin-pass-1!';

const dir = mkdtempSync(path.join(tmpdir(), 'idsync-bench-hostile-'));
// IDSYNC_BENCH_CPU_PROF=<dir>: a CPU profile of the server (main thread and SCIM worker) into <dir>.
const prof = process.env.IDSYNC_BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(process.env.IDSYNC_BENCH_CPU_PROF)}`] : [];
const child = spawn(process.execPath, [...prof, '--import', 'tsx', 'bench/hostile-server.ts', path.join(dir, 'cloud')], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
const lines = createInterface({ input: child.stdout! });
const nextLine = (): Promise<string> => new Promise((resolve) => lines.once('line', resolve));
const url: string = await new Promise((resolve, reject) => {
  child.once('exit', (code) => reject(new Error(`the cloud exited ${code}`)));
  void nextLine().then((l) => resolve((JSON.parse(l) as { url: string }).url));
});
/** The server's event-loop delay since the last call: the longest any request waited for the loop. */
async function loopDelay(): Promise<string> {
  const line = nextLine();
  child.kill('SIGUSR2');
  const { loopDelayMs: d, cpu } = JSON.parse(await line) as {
    loopDelayMs: { p50: number; p99: number; max: number };
    cpu: { mainSeconds: number; processSeconds: number; loopUtilization: number };
  };
  const share = cpu.processSeconds > 0 ? ((100 * cpu.mainSeconds) / cpu.processSeconds).toFixed(0) : '-';
  return (
    `server main thread: event-loop delay p50 ${d.p50} ms, p99 ${d.p99} ms, max ${d.max} ms; loop utilisation ${(100 * cpu.loopUtilization).toFixed(0)} %; ` +
    `CPU ${cpu.mainSeconds} s of the server's ${cpu.processSeconds} s (${share} %)`
  );
}

async function call(method: 'GET' | 'POST' | 'PUT' | 'PATCH', p: string, token: string | undefined, body?: string, contentType = 'application/scim+json'): Promise<number> {
  const res = await request(url + p, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': contentType } : {}) },
    ...(body !== undefined ? { body } : {}),
    headersTimeout: 600_000,
    bodyTimeout: 600_000,
  });
  await res.body.dump();
  return res.statusCode;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
};

try {
  const token = await fetchToken(url, { grant_type: 'password', username: 'admin', password: 'Bench-admin-pass-1!' });
  // Seed: USERS users in Bulks of 1000, a group of all of them, a password for user 0.
  const ids: string[] = [];
  for (let start = 0; start < USERS; start += 1000) {
    const ops = Array.from({ length: Math.min(1000, USERS - start) }, (_, k) => {
      const i = start + k;
      return { method: 'POST', path: '/Users', bulkId: `u${i}`, data: { schemas: [USER], userName: `user${i}@bench.example`, externalId: `ext-${i}`, displayName: `Bench User ${i}` } };
    });
    const res = await request(`${url}/scim/v2/Bulk`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' }, body: JSON.stringify({ schemas: [BULK], Operations: ops }) });
    const out = (await res.body.json()) as { Operations: { location: string }[] };
    ids.push(...out.Operations.map((o) => o.location.split('/').pop()!));
  }
  const g = await request(`${url}/scim/v2/Groups`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' },
    body: JSON.stringify({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'Everyone' }),
  });
  const groupId = ((await g.body.json()) as { id: string }).id;
  const hash = await orgIdHashFromNt(await ntHash(SIGNIN_PASSWORD));
  const hs = await call('POST', '/api/v1/passwordHashes', token, JSON.stringify({ items: [{ externalId: 'ext-0', hash }] }), 'application/json');
  if (hs !== 200) throw new Error(`storing the sign-in hash answered ${hs}`);
  const signinBody = new URLSearchParams({ grant_type: 'password', username: 'user0@bench.example', password: SIGNIN_PASSWORD, scope: 'openid' }).toString();

  // The heaviest requests the limits allow (valid ones do their full work; invalid ones are refused after parsing).
  const big = (n: number) => 'x'.repeat(n);
  const kinds: { name: string; send: (client: number) => Promise<number> }[] = [
    {
      name: `PATCH ${DEFAULT_LIMITS.maxPatchOperations} email adds`,
      send: (c) =>
        call(
          'PATCH',
          `/scim/v2/Users/${ids[1 + c]}`,
          token,
          JSON.stringify({ schemas: [PATCH_OP], Operations: Array.from({ length: DEFAULT_LIMITS.maxPatchOperations }, (_, j) => ({ op: 'add', path: 'emails', value: [{ value: `e${j % MAX_MULTI_VALUES}@x.example` }] })) }),
        ),
    },
    {
      name: `Bulk of ${DEFAULT_LIMITS.maxOperations} PATCHes`,
      send: (c) =>
        call(
          'POST',
          '/scim/v2/Bulk',
          token,
          JSON.stringify({
            schemas: [BULK],
            Operations: Array.from({ length: DEFAULT_LIMITS.maxOperations }, (_, j) => ({
              method: 'PATCH',
              path: `/Users/${ids[(c * DEFAULT_LIMITS.maxOperations + j) % ids.length]}`,
              data: { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'title', value: `t${Date.now() % 1000}` }] },
            })),
          }),
        ),
    },
    {
      name: `PUT group with ${USERS} members`,
      send: () => call('PUT', `/scim/v2/Groups/${groupId}`, token, JSON.stringify({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'Everyone', members: ids.map((value) => ({ value })) })),
    },
    {
      name: `filter of ${MAX_FILTER_TERMS} eq terms`,
      send: () => call('POST', '/scim/v2/Users/.search', token, JSON.stringify({ filter: Array.from({ length: MAX_FILTER_TERMS }, (_, j) => `externalId eq "ext-${j * 37}"`).join(' or '), count: 1000 })),
    },
    {
      name: `filter of ${MAX_FILTER_SUBSTRING_TERMS} co terms`,
      send: () => call('GET', `/scim/v2/Users?count=1000&filter=${encodeURIComponent(Array.from({ length: MAX_FILTER_SUBSTRING_TERMS }, (_, j) => `displayName co "${j}${j}"`).join(' or '))}`, token),
    },
    { name: 'POST user, 10 MB title (refused)', send: () => call('POST', '/scim/v2/Users', token, JSON.stringify({ schemas: [USER], userName: 'big', title: big(DEFAULT_LIMITS.maxPayloadSize - 200) })) },
    { name: `POST user, ${MAX_VALUE_LENGTH}-char title x 100 e-mails (refused)`, send: () => call('POST', '/scim/v2/Users', token, JSON.stringify({ schemas: [USER], userName: 'wide', emails: Array.from({ length: 100 }, (_, j) => ({ value: `w${j}@x.example`, display: big(MAX_VALUE_LENGTH) })), title: big(MAX_VALUE_LENGTH + 1) })) },
    { name: '100k-deep body (refused)', send: () => call('POST', '/scim/v2/Users', token, `{"title":${'['.repeat(100_000)}${']'.repeat(100_000)}}`) },
  ];

  const failedStatuses = new Map<string, number>();
  /** Probes from a process of their own: the clients here build and send 10 MB bodies, which would delay a probe in this process. */
  async function probe(until: number): Promise<{ health: number[]; signin: number[]; failures: number }> {
    const p = spawn(process.execPath, ['--import', 'tsx', 'bench/hostile-probe.ts', url, String(until), signinBody], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => p.once('exit', resolve));
    if (code !== 0) throw new Error(`the probe process exited ${code}`);
    const r = JSON.parse(out) as { health: number[]; signin: number[]; failures: Record<string, number> };
    let failures = 0;
    for (const [k, v] of Object.entries(r.failures)) {
      failures += v;
      failedStatuses.set(k, (failedStatuses.get(k) ?? 0) + v);
    }
    return { health: r.health, signin: r.signin, failures };
  }

  const line = (label: string, xs: number[]) =>
    console.log(`${label.padEnd(34)} n=${String(xs.length).padStart(4)}  p50 ${pct(xs, 50).toFixed(1).padStart(7)} ms  p99 ${pct(xs, 99).toFixed(1).padStart(7)} ms  max ${Math.max(...xs).toFixed(1).padStart(7)} ms`);

  console.log(`cloud directory in its own process, ${USERS} users; probes every 25 ms from their own process`);
  await loopDelay(); // reset after seeding
  const idle = await probe(Date.now() + 5000);
  line('idle: /healthz', idle.health);
  line('idle: sign-in', idle.signin);
  console.log(await loopDelay());

  const stats = new Map<string, { n: number; ms: number[]; statuses: Map<number, number> }>(kinds.map((k) => [k.name, { n: 0, ms: [], statuses: new Map() }]));
  const until = Date.now() + SECONDS * 1000;
  const clients = Array.from({ length: CLIENTS }, async (_, c) => {
    for (let i = c; Date.now() < until; i++) {
      const k = kinds[i % kinds.length]!;
      const t0 = performance.now();
      const status = await k.send(c);
      const s = stats.get(k.name)!;
      s.n++;
      s.ms.push(performance.now() - t0);
      s.statuses.set(status, (s.statuses.get(status) ?? 0) + 1);
    }
  });
  const loaded = await probe(until);
  await Promise.all(clients);
  console.log(`\nunder load: ${CLIENTS} clients for ${SECONDS} s`);
  line('load: /healthz', loaded.health);
  line('load: sign-in', loaded.signin);
  console.log(await loopDelay());
  console.log(`probe failures: ${idle.failures + loaded.failures}${failedStatuses.size ? ` (${[...failedStatuses].map(([k, v]) => `${k}×${v}`).join(', ')})` : ''}`);
  const worst = Math.max(pct(loaded.health, 99), pct(loaded.signin, 99));
  console.log(`goal p99 ≤ ${GOAL_MS} ms (/healthz and sign-in under load): ${worst <= GOAL_MS ? 'met' : 'not met'} (worst p99 ${worst.toFixed(1)} ms)`);
  console.log('\nhostile requests (client-side time, includes sending the body):');
  for (const [name, s] of stats) {
    const statuses = [...s.statuses].map(([k, v]) => `${k}×${v}`).join(' ');
    console.log(`  ${name.padEnd(48)} n=${String(s.n).padStart(3)}  p50 ${pct(s.ms, 50).toFixed(0).padStart(6)} ms  ${statuses}`);
  }
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
