/**
 * `node --import tsx bench/engine-cpu.ts [N]`: the sync engine's own CPU per object in an initial
 * cycle, with no directory and no cloud: N bench users (bench/floors.ts) and N/100 groups of 100
 * members, shaped as the LDAP connector hands them over, go through the overlapped pipeline's
 * stages (staging in pages of 1,000, a sync pass after each page, the early export of users, then
 * the ordinary export) into a fresh database on disk, against a target that answers every write at
 * once (in process: the cloud's CPU is bench/sync.ts's business). Prints the CPU µs per object of
 * each stage (process.cpuUsage, robust on a busy machine). Asserts nothing.
 * (The console's attribute index is no longer on the metaverse write path: console/002.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { allMigrations } from '../src/app/migrations.js';
import type { SourceObject, TargetConnector, TargetOutcome, TargetWrite } from '../src/connectors/types.js';
import { ImportStager } from '../src/engine/connector-space.js';
import { Exporter } from '../src/engine/export.js';
import { RunLog } from '../src/engine/runs.js';
import { Synchronizer } from '../src/engine/sync.js';
import { compileRules } from '../src/rules/index.js';
import { openDatabase } from '../src/store/database.js';
import { benchUser } from './floors.js';

const n = Number(process.argv[2] ?? 20000);
const groups = Math.floor(n / 100);
const PAGE = 1000;

function user(i: number): SourceObject {
  const attributes: Record<string, string[]> = { objectclass: ['inetOrgPerson'] };
  for (const [k, v] of Object.entries(benchUser(i))) attributes[k.toLowerCase()] = [v];
  const anchor = `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
  attributes.entryuuid = [anchor];
  return { anchor, objectType: 'user', dn: `uid=u${i},ou=people,dc=lab,dc=test`, attributes };
}

function group(g: number): SourceObject {
  const member: string[] = [];
  for (let i = g * 100; i < g * 100 + 100; i++) member.push(`uid=u${i},ou=people,dc=lab,dc=test`);
  const anchor = `10000000-0000-4000-8000-${g.toString(16).padStart(12, '0')}`;
  return { anchor, objectType: 'group', dn: `cn=g${g},ou=groups,dc=lab,dc=test`, attributes: { objectclass: ['groupOfNames'], cn: [`g${g}`], member, entryuuid: [anchor] } };
}

/** Answers every write at once with a new id, as a cloud would after a successful create. */
class InstantTarget implements TargetConnector {
  readonly name = 'cloud';
  private next = 0;
  private answer(w: TargetWrite): TargetOutcome {
    return { kind: 'ok', targetId: w.targetId ?? `c${++this.next}` };
  }
  writeBatch(writes: TargetWrite[]): Promise<TargetOutcome[]> {
    return Promise.resolve(writes.map((w) => this.answer(w)));
  }
  write(w: TargetWrite): Promise<TargetOutcome> {
    return Promise.resolve(this.answer(w));
  }
  remove(_t: unknown, targetId: string): Promise<TargetOutcome> {
    return Promise.resolve({ kind: 'ok', targetId });
  }
  find(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
}

const dir = mkdtempSync(path.join(tmpdir(), 'idsync-bench-engine-'));
const db = openDatabase(path.join(dir, 'idsync.db'), allMigrations);
for (const p of (process.env.IDSYNC_BENCH_PRAGMA ?? '').split(';').filter(Boolean)) db.pragma(p);
const runs = new RunLog(db);
const runId = runs.begin('cycle');
const importStep = runs.step(runId, 'bench', 'import');
const syncStep = runs.step(runId, 'metaverse', 'sync');
const exportStep = runs.step(runId, 'cloud', 'export');
const sync = new Synchronizer(db, { kinds: new Map([['bench', 'ldap']]), rules: compileRules(undefined, [{ name: 'bench', type: 'ldap' }]), joinRules: false, scopeRules: false });
const exporter = new Exporter(db, new InstantTarget(), { deletionThreshold: n, allowDeletes: false, concurrency: 8, bulkSize: Number(process.env.IDSYNC_BENCH_BULK ?? 100) });
// As the overlapped cycle does (pipeline.ts EarlyExport.projection): new users projected as they are staged,
// their parsed attributes handed to the early export.
const stager = new ImportStager(db, 'bench', 'ldap', {
  project: (objects) => sync.projectStaged('bench', objects, exporter.parsed),
  linked: (objects) => sync.stagedLinked('bench', objects, syncStep),
});

const cpu = { make: 0, stage: 0, sync: 0, export: 0 };
const measure = async (k: keyof typeof cpu, fn: () => unknown): Promise<void> => {
  const c = process.cpuUsage();
  await fn();
  const d = process.cpuUsage(c);
  cpu[k] += d.user + d.system;
};

const t0 = performance.now();
const all = n + groups;
for (let from = 0; from < all; from += PAGE) {
  let page: SourceObject[] = [];
  await measure('make', () => {
    page = [];
    for (let i = from; i < Math.min(all, from + PAGE); i++) page.push(i < n ? user(i) : group(i - n));
  });
  // As the overlapped cycle does: the page's sync inside its transaction (the commit counts as staging).
  let syncCpu = 0;
  await measure('stage', () =>
    stager.stagePage(page, importStep.counts, () => {
      const c = process.cpuUsage();
      sync.pass(syncStep);
      const d = process.cpuUsage(c);
      syncCpu = d.user + d.system;
    }),
  );
  cpu.stage -= syncCpu;
  cpu.sync += syncCpu;
  await measure('export', () => exporter.exportPendingUsers(exportStep));
}
await measure('stage', () => stager.markUnseenDeleted(importStep.counts));
await measure('sync', () => sync.pass(syncStep));
await measure('export', () => exporter.run(exportStep));
const seconds = (performance.now() - t0) / 1000;

const per = (us: number) => (us / all).toFixed(1).padStart(7);
const total = cpu.stage + cpu.sync + cpu.export;
console.log(`engine CPU, ${n.toLocaleString('en-US')} users + ${groups.toLocaleString('en-US')} groups, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(`  stage ${per(cpu.stage)} µs/object   sync ${per(cpu.sync)} µs/object   export ${per(cpu.export)} µs/object   engine ${per(total)} µs/object = ${(total / 1e6).toFixed(2)} s CPU (${seconds.toFixed(2)} s wall; making the objects ${(cpu.make / 1e6).toFixed(2)} s, not counted)`);
console.log(`  import ${JSON.stringify(importStep.counts)}  sync ${JSON.stringify(syncStep.counts)}  export ${JSON.stringify(exportStep.counts)}  peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MB`);
db.close();
rmSync(dir, { recursive: true, force: true });
