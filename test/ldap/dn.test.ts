import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isIdsyncError } from '../../src/core/errors.js';
import { escapeDnValue, escapeFilterValue, formatDn, isDnUnder, isNormalizedDnUnder, normalizeDn, parentDn, parseDn, rdnValue } from '../../src/ldap/dn.js';
import { guidFromString, guidToImmutableId, guidToString, sidFromString, sidToString } from '../../src/ldap/guid.js';

describe('parseDn', () => {
  it('splits RDNs and AVAs and resolves escapes and hex pairs', () => {
    const rdns = parseDn('cn=Smith\\, John+uid=js\\2b1,ou=Peo\\C3\\A9ple,dc=lab,dc=test');
    assert.equal(rdns.length, 4);
    assert.deepEqual(rdns[0], [
      { type: 'cn', value: 'Smith, John' },
      { type: 'uid', value: 'js+1' },
    ]);
    assert.equal(rdns[1]?.[0]?.value, 'Peoéple');
  });

  it('ignores spaces around separators and unescaped trailing spaces but keeps escaped ones', () => {
    assert.deepEqual(parseDn(' CN = Alice ,  OU=People '), [[{ type: 'CN', value: 'Alice' }], [{ type: 'OU', value: 'People' }]]);
    assert.equal(parseDn('cn=a\\ ,dc=x')[0]?.[0]?.value, 'a ');
    assert.equal(parseDn('cn=\\ a,dc=x')[0]?.[0]?.value, ' a');
  });

  it('accepts #hex BER values, OIDs and the oid. prefix', () => {
    assert.deepEqual(parseDn('1.3.6.1.4.1.1466.0=#04024869,dc=x')[0], [{ type: '1.3.6.1.4.1.1466.0', value: '04024869', ber: true }]);
    assert.equal(parseDn('OID.2.5.4.3=x')[0]?.[0]?.type, '2.5.4.3');
  });

  it('returns [] for the root DN', () => {
    assert.deepEqual(parseDn(''), []);
  });

  const hostile: Array<[string, string]> = [
    ['cn', 'missing ='],
    ['=x,dc=a', 'empty type'],
    ['cn=a,', 'trailing separator'],
    ['cn=a\\', 'dangling backslash'],
    ['cn=a\\zz', 'bad escape'],
    ['cn=a"b', 'unescaped quote'],
    ['cn=a<b', 'unescaped <'],
    ['c n=a', 'bad type'],
    ['cn=#abc', 'odd hex'],
    ['cn=\\ff\\fe', 'invalid UTF-8'],
    ['cn=a\0b', 'NUL'],
    ['cn=a,,dc=b', 'empty RDN'],
    ['x'.repeat(20000), 'too long'],
    [Array.from({ length: 300 }, () => 'dc=a').join(','), 'too many RDNs'],
  ];
  for (const [dn, what] of hostile) {
    it(`rejects hostile input with LDAP_INVALID_DN: ${what}`, () => {
      assert.throws(() => parseDn(dn), (err: unknown) => isIdsyncError(err, 'LDAP_INVALID_DN'));
    });
  }
});

describe('normalizeDn', () => {
  it('gives the same form for equivalent spellings', () => {
    const forms = [
      'CN=Alice  Smith,OU=People,DC=Lab,DC=Test',
      'cn=alice smith, ou=people, dc=lab, dc=test',
      'cn=\\41lice Smith,ou=PEOPLE,dc=lab,dc=test',
      'cn = Alice Smith ;ou=People;dc=lab;dc=test',
    ];
    const n = forms.map((d) => normalizeDn(d));
    for (const f of n) assert.equal(f, 'cn=alice smith,ou=people,dc=lab,dc=test');
  });

  it('sorts multi-valued RDNs and escapes canonically', () => {
    assert.equal(normalizeDn('UID=x+CN=Smith\\2C John,dc=t'), 'cn=smith\\, john+uid=x,dc=t');
    assert.equal(normalizeDn('cn=\\#1 a\\ ,dc=t'), 'cn=\\#1 a,dc=t'); // trailing spaces are insignificant
    assert.equal(normalizeDn('cn=a=b,dc=t'), 'cn=a\\=b,dc=t'); // "=" need not be escaped (RFC 4514)
  });

  it('distinguishes an escaped comma from a separator', () => {
    assert.notEqual(normalizeDn('cn=a\\,dc=b,dc=c'), normalizeDn('cn=a,dc=b,dc=c'));
  });

  it('round-trips through formatDn and escapeDnValue', () => {
    const dn = formatDn([[{ type: 'cn', value: ' #a,b+c="d"<e>;f\\ ' }], [{ type: 'dc', value: 'x' }]]);
    assert.equal(parseDn(dn)[0]?.[0]?.value, ' #a,b+c="d"<e>;f\\ ');
    assert.equal(escapeDnValue('a,b'), 'a\\,b');
  });
});

