/**
 * Password replication over MS-DRSR (`passwords: { source: drs }`): binds to the DC as the
 * connector's account and asks for one page with the secret attributes, which is exactly what
 * needs both replication rights. Run before the first sync, it names a missing right, a closed
 * RPC port or a refused password with the fix, the same way event 611 does.
 */
import { EVENTS } from '../../events/catalog.js';
import { toIdsyncError } from '../../core/errors.js';
import { probeDrsAccess } from '../../passwords/sources/drs.js';
import type { DoctorCheck, Finding } from '../types.js';

export const drsCheck: DoctorCheck = {
  name: 'password-replication',
  async run(d): Promise<Finding[]> {
    const check = 'password-replication';
    const out: Finding[] = [];
    for (const c of d.loaded.config.connectors) {
      if (c.type !== 'ad' || c.passwords?.source !== 'drs') continue;
      try {
        await probeDrsAccess({ ...c, passwords: c.passwords }, d.ctx.credentials.resolver(c.name));
        out.push({ check, target: c.name, status: 'ok', message: `${c.name}: the account may replicate password hashes (DS-Replication-Get-Changes and -Get-Changes-All)` });
      } catch (err) {
        const e = toIdsyncError(err);
        out.push({
          check,
          target: c.name,
          status: 'error',
          eventId: EVENTS.PHS_DOMAIN_ERROR.id,
          message: `${c.name}: password hash replication fails: ${e.message}`,
          cause: e.code,
          ...(e.hint ? { fix: e.hint } : {}),
        });
      }
    }
    return out;
  },
};
