/**
 * `npm run bench:sync [-- 100000,1000000]`: generates N users (and N/100 groups of 100 members)
 * into a real OpenLDAP with slapadd, then measures, with the cloud directory in its own process:
 *   0. the floors (bench/floors.ts): a raw ldapts read of the same directory, a raw SQLite upsert
 *      of as many rows, raw SCIM Bulk of the same users and groups to a fresh cloud process;
 *   1. the initial full cycle (import → sync → export of everything), each stage against its floor;
 *   2. a no-change delta cycle;
 *   3. a 1 % change delta cycle (titles of N/100 users changed over LDAP),
 * and prints wall time, objects/s, CPU seconds (the sync process's and the cloud's) and the peak
 * RSS of the sync process. Asserts nothing.
 * Goals on 2 cores (issue 13): 100k initial ≤ 10 s; 1M ≤ 120 s at ≤ 1 GB RSS; no-change delta at
 * 1M ≤ 1 s; 1 % delta at 1M ≤ 10 s. The incumbent: ~10 minutes per 10,000 objects.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { createSyncClient } from '../src/cloud/admin-api-client.js';
import { startPostgres } from '../test/helpers/postgres.js';
import { startSlapd } from '../test/helpers/slapd.js';
import { runNode, startBenchCloud, writeBenchConfig } from './processes.js';
import { bulkFloor, ldapFloor, sqliteFloor, writeBenchLdif, type Floor } from './floors.js';
import { NODE_FLAGS } from '../src/service/node-flags.js';

// `-- 100000,1000000 [--store sqlite|postgres|both]`: PostgreSQL (a private PostgreSQL 15 started
// here, test/helpers/postgres.ts) runs the same cycles into a cloud of its own, printed beside SQLite.
const args = process.argv.slice(2);
const storeArg = args.includes('--store') ? args[args.indexOf('--store') + 1] : 'sqlite';
if (storeArg !== 'sqlite' && storeArg !== 'postgres' && storeArg !== 'both') throw new Error('--store must be sqlite, postgres or both');
const stores: ('sqlite' | 'postgres')[] = storeArg === 'both' ? ['sqlite', 'postgres'] : [storeArg];
const sizes = (args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--store') ?? '100000').split(',').map(Number);
// `--groups-first`: each group is written right before its members (floors.ts), so the first import
// stages groups that list users it has not seen yet.
const order = args.includes('--groups-first') ? 'groups-first' : 'members-first';
// `--random-anchors`: every entry gets a random entryUUID (slapadd keeps a given one), as AD's
// objectGUIDs are; OpenLDAP's own are time-based, so its entries come in anchor order.
const randomAnchors = args.includes('--random-anchors');
const pgCluster = stores.includes('postgres') ? await startPostgres() : undefined;

interface WorkerResult {
  status: string;
  error: unknown;
  seconds: number;
  cpuSeconds: number;
  peakRssMb: number;
  bridge: { roundTrips: number; statements: number; waitSeconds: number };
  trace?: string;
  steps: Record<string, { profile: string | null; seconds: number | null; adds: number; updates: number; deletes: number; unchanged: number; errors: number }>;
}

/** CPU seconds (user + system) a process has used so far, from /proc (0 where there is none). */
function procCpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return 0;
  }
}

/**
 * CPU seconds of a process and its children (PostgreSQL's backends are the postmaster's children):
 * its own, its reaped children's (cutime, cstime: a backend whose connection closed), and the live ones'.
 */
function treeCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  let sum = 0;
  try {
    const own = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    sum = (Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14])) / 100;
  } catch {
    return 0;
  }
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const fields = readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1]!.split(' ');
      if (Number(fields[1]) === pid) sum += (Number(fields[11]) + Number(fields[12])) / 100;
    } catch {
      // gone meanwhile
    }
  }
  return sum;
}