describe('isDnUnder / parentDn', () => {
  it('compares by RDN, not by string suffix', () => {
    assert.equal(isDnUnder('CN=Bob,OU=Sales,DC=lab,DC=test', 'ou=sales, dc=LAB,dc=test'), true);
    assert.equal(isDnUnder('ou=sales,dc=lab,dc=test', 'ou=sales,dc=lab,dc=test'), true);
    assert.equal(isDnUnder('cn=Bob,ou=Presales,dc=lab,dc=test', 'ou=sales,dc=lab,dc=test'), false);
    assert.equal(isDnUnder('cn=x\\,ou=sales,dc=lab,dc=test', 'ou=sales,dc=lab,dc=test'), false);
    assert.equal(isDnUnder('dc=test', 'dc=lab,dc=test'), false);
  });

  it('isNormalizedDnUnder agrees with isDnUnder on escaped commas', () => {
    const base = normalizeDn('dc=b,dc=c');
    assert.equal(isNormalizedDnUnder(normalizeDn('cn=a\\,dc=b,dc=c'), base), false);
    assert.equal(isNormalizedDnUnder(normalizeDn('cn=a\\\\,dc=b,dc=c'), base), true);
    assert.equal(isNormalizedDnUnder(normalizeDn('cn=a,dc=b,dc=c'), ''), true);
  });

  it('parentDn drops the first RDN; rdnValue reads it', () => {
    assert.equal(parentDn('cn=a\\,b,ou=x,dc=t'), 'ou=x,dc=t');
    assert.equal(parentDn('dc=t'), '');
    assert.equal(rdnValue('CN=Smith\\, John,dc=t'), 'Smith, John');
  });
});

describe('escapeFilterValue', () => {
  it('escapes the RFC 4515 specials', () => {
    assert.equal(escapeFilterValue('a*b(c)d\\e\0'), 'a\\2ab\\28c\\29d\\5ce\\00');
    assert.equal(escapeFilterValue('plain é'), 'plain é');
  });
  it('hex-escapes a Buffer', () => {
    assert.equal(escapeFilterValue(Buffer.from([0x01, 0xab])), '\\01\\ab');
  });
});

describe('GUID and SID', () => {
  const bytes = Buffer.from('4d3c1b2a6f5e8079a1b2c3d4e5f60718', 'hex');
  it('converts objectGUID bytes to the mixed-endian string and back', () => {
    assert.equal(guidToString(bytes), '2a1b3c4d-5e6f-7980-a1b2-c3d4e5f60718');
    assert.deepEqual(guidFromString('{2A1B3C4D-5E6F-7980-A1B2-C3D4E5F60718}'), bytes);
    assert.equal(guidToImmutableId(bytes), bytes.toString('base64'));
  });
  it('converts objectSid both ways', () => {
    const sid = 'S-1-5-21-3623811015-3361044348-30300820-1013';
    assert.equal(sidToString(sidFromString(sid)), sid);
    assert.equal(sidFromString(sid).length, 8 + 5 * 4);
    assert.throws(() => sidToString(Buffer.from([1, 5, 0])), (e: unknown) => isIdsyncError(e, 'OBJECT_INVALID'));
  });
});

describe('normalizeDn: Unicode the way each directory compares it (issue 10)', () => {
  const pre = 'CN=Zo\u00eb,OU=Staff,DC=lab,DC=test';
  const comb = 'CN=Zoe\u0308,OU=Staff,DC=lab,DC=test';
  it('AD (exact): the precomposed and the combining spelling are two DNs, case still folds', () => {
    assert.notEqual(normalizeDn(pre, 'exact'), normalizeDn(comb, 'exact'));
    assert.equal(normalizeDn(pre, 'exact'), normalizeDn('cn=ZO\u00cb,ou=staff,dc=LAB,dc=test', 'exact'));
    assert.equal(normalizeDn(comb, 'exact'), normalizeDn('cn=zoe\u0308,ou=staff,dc=lab,dc=test', 'exact'));
  });
  it('OpenLDAP (nfc, the default): one DN, as slapd refuses the second spelling as "already exists"', () => {
    assert.equal(normalizeDn(pre), normalizeDn(comb));
    assert.equal(normalizeDn(pre, 'nfc'), normalizeDn(comb, 'nfc'));
  });
});
