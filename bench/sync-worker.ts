/**
 * One sync cycle in its own process, for bench/sync.ts: prints the run record's export counts,
 * the wall time and this process's peak RSS as one JSON line.
 * Usage: node --import tsx bench/sync-worker.ts CONFIG [--full]
 */
import { loadConfig } from '../src/config/load.js';
import { openContext } from '../src/engine/context.js';
import { runCycle } from '../src/engine/cycle.js';

const [configFile, flag] = process.argv.slice(2);
const ctx = openContext(loadConfig(configFile!));
const t0 = performance.now();
const run = await runCycle(ctx, { full: flag === '--full' });
const seconds = (performance.now() - t0) / 1000;
ctx.close();
const steps = Object.fromEntries(run.steps.map((s) => [`${s.connector}/${s.step}`, { profile: s.profile, seconds: s.endedAt ? (Date.parse(s.endedAt) - Date.parse(s.startedAt)) / 1000 : null, adds: s.adds, updates: s.updates, deletes: s.deletes, unchanged: s.unchanged, errors: s.errors }]));
process.stdout.write(JSON.stringify({ status: run.status, error: run.error, seconds, peakRssMb: process.resourceUsage().maxRSS / 1024, steps }) + '\n');
