/**
 * Connector state the configuration no longer names: objects (a connector space) or password rows
 * kept under a source connector's name that idsync.yaml does not list — it was renamed or removed
 * there. While objects remain, every sync cycle is refused (CONNECTOR_NOT_CONFIGURED, event 6580);
 * the fix is `idsync connectors rename OLD NEW` or `idsync connectors forget OLD`
 * (engine/connector-identity.ts, which answers the question for the cycle too).
 */
import { unconfiguredFix, unconfiguredStoredConnectors } from '../../engine/connector-identity.js';
import { EVENTS } from '../../events/catalog.js';
import type { DoctorCheck, Finding } from '../types.js';

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

export const connectorSpacesCheck: DoctorCheck = {
  name: 'connector-spaces',
  async run(d): Promise<Finding[]> {
    const check = 'connector-spaces';
    const { connectors, inStore } = unconfiguredStoredConnectors(d.ctx);
    if (connectors.length === 0) {
      const names = d.loaded.config.connectors.map((c) => c.name);
      return [{ check, status: 'ok', message: `the store holds no connector the configuration does not name (${names.length ? `configured: ${names.join(', ')}` : 'none configured'})` }];
    }
    return connectors.map((c): Finding => {
      const fix = unconfiguredFix(d.ctx, c.name, inStore);
      const held = [plural(c.objects, 'object'), ...(c.passwordState > 0 ? [`the password state of ${plural(c.passwordState, 'user')}`] : [])];
      return {
        check,
        target: c.name,
        status: 'error',
        eventId: EVENTS.CONNECTOR_NOT_CONFIGURED.id,
        message: `the store holds ${held.join(' and ')} of source connector "${c.name}", which ${d.loaded.file} does not name`,
        cause:
          c.objects > 0
            ? 'The connector was renamed or removed in the configuration: every sync cycle is refused (CONNECTOR_NOT_CONFIGURED, event 6580) until the store is told which.'
            : 'The connector was renamed or removed in the configuration: its password state (the fingerprints that keep unchanged passwords from being sent again) is kept under the old name.',
        fix: `if you renamed it: ${fix.rename}   — if you removed it on purpose: ${fix.forget}`,
      };
    });
  },
};
