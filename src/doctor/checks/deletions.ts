/**
 * Deletions a delta cannot see: an OpenLDAP connector without the accesslog (`delta.accesslogBase`)
 * learns of deleted entries only at its scheduled full import (`delta.fullImportInterval`, default
 * daily), so a deleted user stays in the cloud (and can sign in) until then. A warning that says
 * when the next one is due, and how to see deletions at every cycle.
 */
import { DEFAULT_FULL_IMPORT_INTERVAL } from '../../connectors/ldap/delta.js';
import { EngineState, lastFullImportKey } from '../../engine/import.js';
import { EVENTS } from '../../events/catalog.js';
import type { DoctorCheck, Finding } from '../types.js';

export const deletionsCheck: DoctorCheck = {
  name: 'deletions',
  async run(d): Promise<Finding[]> {
    const state = new EngineState(d.ctx.db);
    const out: Finding[] = [];
    for (const c of d.loaded.config.connectors) {
      if (c.type !== 'ldap') continue;
      if (c.delta?.accesslogBase) {
        out.push({ check: 'deletions', target: c.name, status: 'ok', message: `a delta import sees deletions (accesslog ${c.delta.accesslogBase})` });
        continue;
      }
      const every = c.delta?.fullImportInterval ?? DEFAULT_FULL_IMPORT_INTERVAL;
      const last = state.get(lastFullImportKey(c.name));
      out.push({
        check: 'deletions',
        target: c.name,
        status: 'warning',
        eventId: EVENTS.SCHEDULED_FULL_IMPORT.id,
        message: `deletions in ${c.name} reach the cloud only at its scheduled full import (every ${every}; last: ${last ?? 'none yet'})`,
        cause: 'Without the accesslog overlay an OpenLDAP delta import cannot see deleted entries: a deleted user stays in the cloud, and can sign in, until the next full import.',
        fix: 'Enable the accesslog overlay on the server and set `delta.accesslogBase` on the connector (docs/delta-import.md), or shorten `delta.fullImportInterval`.',
      });
    }
    return out;
  },
};
