/**
 * The cloud client's one retry policy (token requests and API calls alike): a network failure or an
 * answer that says "not now" (429, 502, 503, 504, 500) is retried a few times with jittered
 * exponential backoff, and a `Retry-After` header (RFC 9110 §10.2.3: seconds or an HTTP date) is
 * honoured instead of the backoff. A wait the cloud asks for that is longer than the caller's budget
 * is not slept through here: the last answer is returned, with its Retry-After, so the caller can
 * schedule the work (the password outbox) rather than hold a worker.
 */

import { isIdsyncError } from '../../core/errors.js';

/** Answers worth retrying: the cloud is busy or briefly down, and said nothing about the request. */
export const RETRYABLE_STATUS: ReadonlySet<number> = new Set([429, 500, 502, 503, 504]);

/** Longest single backoff when the cloud gave no Retry-After. */
const MAX_BACKOFF_MS = 10_000;

export interface RetryPolicy {
  /** Retries after the first attempt. */
  retries: number;
  /** Total time this call may spend waiting between attempts; a longer Retry-After ends the retries. */
  budgetMs: number;
  sleep: (ms: number) => Promise<void>;
}

/** What one attempt produced: a response with its status and Retry-After, or a thrown network error. */
export interface Attempted {
  status: number;
  retryAfterMs?: number | undefined;
}

/**
 * Parses a Retry-After header value: delay-seconds or an HTTP date. Undefined when absent or
 * malformed; never negative.
 */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const t = v.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  const at = Date.parse(t);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** Jittered exponential backoff for attempt n (0-based): 50–100% of min(10 s, 100 ms · 2^n). */
export function backoffMs(attempt: number): number {
  const base = Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(attempt, 20));
  return base / 2 + Math.random() * (base / 2);
}

/**
 * Runs `attempt` until it returns a non-retryable answer, the retries are spent, or the cloud asks
 * for a wait beyond the budget. A thrown error (network) is retried likewise and rethrown at the end.
 */
export async function withRetries<T extends Attempted>(attempt: (n: number) => Promise<T>, policy: RetryPolicy): Promise<T> {
  let waited = 0;
  for (let n = 0; ; n++) {
    let res: T | undefined;
    let error: unknown;
    try {
      res = await attempt(n);
    } catch (err) {
      // A node that lost the leader lease must not write later either (docs/ha.md).
      if (isIdsyncError(err, 'LEASE_LOST')) throw err;
      error = err;
    }
    if (res && !RETRYABLE_STATUS.has(res.status)) return res;
    if (n >= policy.retries) {
      if (res) return res;
      throw error;
    }
    const wait = res?.retryAfterMs ?? backoffMs(n);
    if (waited + wait > policy.budgetMs) {
      if (res) return res;
      throw error;
    }
    waited += wait;
    await policy.sleep(wait);
  }
}
