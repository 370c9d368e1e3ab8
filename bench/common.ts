/** What several benches share: running the CLI, timing a first sign-in, percentiles, the load. */
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from 'ldapts';
import { setPasswordChange } from '../test/helpers/samba.js';
import { idsync, signIn } from '../test/helpers/processes.js';

/** Runs a CLI command to completion; throws when it fails. */
export async function mustIdsync(args: string[], input?: string): Promise<void> {
  const r = await idsync(args, input);
  if (r.code !== 0) throw new Error(`idsync ${args.slice(2, 5).join(' ')} exited ${r.code}: ${r.out.slice(-2000)}`);
}

/** Polls the token endpoint every 25 ms; the time of the first success (performance.now()), or undefined. */
export async function firstSignIn(cloudUrl: string, username: string, password: string, timeoutMs: number): Promise<number | undefined> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    if ((await signIn(cloudUrl, username, password)) === 200) return performance.now();
    await sleep(25);
  }
  return undefined;
}

/** The p-th percentile (nearest rank) of ascending values. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** The 1, 5 and 15 minute load averages, for the figures' context. */
export const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');

export interface ChangeTimings {
  /** Change → first successful cloud sign-in with the new password, ms, ascending. */
  latency: number[];
  /** The LDAPS modify itself, ms, ascending. */
  modify: number[];
  /** Changes whose new password did not sign in within 15 s. */
  lost: number;
}

/**
 * Sets `changes` new passwords over LDAPS (round robin over `users`), each after a random pause of up
 * to `phaseMs` (a random phase against the source's poll), and times each to the first cloud sign-in.
 */
export async function timePasswordChanges(
  ldaps: Client,
  cloudUrl: string,
  users: { dn: string; userPrincipalName: string }[],
  changes: number,
  phaseMs: number,
  password: (k: number) => string,
): Promise<ChangeTimings> {
  const latency: number[] = [];
  const modify: number[] = [];
  let lost = 0;
  for (let k = 0; k < changes; k++) {
    const u = users[k % users.length]!;
    const pw = password(k);
    await sleep(Math.random() * phaseMs);
    const start = performance.now();
    await ldaps.modify(u.dn, setPasswordChange(pw));
    modify.push(performance.now() - start);
    const ok = await firstSignIn(cloudUrl, u.userPrincipalName, pw, 15_000);
    if (ok === undefined) lost++;
    else latency.push(ok - start);
  }
  latency.sort((a, b) => a - b);
  modify.sort((a, b) => a - b);
  return { latency, modify, lost };
}
