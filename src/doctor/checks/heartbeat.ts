/**
 * Password hash sync heartbeat: the last event 654 (or, failing that, the last batch end 651).
 * The incumbent's troubleshooter wants one within 3 hours.
 */
import { EVENTS } from '../../events/catalog.js';
import { knownPasswordCount } from '../../passwords/index.js';
import { passwordActivity } from '../../status/index.js';
import type { DoctorCheck, Finding } from '../types.js';
import { age } from '../format.js';

export const HEARTBEAT_WARN_MS = 3 * 3600 * 1000;

export const heartbeatCheck: DoctorCheck = {
  name: 'password-heartbeat',
  async run(d): Promise<Finding[]> {
    const check = 'password-heartbeat';
    // The status module's answer: the newer of the last heartbeat (654) and the last batch (651).
    const activity = passwordActivity(d.ctx.events);
    const last = activity.lastActivityAt ? { time: activity.lastActivityAt, id: activity.lastActivity === 'heartbeat' ? EVENTS.PHS_HEARTBEAT.id : EVENTS.PHS_BATCH_END.id } : undefined;
    if (!last) {
      const known = knownPasswordCount(d.ctx.db);
      if (known > 0) {
        return [{ check, status: 'warning', eventId: EVENTS.PHS_HEARTBEAT.id, message: `no password sync heartbeat (event ${EVENTS.PHS_HEARTBEAT.id}) was ever recorded, although ${known} user(s) have password hashes`, cause: 'Password hash sync is not running: the service is stopped, or its pipeline cannot reach the cloud.', fix: d.serviceRunning ? 'idsync events --id 655,652,115   (then fix the cause named there)' : 'idsync service start' }];
      }
      return [{ check, status: 'ok', message: 'password hash sync has not run yet (no password hashes known): no heartbeat expected' }];
    }
    const ago = d.now - Date.parse(last.time);
    const what = `last ${last.id === EVENTS.PHS_HEARTBEAT.id ? 'heartbeat (event 654)' : 'password batch (event 651)'} at ${last.time} (${age(ago)} ago)`;
    if (ago > HEARTBEAT_WARN_MS) {
      return [{
        check,
        status: 'warning',
        eventId: EVENTS.PHS_HEARTBEAT.id,
        message: `no password sync heartbeat within 3 hours: ${what}`,
        cause: d.serviceRunning ? 'The password pipeline runs but its pings fail (see events 655, 652, 115).' : 'The sync service is not running, so password hashes are not delivered.',
        fix: d.serviceRunning ? 'idsync events --id 655,652,115   (then e.g. idsync credentials set cloud)' : 'idsync service start',
      }];
    }
    return [{ check, status: 'ok', message: `password hash sync: ${what}` }];
  },
};