function report(label: string, objects: number, r: WorkerResult, cloudCpu: number, dbCpu?: number): void {
  const exp = r.steps['cloud/export'];
  const imp = Object.entries(r.steps).find(([k]) => k.endsWith('/import'))?.[1];
  console.log(
    `${label.padEnd(22)} ${r.seconds.toFixed(2).padStart(7)} s  ${Math.round(objects / r.seconds).toLocaleString('en-US').padStart(9)} objects/s  ` +
      `peak RSS ${Math.round(r.peakRssMb).toString().padStart(5)} MB  CPU sync ${r.cpuSeconds.toFixed(1)} s, cloud ${cloudCpu.toFixed(1)} s${dbCpu !== undefined ? `, PostgreSQL ${dbCpu.toFixed(1)} s` : ''}  import ${imp?.profile ?? '?'}  exported +${exp?.adds ?? 0} ~${exp?.updates ?? 0} -${exp?.deletes ?? 0}  ${r.status}`,
  );
  console.log(`${''.padEnd(22)} ${Object.entries(r.steps).map(([k, s]) => `${k} ${s.seconds?.toFixed(2)} s`).join(', ')}`);
  if (r.bridge.roundTrips > 0) {
    const b = r.bridge;
    console.log(
      `${''.padEnd(22)} PostgreSQL bridge: ${b.roundTrips.toLocaleString('en-US')} round trips for ${b.statements.toLocaleString('en-US')} statements (${(b.statements / b.roundTrips).toFixed(1)} per trip), ` +
        `${b.waitSeconds.toFixed(1)} s waiting in them (${((b.waitSeconds / r.seconds) * 100).toFixed(0)} % of the cycle, ${((b.waitSeconds / b.roundTrips) * 1e6).toFixed(0)} µs per trip)`,
    );
  }
  if (r.status !== 'success') console.log(`${''.padEnd(22)} ${r.status}: ${JSON.stringify(r.error)}`);
}

/** Each stage of the initial cycle against its floor, measured in the same run. */
function reportFloors(r: WorkerResult, floors: { ldap: Floor; sqlite: Floor; bulk: Floor }): void {
  const stage = (suffix: string) => Object.entries(r.steps).find(([k]) => k.endsWith(suffix))?.[1]?.seconds ?? NaN;
  const rows: [string, number, Floor, string][] = [
    ['import', stage('/import'), floors.ldap, 'raw ldapts paged read'],
    ['sync', stage('/sync'), floors.sqlite, 'raw SQLite upsert, 10k-row transactions'],
    ['export', stage('/export'), floors.bulk, 'raw SCIM Bulk, 100 ops x 8 in flight'],
  ];
  console.log(`${''.padEnd(22)} stage    measured      floor   ratio   (floor: what, objects/s, its CPU)`);
  for (const [name, measured, f, what] of rows) {
    console.log(
      `${''.padEnd(22)} ${name.padEnd(7)} ${measured.toFixed(2).padStart(7)} s ${f.seconds.toFixed(2).padStart(7)} s ${(measured / f.seconds).toFixed(1).padStart(6)}x   (${what}, ${Math.round(f.objects / f.seconds).toLocaleString('en-US')}/s, CPU ${f.cpuSeconds.toFixed(1)} s)`,
    );
  }
  const serial = floors.ldap.seconds + floors.sqlite.seconds + floors.bulk.seconds;
  const overlapped = Math.max(floors.ldap.seconds, floors.sqlite.seconds, floors.bulk.seconds);
  console.log(
    `${''.padEnd(22)} cycle   ${r.seconds.toFixed(2).padStart(7)} s ${serial.toFixed(2).padStart(7)} s ${(r.seconds / serial).toFixed(1).padStart(6)}x   (sum of the floors; the slowest floor alone, what overlapped stages approach: ${overlapped.toFixed(2)} s, ${(r.seconds / overlapped).toFixed(1)}x)`,
  );
}

