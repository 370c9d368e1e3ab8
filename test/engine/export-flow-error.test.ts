/**
 * An exported object whose outbound flow then fails (a user who lost the mail that names it in the
 * cloud, an outbound rule that throws) keeps what the engine knows of its cloud object: its cloud
 * id. Deleted in the source afterwards, it is deleted in the cloud like any other user. (The export
 * used to record the error with no cloud id, and the deletion then found nothing to delete: the
 * user stayed active in the cloud, able to sign in.) Real parts: the LDIF source, the engine's
 * SQLite, the cloud directory over HTTP; production deletion settings.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { runCycle } from '../../src/engine/cycle.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';

const BASE = 'dc=example,dc=test';
/** A person; `named: false` has neither mail nor uid, so nothing names it in the cloud (its export fails). */
const person = (uid: string, n: number, named = true): string =>
  [
    named ? `dn: uid=${uid},ou=eng,${BASE}` : `dn: cn=${uid},ou=eng,${BASE}`,
    'objectClass: inetOrgPerson',
    ...(named ? [`uid: ${uid}`, `mail: ${uid}@example.test`] : []),
    `cn: ${uid}`,
    `sn: ${uid}`,
    `entryUUID: 00000000-0000-4000-8000-00000000000${n}`,
    '',
  ].join('\n');
const ldif = (...entries: string[]): string => `version: 1\n\n${entries.join('\n')}`;

let lab: EngineLab;
before(async () => {
  lab = await startEngineLab({ connectors: [ldifConnector()], files: { 'source.ldif': ldif(person('keep', 1), person('lost', 2), person('control', 3)) } });
});
after(() => lab?.close());

test('a user whose export failed after it reached the cloud is still deleted there when it leaves the source', async () => {
  const first = await runCycle(lab.ctx);
  assert.equal(first.status, 'success', JSON.stringify(first.errors));
  const inCloud = async () => new Map((await lab.cloud.all('Users')).map((u) => [String(u.externalId), u]));
  const before = await inCloud();
  assert.equal(before.size, 3);

  // `lost` loses its mail and uid: nothing names it in the cloud any more, so its export fails.
  lab.writeFile('source.ldif', ldif(person('keep', 1), person('lost', 2, false), person('control', 3)));
  const failed = await runCycle(lab.ctx);
  assert.ok(failed.errors.some((e) => /userPrincipalName/.test(e.message)), JSON.stringify(failed.errors));

  // Both `lost` and `control` leave the source: each is deleted in the cloud the same way. Two of
  // three is over the production deletion threshold, which holds the export back and counts both
  // (on the old code only `control`: `lost` had no cloud id left); the admin then allows them.
  lab.writeFile('source.ldif', ldif(person('keep', 1)));
  const held = await runCycle(lab.ctx);
  assert.match(held.errors.map((e) => e.message).join('\n'), /would delete 2 objects/);
  const deleted = await runCycle(lab.ctx, { allowDeletes: true });
  assert.deepEqual(deleted.errors, []);
  const after = await inCloud();
  const lost = after.get('00000000-0000-4000-8000-000000000002');
  const control = after.get('00000000-0000-4000-8000-000000000003');
  assert.equal(control === undefined || control.active === false, true, 'the control user is deleted or disabled');
  assert.deepEqual(lost === undefined ? undefined : lost.active, control === undefined ? undefined : control.active, 'the user whose export had failed is deleted like the control user');
  assert.equal(after.get('00000000-0000-4000-8000-000000000001')?.active, true);
});
