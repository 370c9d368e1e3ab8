/**
 * The overview's charts over the last 7 days, from what the service already records: the run
 * history (cycle durations, exports per cycle), event 651 (password changes delivered per day) and
 * the password status log (from a change being queued to its delivery: when the user can sign in
 * to the cloud with the new password). Read-only.
 */
import type { EngineContext } from '../engine/context.js';
import { RunLog } from '../engine/runs.js';
import { EVENTS } from '../events/catalog.js';
import { deliveryLatencies } from '../passwords/status.js';
import type { Charts } from './api-types.js';

export const CHART_DAYS = 7;
const DAY_MS = 86_400_000;

const quantile = (sorted: number[], q: number): number | null => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : null);

export function buildCharts(ctx: EngineContext, now: number = Date.now()): Charts {
  const since = now - CHART_DAYS * DAY_MS;
  const days = Array.from({ length: CHART_DAYS }, (_, i) => new Date(since + (i + 1) * DAY_MS).toISOString().slice(0, 10));
  const dayOf = (iso: string) => iso.slice(0, 10);

  const runs = new RunLog(ctx.db)
    .list(2000)
    .filter((r) => Date.parse(r.startedAt) >= since && r.endedAt)
    .reverse();
  const cycles = runs.map((r) => ({
    id: r.id,
    at: r.startedAt,
    profile: r.profile,
    status: r.status,
    seconds: Math.max(0, (Date.parse(r.endedAt!) - Date.parse(r.startedAt)) / 1000),
    exported: r.steps.filter((s) => s.step === 'export').reduce((n, s) => n + s.adds + s.updates + s.deletes, 0),
  }));

  const delivered = new Map(days.map((d) => [d, 0]));
  for (const e of ctx.events.query({ ids: [EVENTS.PHS_BATCH_END.id], since: new Date(since), limit: 100_000 })) {
    const d = dayOf(e.time);
    if (delivered.has(d)) delivered.set(d, delivered.get(d)! + (Number(e.details.delivered) || 0));
  }

  const byDay = new Map(days.map((d) => [d, [] as number[]]));
  for (const l of deliveryLatencies(ctx.db, new Date(since).toISOString())) byDay.get(dayOf(l.at))?.push(l.seconds);
  const latency = days.map((d) => {
    const xs = byDay.get(d)!.sort((a, b) => a - b);
    return { day: d, count: xs.length, medianSeconds: quantile(xs, 0.5), p95Seconds: quantile(xs, 0.95) };
  });

  return { days: CHART_DAYS, cycles, passwordsDelivered: days.map((d) => ({ day: d, delivered: delivered.get(d)! })), changeToSignIn: latency };
}
