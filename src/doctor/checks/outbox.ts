/** The password outbox: how many changes wait for delivery, and since when. */
import { describeOutbox, outboxStatus } from '../../status/index.js';
import type { DoctorCheck, Finding } from '../types.js';
import { age } from '../format.js';

export const OUTBOX_WARN_MS = 3600 * 1000;
export const OUTBOX_ERROR_MS = 24 * 3600 * 1000;

export const outboxCheck: DoctorCheck = {
  name: 'password-outbox',
  async run(d): Promise<Finding[]> {
    const check = 'password-outbox';
    // The status module's answer, worded as `service status` words it. Changes waiting for their
    // user to be exported (TargetNotExported) are not a backlog: a DC-side agent also sends users
    // outside every connector's scope, and those wait, then expire.
    const o = outboxStatus(d.ctx.db);
    const r = { n: o.deliverable, oldest: o.oldestQueuedAt, attempts: o.attempts };
    if (r.n === 0 || !r.oldest) return [{ check, status: 'ok', message: `password outbox: ${describeOutbox(o)}` }];
    const oldestRow = { last_error: o.lastError };
    const ago = d.now - Date.parse(r.oldest);
    const what = `${describeOutbox(o)} (${age(ago)} ago)`;
    if (ago <= OUTBOX_WARN_MS) return [{ check, status: 'ok', message: `password outbox: ${what}; delivery in progress` }];
    const lastError = oldestRow.last_error ?? undefined;
    return [{
      check,
      status: ago > OUTBOX_ERROR_MS ? 'error' : 'warning',
      message: `password outbox backlog: ${what}`,
      cause: `${lastError ? `the last delivery attempt failed with ${lastError}` : 'no delivery attempt failed yet'}${r.attempts ? ` (${r.attempts} attempt(s))` : ''}; ${d.serviceRunning ? 'the service retries with backoff' : 'the sync service is not running'}`,
      fix: !d.serviceRunning ? 'idsync service start' : lastError?.includes('AUTH') ? 'idsync credentials set cloud' : 'idsync passwords status',
    }];
  },
};
