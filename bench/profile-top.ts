/**
 * Top costs of a sync cycle's CPU profile, per stage.
 * Usage: node --import tsx bench/profile-top.ts CYCLE.cpuprofile RESULT.json [TOP]
 * (IDSYNC_BENCH_PROFILE=DIR npm run bench:sync writes both: the profile of each cycle and the
 * worker's result line with its step times.) Samples are split by the run record's step start and
 * end times, tied to the profile's monotonic clock by the worker's `clock`; each stage prints its
 * functions by self time, with file:line.
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}
interface Result {
  clock: { wallMs: number; monoUs: number };
  steps: Record<string, { startedAt: string; endedAt: string | null }>;
}

const [profileFile, resultFile, topArg] = process.argv.slice(2);
if (!profileFile || !resultFile) {
  console.error('usage: profile-top.ts CYCLE.cpuprofile RESULT.json [TOP]');
  process.exit(2);
}
const top = Number(topArg ?? 12);
const profile = JSON.parse(readFileSync(profileFile, 'utf8')) as Profile;
const result = JSON.parse(readFileSync(resultFile, 'utf8')) as Result;
const toMono = (iso: string) => (Date.parse(iso) - result.clock.wallMs) * 1000 + result.clock.monoUs;
const windows = Object.entries(result.steps).map(([name, s]) => ({ name, from: toMono(s.startedAt), to: s.endedAt ? toMono(s.endedAt) : Infinity }));

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const label = (n: Node) => {
  const f = n.callFrame;
  const file = f.url.replace(/^file:\/\//, '').replace(/.*\/node_modules\//, '').replace(/.*\/(src|bench)\//, '$1/');
  return `${f.functionName || '(anonymous)'} ${file ? `${file}:${f.lineNumber + 1}` : ''}`.trim();
};
const perStage = new Map<string, Map<string, number>>();
const totals = new Map<string, number>();
let t = profile.startTime;
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i] ?? 0;
  t += dt;
  const stage = windows.find((w) => t >= w.from && t < w.to)?.name ?? '(outside the steps)';
  const node = byId.get(profile.samples[i]!)!;
  if (node.callFrame.functionName === '(idle)') continue;
  const m = perStage.get(stage) ?? new Map<string, number>();
  perStage.set(stage, m);
  const key = label(node);
  m.set(key, (m.get(key) ?? 0) + dt);
  totals.set(stage, (totals.get(stage) ?? 0) + dt);
}
for (const [stage, m] of perStage) {
  const total = totals.get(stage) ?? 0;
  console.log(`\n${stage}: ${(total / 1e6).toFixed(2)} s of samples (idle excluded)`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${((100 * us) / total).toFixed(1).padStart(5)} %  ${(us / 1e6).toFixed(2).padStart(6)} s  ${k}`);
}
