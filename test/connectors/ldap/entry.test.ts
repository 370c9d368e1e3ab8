/**
 * ldapEntryToObject's lean mapping (no copy of a list of strings, the staged key of each attribute
 * spelling remembered) gives exactly what the first implementation gave, on random ldapts entries
 * (fast-check; IDSYNC_FC_SEED replays one run): attribute spellings in any case, with options,
 * secret attributes (NT hashes kept under their bare type, the rest dropped), single values,
 * lists, empty lists, Buffers, uniqueMember values with their optional UID.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Entry } from 'ldapts';
import { ldapEntryToObject, stripUniqueMemberUid } from '../../../src/connectors/ldap/entry.js';
import { attributeType, isSecretAttribute, NT_HASH_ATTRIBUTE_TYPES } from '../../../src/core/secret-attributes.js';
import { valuesOf } from '../../../src/ldap/search.js';

const params = { numRuns: 2000, ...(process.env.IDSYNC_FC_SEED ? { seed: Number(process.env.IDSYNC_FC_SEED) } : {}) };

/** The mapping as it was first written (without the anchor check, which both share). */
function reference(entry: Entry): Record<string, string[]> {
  const attributes: Record<string, string[]> = {};
  for (const [key, raw] of Object.entries(entry)) {
    if (key === 'dn') continue;
    const values = valuesOf(raw);
    if (!values.length) continue;
    let k = key.toLowerCase();
    if (isSecretAttribute(k)) {
      if (!NT_HASH_ATTRIBUTE_TYPES.includes(attributeType(k))) continue;
      k = attributeType(k);
    }
    attributes[k] = k === 'uniquemember' ? values.map(stripUniqueMemberUid) : values;
  }
  return attributes;
}

const name = fc.oneof(
  fc.constantFrom('cn', 'CN', 'mail', 'Mail', 'uniqueMember', 'uniquemember', 'member', 'title;lang-en', 'userPassword', 'sambaNTPassword', 'sambaNTPassword;x-opt', 'SAMBANTPASSWORD', 'unicodePwd;binary', 'sambaLMPassword', 'objectClass'),
  fc.stringMatching(/^[A-Za-z][A-Za-z0-9;-]{0,10}$/),
);
const text = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("cn=a,dc=x#'0101'B", "cn=a\\#'01'B", ''));
const value = fc.oneof(
  text,
  fc.array(text, { maxLength: 4 }),
  fc.uint8Array({ maxLength: 6 }).map((b) => Buffer.from(b)),
  fc.array(fc.uint8Array({ maxLength: 6 }).map((b) => Buffer.from(b)), { maxLength: 3 }),
);
const entry = fc.dictionary(name, value, { maxKeys: 10 }).map((attrs) => ({ ...attrs, dn: 'uid=a,dc=x', entryUUID: 'u-1' }) as Entry);

test('ldapEntryToObject maps every entry as the first implementation did', () => {
  fc.assert(
    fc.property(entry, (e) => {
      const expected = reference(e);
      assert.deepEqual(ldapEntryToObject(e, 'user', 'c').attributes, expected);
    }),
    params,
  );
});
