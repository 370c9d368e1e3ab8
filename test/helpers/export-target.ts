/**
 * For the export's tests: a source of n people as LDIF, the lab's source staged for an export run
 * by hand, and the real SCIM target with some of its calls wrapped (to count what is in flight, or
 * to inject a fault the real cloud cannot give on demand); every other call passes straight through.
 */
import assert from 'node:assert/strict';
import type { CloudClient } from '../../src/connectors/cloud/client.js';
import { ScimTarget } from '../../src/connectors/cloud/target.js';
import { createCloudClient } from '../../src/connectors/registry.js';
import type { TargetConnector } from '../../src/connectors/types.js';
import { runCycle } from '../../src/engine/cycle.js';
import type { Database } from '../../src/store/database.js';
import type { EngineLab } from './engine-lab.js';

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

/**
 * The lab's source imported and synced with nothing exported (a preview), and the real SCIM target
 * of its cloud: the test runs the export by hand, then closes `cloudClient`.
 */
export async function stagedForExport(lab: EngineLab): Promise<{ db: Database; cloudClient: CloudClient; scim: ScimTarget }> {
  const staged = await runCycle(lab.ctx, { preview: true });
  assert.equal(staged.status, 'success', JSON.stringify(staged.errors));
  const cloudClient = createCloudClient(lab.loaded, lab.ctx.credentials);
  return { db: lab.ctx.db, cloudClient, scim: new ScimTarget(cloudClient) };
}
