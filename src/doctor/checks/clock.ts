/**
 * Clock skew against the cloud directory: its HTTP `Date` header vs this machine's clock. Tokens
 * carry iat/exp, so a skewed clock makes valid tokens look expired (or not yet valid).
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import type { DoctorCheck, Finding } from '../types.js';

export const SKEW_WARN_MS = 60_000;
export const SKEW_ERROR_MS = 5 * 60_000;

export function skewStatus(skewMs: number): 'ok' | 'warning' | 'error' {
  const a = Math.abs(skewMs);
  return a > SKEW_ERROR_MS ? 'error' : a > SKEW_WARN_MS ? 'warning' : 'ok';
}

/** local − remote in ms (positive: this machine is ahead), from one request's Date header. */
export async function measureSkew(url: string, opts: { ca?: string; timeoutMs: number; now?: () => number }): Promise<number> {
  const now = opts.now ?? Date.now;
  const dispatcher = new Agent({ connect: { ...(opts.ca ? { ca: readFileSync(opts.ca) } : {}), timeout: opts.timeoutMs } });
  try {
    const t0 = now();
    const res = await request(url, { dispatcher, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs });
    const t1 = now();
    await res.body.dump();
    const date = res.headers.date;
    const remote = typeof date === 'string' ? Date.parse(date) : NaN;
    if (Number.isNaN(remote)) throw new Error('the answer has no Date header');
    // The header has 1 s resolution: the server's time is on average 0.5 s after it.
    return (t0 + t1) / 2 - (remote + 500);
  } finally {
    await dispatcher.close();
  }
}

export const clockCheck: DoctorCheck = {
  name: 'clock-skew',
  async run(d): Promise<Finding[]> {
    const cloud = d.loaded.config.cloud;
    const url = `${cloud.url.replace(/\/+$/, '')}/healthz`;
    let skew: number;
    try {
      skew = await measureSkew(url, { ...(cloud.ca ? { ca: d.loaded.resolvePath(cloud.ca) } : {}), timeoutMs: d.probeTimeoutMs });
    } catch (err) {
      return [{ check: 'clock-skew', target: 'cloud', status: 'warning', message: `could not compare the clock with the cloud directory (${url})`, cause: err instanceof Error ? err.message : String(err), fix: 'Fix the connectivity finding of the cloud first.' }];
    }
    const s = Math.round(skew / 1000);
    const what = `this machine's clock is ${Math.abs(s)} s ${s >= 0 ? 'ahead of' : 'behind'} the cloud directory`;
    const status = skewStatus(skew);
    if (status === 'ok') return [{ check: 'clock-skew', target: 'cloud', status, message: `clock: ${what}` }];
    return [{
      check: 'clock-skew',
      target: 'cloud',
      status,
      message: `clock skew: ${what}`,
      cause: 'Access tokens carry issue and expiry times: with a skewed clock the cloud directory refuses valid tokens (event 115) or they expire early.',
      fix: 'timedatectl set-ntp true   (or configure chrony / systemd-timesyncd), then: timedatectl status',
    }];
  },
};
