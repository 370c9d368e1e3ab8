/** The last sync cycle (run history): failed, completed with errors, none yet, or too old. */
import { lastFinishedRun } from '../../status/index.js';
import { EVENTS } from '../../events/catalog.js';
import type { DoctorCheck, Finding } from '../types.js';
import { age } from '../format.js';

export const cycleCheck: DoctorCheck = {
  name: 'last-cycle',
  async run(d): Promise<Finding[]> {
    const run = lastFinishedRun(d.ctx.db, 3);
    const check = 'last-cycle';
    if (!run) {
      return [{ check, status: 'warning', message: 'no sync cycle has run yet', cause: 'Nothing has been imported or exported.', fix: d.serviceRunning ? 'idsync runs   (the service runs one at start; wait for it)' : 'idsync sync   (or start the service: idsync service start)' }];
    }
    const ended = run.endedAt ?? run.startedAt;
    const ago = d.now - Date.parse(ended);
    const what = `run ${run.id} (${run.profile}) ${run.status}, ended ${ended} (${age(ago)} ago)`;
    if (run.status === 'failed') {
      return [{ check, status: 'error', eventId: EVENTS.SYNC_CYCLE_FAILED.id, message: `the last sync cycle failed: ${what}`, cause: run.error ? `${run.error.code}: ${run.error.message}` : 'see the run', fix: `idsync runs ${run.id}${run.error?.hint ? `   — ${run.error.hint}` : ''}` }];
    }
    if (run.status === 'completed-with-errors') {
      const first = run.errors[0];
      return [{ check, status: 'warning', eventId: EVENTS.SYNC_CYCLE_COMPLETED_WITH_ERRORS.id, message: `the last sync cycle completed with ${run.errorCount} error(s): ${what}`, ...(first ? { cause: `${first.connector} ${first.step}: ${first.code}: ${first.message}` } : {}), fix: `idsync runs ${run.id}` }];
    }
    if (run.status === 'interrupted') {
      return [{ check, status: 'warning', message: `the last sync cycle was interrupted: ${what}`, cause: 'The process running it stopped before it finished; nothing is lost, the next cycle finishes the work.', fix: 'idsync sync' }];
    }
    if (ago > 3 * d.intervalMs) {
      return [{
        check,
        status: 'warning',
        message: `the last sync cycle is older than 3 × the interval (${age(d.intervalMs)}): ${what}`,
        cause: d.serviceRunning ? 'The service runs but no cycle finished recently (a very long cycle, or cycles skipped because another process holds the run).' : 'The sync service is not running.',
        fix: d.serviceRunning ? 'idsync service status' : 'idsync service start   (or systemctl start idsync)',
      }];
    }
    return [{ check, status: 'ok', message: `last sync cycle: ${what}` }];
  },
};
