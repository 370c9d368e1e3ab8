/**
 * The engine's fast paths for DNs give exactly what the general code gives, on random DNs
 * (fast-check; IDSYNC_FC_SEED replays one run): safeNormalizeDn skips the RFC 4514 parser for
 * plain ASCII DNs, domainFromDn splits on commas without its look-ahead when there is no
 * backslash. Inputs mix plain DNs (the fast path) with every character that changes the normal
 * form (spaces, case, escapes, quotes, '+', '#', controls, non-ASCII, OIDs), near misses of the
 * fast path's pattern.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { safeNormalizeDn } from '../../src/engine/staging.js';
import { domainFromDn } from '../../src/engine/flows.js';
import { normalizeDn, type DnUnicode } from '../../src/ldap/dn.js';

const params = { numRuns: 3000, ...(process.env.IDSYNC_FC_SEED ? { seed: Number(process.env.IDSYNC_FC_SEED) } : {}) };

/** What safeNormalizeDn returned before its fast path. */
function general(dn: string, unicode: DnUnicode): string {
  try {
    return normalizeDn(dn, unicode);
  } catch {
    return dn.toLowerCase();
  }
}

/** What domainFromDn returned before its fast path. */
function generalDomain(dn: string): string | null {
  const parts = dn
    .split(/,(?=(?:[^\\]|\\.)*$)/)
    .map((p) => p.trim())
    .filter((p) => /^dc=/i.test(p))
    .map((p) => p.slice(3));
  return parts.length ? parts.join('.').toLowerCase() : null;
}

const plainChar = fc.constantFrom('a', 'Z', '0', '9', '.', '_', '@', '-', 'q');
const oddChar = fc.constantFrom(' ', ',', '+', '"', '\\', '<', '>', ';', '=', '#', '\u0000', '\t', 'é', 'E\u0301', 'ﬁ', '😀', 'İ', '\u212a');
const typeText = fc.oneof(fc.constantFrom('cn', 'CN', 'uid', 'dc', 'DC', 'ou', 'oid.2.5.4.3', '2.5.4.3', 'x-y', 'oid'), fc.stringMatching(/^[A-Za-z0-9.-]{0,6}$/));
const valueText = fc.oneof(fc.string({ unit: plainChar, maxLength: 12 }), fc.string({ unit: fc.oneof(plainChar, oddChar), maxLength: 12 }), fc.string({ maxLength: 8 }));
const rdnText = fc.tuple(typeText, fc.constantFrom('=', '=', '=', ' = ', '=#'), valueText).map(([t, eq, v]) => `${t}${eq}${v}`);
const dnText = fc.tuple(fc.array(rdnText, { minLength: 0, maxLength: 6 }), fc.constantFrom(',', ',', ', ', ';', '+')).map(([rdns, sep]) => rdns.join(sep));

test('safeNormalizeDn: the plain-DN fast path gives the normal form of the RFC 4514 parser', () => {
  fc.assert(
    fc.property(dnText, fc.constantFrom<DnUnicode>('nfc', 'exact'), (dn, unicode) => {
      assert.equal(safeNormalizeDn(dn, unicode), general(dn, unicode), dn);
    }),
    params,
  );
  // The fast path is taken by the DNs a directory is full of (and they come out lower-cased).
  assert.equal(safeNormalizeDn('uid=U1,ou=People,dc=lab,dc=test'), 'uid=u1,ou=people,dc=lab,dc=test');
});

test('domainFromDn: splitting without the look-ahead gives the same domain', () => {
  fc.assert(
    fc.property(dnText, (dn) => {
      assert.equal(domainFromDn(dn), generalDomain(dn), dn);
    }),
    params,
  );
  assert.equal(domainFromDn('CN=a,OU=x,DC=Corp,DC=Example,DC=com'), 'corp.example.com');
});