for (const n of sizes) {
  const groups = Math.floor(n / 100);
  const dir = mkdtempSync(path.join(tmpdir(), `idsync-bench-sync-${n}-`));
  console.log(`\nN = ${n.toLocaleString('en-US')} users + ${groups.toLocaleString('en-US')} groups (${dir}), load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  let t = performance.now();
  await writeBenchLdif(path.join(dir, 'seed.ldif'), n, order, randomAnchors);
  const slapd = await startSlapd({ seedLdifFile: path.join(dir, 'seed.ldif') });
  console.log(`generated and slapadd-loaded in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const adminPassword = 'Bench-admin-password-1';
  const cloud = await startBenchCloud(path.join(dir, 'cloud'), adminPassword);
  try {
    // The floors first, each on its own (a fresh cloud process for the raw Bulk, so both start empty).
    const ldap = await ldapFloor({ url: slapd.url, bindDn: slapd.adminDn, password: slapd.adminPassword, baseDn: slapd.baseDn });
    const sqlite = await sqliteFloor(n + groups);
    const floorCloud = await startBenchCloud(path.join(dir, 'floor-cloud'), adminPassword);
    let bulk: Floor;
    try {
      const floorSecret = await createSyncClient(floorCloud.url, { username: 'admin', password: adminPassword }, 'floor');
      bulk = await bulkFloor({ url: floorCloud.url, clientId: 'floor', secret: floorSecret }, n, groups);
    } finally {
      floorCloud.child.kill('SIGTERM');
    }
    console.log(`floors: ldapts read ${ldap.seconds.toFixed(2)} s, SQLite upsert ${sqlite.seconds.toFixed(2)} s, SCIM Bulk ${bulk.seconds.toFixed(2)} s`);

    const results: Record<string, Record<string, WorkerResult & { dbCpu?: number }>> = {};
    for (const store of stores) {
      // Each store exports into a fresh cloud of its own; the first uses the one started above.
      const own = store === stores[0] ? cloud : await startBenchCloud(path.join(dir, `cloud-${store}`), adminPassword);
      try {
        await runStore(store, own.url, own.child, results);
      } finally {
        if (own !== cloud) own.child.kill('SIGTERM');
      }
    }
    if (stores.length > 1) {
      console.log(`\n${''.padEnd(22)} ${'SQLite'.padStart(22)} ${'PostgreSQL'.padStart(34)}   ratio (wall, sync CPU)`);
      for (const label of Object.keys(results.sqlite ?? {})) {
        const a = results.sqlite![label]!;
        const b = results.postgres?.[label];
        if (!b) continue;
        console.log(
          `${label.padEnd(22)} ${a.seconds.toFixed(2).padStart(8)} s  CPU ${a.cpuSeconds.toFixed(1).padStart(6)} s ${b.seconds.toFixed(2).padStart(8)} s  CPU ${b.cpuSeconds.toFixed(1).padStart(6)} s + server ${(b.dbCpu ?? 0).toFixed(1).padStart(5)} s   ${(b.seconds / a.seconds).toFixed(1)}x, ${(b.cpuSeconds / a.cpuSeconds).toFixed(1)}x`,
        );
      }
    }

    async function runStore(store: 'sqlite' | 'postgres', url: string, cloudChild: ReturnType<typeof spawn>, into: typeof results): Promise<void> {
      console.log(`\nstore: ${store}`);
      const secret = await createSyncClient(url, { username: 'admin', password: adminPassword }, 'bench');
      const config = path.join(dir, `idsync-${store}.yaml`);
      let env: NodeJS.ProcessEnv = {};
      let storeBlock: Record<string, unknown> | undefined;
      if (store === 'postgres') {
        const u = new URL(await pgCluster!.createDatabase());
        env = { IDSYNC_STORE_PASSWORD: decodeURIComponent(u.password) };
        process.env.IDSYNC_STORE_PASSWORD = env.IDSYNC_STORE_PASSWORD;
        u.password = '';
        storeBlock = { type: 'postgres', url: u.toString() };
      }
      writeBenchConfig(config, { dataDir: `./data-${store}`, store: storeBlock, slapd, cloudUrl: url, cloudSecret: secret, n });

      // IDSYNC_BENCH_PROFILE=DIR writes a CPU profile of each cycle there (bench/profile-top.ts summarises it per stage).
      const prof = process.env.IDSYNC_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.IDSYNC_BENCH_PROFILE}`] : [];
      const pgPid = store === 'postgres' ? pgCluster!.pid : undefined;
      const cycle = async (label: string): Promise<WorkerResult> => {
        const cpu0 = procCpuSeconds(cloudChild.pid);
        const db0 = treeCpuSeconds(pgPid);
        // With the flags every idsync process runs with (bin/idsync.js's first line).
        const out = (await runNode([...NODE_FLAGS, ...prof, '--import', 'tsx', 'bench/sync-worker.ts', config], env).done).trim().split('\n').pop()!;
        if (process.env.IDSYNC_BENCH_PROFILE) writeFileSync(path.join(process.env.IDSYNC_BENCH_PROFILE, `${n}-${store}-${label.replace(/\W+/g, '-')}.json`), out);
        const r = JSON.parse(out) as WorkerResult;
        const dbCpu = pgPid !== undefined ? treeCpuSeconds(pgPid) - db0 : undefined;
        report(label, n + groups, r, procCpuSeconds(cloudChild.pid) - cpu0, dbCpu);
        if (r.trace) process.stdout.write(r.trace); // IDSYNC_PG_TRACE=1: the statements that made the round trips
        (into[store] ??= {})[label] = { ...r, ...(dbCpu !== undefined ? { dbCpu } : {}) };
        return r;
      };
      reportFloors(await cycle('initial full cycle'), { ldap, sqlite, bulk });
      await cycle('no-change delta');

      // The same 1 % of users changed for each store: titles set to a value per store, so the
      // second store's delta sees a change as the first did.
      t = performance.now();
      const changed = Math.max(1, Math.floor(n / 100));
      let ldif = '';
      for (let i = 0; i < changed; i++) ldif += `dn: uid=u${i * 100},ou=people,dc=lab,dc=test\nchangetype: modify\nreplace: title\ntitle: Changed ${store}\n\n`;
      await slapd.modify(ldif);
      console.log(`changed ${changed.toLocaleString('en-US')} users over LDAP in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      await cycle('1 % change delta');
    }
  } finally {
    cloud.child.kill('SIGTERM');
    await slapd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
await pgCluster?.stop();
