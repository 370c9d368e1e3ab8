/**
 * `npm run bench:cloud-scim`: CPU cost of the cloud directory's SCIM write and read paths (create,
 * list, Bulk), server and client in this one process, on SQLite (default) or PostgreSQL
 * (IDSYNC_BENCH_DATABASE=private starts a private PostgreSQL 15 cluster as the tests do; the
 * server's CPU is then partly in PostgreSQL's processes, which this figure does not count). CPU time (process.cpuUsage) rather than wall time, so the
 * figure holds on a busy machine. Figures, not assertions.
 *
 *   npm run bench:cloud-scim -- [users=2000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Pool } from 'undici';
import { fetchToken } from '../src/cloud/admin-api-client.js';
import { createCloudServer } from '../src/cloud/server.js';
import { startPostgres, type TestPostgres } from '../test/helpers/postgres.js';

const N = Number(process.argv[2] ?? 2000);
const ROUNDS = Number(process.env.IDSYNC_BENCH_ROUNDS ?? 3);

function cpuMs(since: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
}

async function once(round: number): Promise<Record<string, number>> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'idsync-bench-cloud-'));
  const database = pg ? await pg.createDatabase() : undefined;
  const admin = { username: 'admin', password: 'Bench-admin-pass-1!' };
  const server = await createCloudServer({ dataDir, ...(database ? { database } : {}), adminUser: admin.username, adminPassword: admin.password, logger: false, secretHashParams: { logN: 10, r: 8, p: 1 } });
  const pool = new Pool(server.url, { connections: 8 });
  const token = await fetchToken(server.url, { grant_type: 'password', ...admin });
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' };
  const call = async (method: 'GET' | 'POST', p: string, body?: unknown) => {
    const r = await pool.request({ method, path: `/scim/v2${p}`, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await r.body.text();
    if (r.statusCode >= 300) throw new Error(`${method} ${p}: ${r.statusCode} ${text.slice(0, 200)}`);
    return text;
  };
  const out: Record<string, number> = {};
  try {
    // Single creates, 8 in flight.
    let t = process.cpuUsage();
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < N) {
          const i = next++;
          await call('POST', '/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: `r${round}u${i}@bench.test`, externalId: `r${round}-${i}`, displayName: `User ${i}` });
        }
      }),
    );
    out.createMsPer1k = (cpuMs(t) / N) * 1000;
    // Bulk: N users in 100-operation requests, then one group holding them all by PATCH.
    t = process.cpuUsage();
    for (let b = 0; b < N; b += 100) {
      const ops = [];
      for (let i = b; i < Math.min(N, b + 100); i++) {
        ops.push({ method: 'POST', bulkId: `b${i}`, path: '/Users', data: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: `bulk${i}@bench.test`, externalId: `bulk-${i}`, active: true } });
      }
      await call('POST', '/Bulk', { schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'], Operations: ops });
    }
    out.bulkMsPer1k = (cpuMs(t) / N) * 1000;
    // List: every user in pages of 100, and a filtered look-up per 10th user.
    t = process.cpuUsage();
    for (let s = 1; s <= 2 * N; s += 100) await call('GET', `/Users?startIndex=${s}&count=100`);
    for (let i = 0; i < N; i += 10) await call('GET', `/Users?filter=${encodeURIComponent(`userName eq "r${round}u${i}@bench.test"`)}`);
    out.listMsPer1k = (cpuMs(t) / (2 * N + N / 10)) * 1000;
  } finally {
    await pool.close();
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return out;
}

const pg: TestPostgres | undefined = process.env.IDSYNC_BENCH_DATABASE === 'private' ? await startPostgres() : undefined;
const rounds: Record<string, number>[] = [];
try {
  for (let r = 0; r < ROUNDS; r++) rounds.push(await once(r));
} finally {
  await pg?.stop();
}
const best = (k: string) => Math.min(...rounds.map((x) => x[k]!));
console.log(`cloud SCIM CPU (${pg ? 'postgres' : 'sqlite'}, ${N} users, best of ${ROUNDS}; ms of CPU per 1000, server + client in one process)`);
console.log(`  create (POST /Users, 8 in flight): ${best('createMsPer1k').toFixed(0)} ms/1k users`);
console.log(`  Bulk (100 POSTs per request):      ${best('bulkMsPer1k').toFixed(0)} ms/1k operations`);
console.log(`  list + filter (GET /Users):         ${best('listMsPer1k').toFixed(0)} ms/1k resources`);
