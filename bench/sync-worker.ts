/**
 * One sync cycle in its own process, for bench/sync.ts: prints the run record's export counts,
 * the wall time, this process's CPU time and peak RSS, and on PostgreSQL the bridge's round trips
 * (store/postgres/bridge.ts bridgeStats), as one JSON line. `clock` ties the run
 * record's wall-clock step times to the monotonic clock of a CPU profile (bench/profile-top.ts
 * splits a profile by step with it).
 * Usage: node --import tsx bench/sync-worker.ts CONFIG [--full]
 */
import { appendFileSync } from 'node:fs';
import { loadConfig } from '../src/config/load.js';
import { openContext } from '../src/engine/context.js';
import { runCycle } from '../src/engine/cycle.js';
import { bridgeStats, traceReport } from '../src/store/postgres/bridge.js';

function since(b: ReturnType<typeof bridgeStats>): ReturnType<typeof bridgeStats> {
  const now = bridgeStats();
  return { roundTrips: now.roundTrips - b.roundTrips, statements: now.statements - b.statements, waitSeconds: now.waitSeconds - b.waitSeconds };
}
const [configFile, flag] = process.argv.slice(2);
const ctx = openContext(loadConfig(configFile!));
const clock = { wallMs: Date.now(), monoUs: Number(process.hrtime.bigint() / 1000n) };
const cpu0 = process.cpuUsage();
const bridge0 = bridgeStats(); // the cycle's own round trips, not the open's
const t0 = performance.now();
// IDSYNC_BENCH_TIMELINE=FILE: every 250 ms, the objects imported and exported so far (the overlap, seen).
const timeline: string[] = [];
const progress = { import: 0, export: 0 };
const tick = process.env.IDSYNC_BENCH_TIMELINE ? setInterval(() => timeline.push(`${((performance.now() - t0) / 1000).toFixed(2)} import ${progress.import} export ${progress.export}`), 250) : undefined;
const run = await runCycle(ctx, { full: flag === '--full', onProgress: (p) => (progress[p.step === 'export' ? 'export' : 'import'] = p.done) });
if (tick) {
  clearInterval(tick);
  appendFileSync(process.env.IDSYNC_BENCH_TIMELINE!, `# ${configFile}\n${timeline.join('\n')}\n`);
}
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const bridge = since(bridge0);
ctx.close();
const steps = Object.fromEntries(
  run.steps.map((s) => [
    `${s.connector}/${s.step}`,
    { profile: s.profile, startedAt: s.startedAt, endedAt: s.endedAt, seconds: s.endedAt ? (Date.parse(s.endedAt) - Date.parse(s.startedAt)) / 1000 : null, adds: s.adds, updates: s.updates, deletes: s.deletes, unchanged: s.unchanged, errors: s.errors },
  ]),
);
process.stdout.write(JSON.stringify({ status: run.status, error: run.error, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, peakRssMb: process.resourceUsage().maxRSS / 1024, bridge, clock, steps, trace: traceReport() }) + '\n');
