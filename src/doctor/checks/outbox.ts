/** The password outbox: how many changes wait for delivery, and since when. */
import { redactString } from '../../events/redact.js';
import type { DoctorCheck, Finding } from '../types.js';
import { age } from '../format.js';

export const OUTBOX_WARN_MS = 3600 * 1000;
export const OUTBOX_ERROR_MS = 24 * 3600 * 1000;

export const outboxCheck: DoctorCheck = {
  name: 'password-outbox',
  async run(d): Promise<Finding[]> {
    const check = 'password-outbox';
    // Changes waiting for their user to be exported (TargetNotExported) are not a backlog: a DC-side
    // agent also sends users outside every connector's scope, and those wait, then expire.
    const deliverable = "(last_error IS NULL OR last_error <> 'TargetNotExported')";
    const r = d.ctx.db
      .prepare<[], { n: number; oldest: string | null; attempts: number | null }>(
        `SELECT count(*) AS n, min(queued_at) AS oldest, max(attempts) AS attempts FROM phs_outbox WHERE ${deliverable}`,
      )
      .get() ?? { n: 0, oldest: null, attempts: null };
    if (r.n === 0 || !r.oldest) return [{ check, status: 'ok', message: 'password outbox: nothing waiting for delivery' }];
    const oldestRow = d.ctx.db.prepare<[], { last_error: string | null }>(`SELECT last_error FROM phs_outbox WHERE ${deliverable} ORDER BY queued_at LIMIT 1`).get();
    const ago = d.now - Date.parse(r.oldest);
    const what = `${r.n} password change(s) waiting; the oldest queued at ${r.oldest} (${age(ago)} ago)`;
    if (ago <= OUTBOX_WARN_MS) return [{ check, status: 'ok', message: `password outbox: ${what}; delivery in progress` }];
    const lastError = oldestRow?.last_error ? redactString(oldestRow.last_error) : undefined;
    return [{
      check,
      status: ago > OUTBOX_ERROR_MS ? 'error' : 'warning',
      message: `password outbox backlog: ${what}`,
      cause: `${lastError ? `the last delivery attempt failed with ${lastError}` : 'no delivery attempt failed yet'}${r.attempts ? ` (${r.attempts} attempt(s))` : ''}; ${d.serviceRunning ? 'the service retries with backoff' : 'the sync service is not running'}`,
      fix: !d.serviceRunning ? 'idsync service start' : lastError?.includes('AUTH') ? 'idsync credentials set cloud' : 'idsync passwords status',
    }];
  },
};
