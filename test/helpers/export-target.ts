/**
 * For the export's tests: a source of n people as LDIF, and the real SCIM target with some of its
 * calls wrapped (to count what is in flight, or to inject a fault the real cloud cannot give on
 * demand); every other call passes straight through.
 */
import type { ScimTarget } from '../../src/connectors/cloud/target.js';
import type { TargetConnector } from '../../src/connectors/types.js';

/** `version: 1` LDIF of n inetOrgPerson entries under ou=eng,dc=example,dc=test, entryUUIDs numbered from 0. */
export function peopleLdif(n: number): string {
  const entries = Array.from({ length: n }, (_, i) =>
    [`dn: uid=p${i},ou=eng,dc=example,dc=test`, 'objectClass: inetOrgPerson', `uid: p${i}`, `cn: P ${i}`, `sn: P${i}`, `mail: p${i}@example.test`, `entryUUID: 00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, ''].join('\n'),
  );
  return `version: 1\n\n${entries.join('\n')}`;
}

/** The real SCIM target, with the calls in `over` in place of its own. */
export function scimTargetWith(scim: ScimTarget, over: Partial<Omit<TargetConnector, 'name'>>): TargetConnector {
  return {
    name: scim.name,
    writeBatch: over.writeBatch ?? ((writes) => scim.writeBatch(writes)),
    write: over.write ?? ((w) => scim.write(w)),
    remove: over.remove ?? ((t, id, how) => scim.remove(t, id, how)),
    find: over.find ?? ((t, a, v) => scim.find(t, a, v)),
  };
}
