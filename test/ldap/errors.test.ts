/**
 * The LDAP client's failures are classes with typed fields (src/ldap/errors.ts): callers switch on
 * the class and read `reason` instead of comparing result codes or matching message text. Against a
 * real slapd; AD's sub-codes of a refused bind (which only Active Directory sends, in the diagnostic
 * text) are checked on the error ldapts itself builds from such an answer.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { InvalidCredentialsError, StrongAuthRequiredError } from 'ldapts';
import { isIdsyncError } from '../../src/core/errors.js';
import { connectLdap, mapLdapError } from '../../src/ldap/client.js';
import { LdapBindError, LdapSearchError, LdapUnreachableError } from '../../src/ldap/errors.js';
import { readBase } from '../../src/ldap/search.js';
import { skipUnless } from '../helpers/integration.js';
import { freePort, startSlapd, type Slapd } from '../helpers/slapd.js';

describe('LDAP errors as classes, against a real slapd', { skip: skipUnless('slapd') }, () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd();
  });
  after(async () => {
    await slapd?.stop();
  });

  it('a wrong password is an LdapBindError: invalid-credentials, wrongCredentials, code kept', async () => {
    await assert.rejects(connectLdap({ url: slapd.url, bindDn: slapd.adminDn, connectorName: 'lab' }, async () => 'Wrong-Password-1'), (e: unknown) => {
      assert.ok(e instanceof LdapBindError, String(e));
      assert.ok(isIdsyncError(e, 'LDAP_BIND_FAILED'));
      assert.equal(e.reason, 'invalid-credentials');
      assert.equal(e.wrongCredentials, true);
      assert.equal(e.bindDn, slapd.adminDn);
      assert.equal(e.adSubCode, undefined); // OpenLDAP sends no AD sub-code
      assert.ok(!e.message.includes('Wrong-Password-1'));
      return true;
    });
  });

  it('an empty password is refused before the bind: empty-password, not a wrong password', async () => {
    await assert.rejects(connectLdap({ url: slapd.url, bindDn: slapd.adminDn }, async () => ''), (e: unknown) => {
      assert.ok(e instanceof LdapBindError, String(e));
      assert.equal(e.reason, 'empty-password');
      assert.equal(e.wrongCredentials, false);
      return true;
    });
  });

  it('a search under a base that does not exist is an LdapSearchError: no-such-object', async () => {
    const conn = await connectLdap({ url: slapd.url, bindDn: slapd.adminDn }, async () => slapd.adminPassword);
    try {
      const base = `ou=missing,${slapd.baseDn}`;
      await assert.rejects(readBase(conn.client, base, slapd.url, 'lab'), (e: unknown) => {
        assert.ok(e instanceof LdapSearchError, String(e));
        assert.ok(isIdsyncError(e, 'LDAP_SEARCH_FAILED'));
        assert.equal(e.reason, 'no-such-object');
        assert.equal(e.base, base);
        return true;
      });
    } finally {
      await conn.close();
    }
  });

  it('a port where nothing listens is an LdapUnreachableError with its URL', async () => {
    const url = `ldap://127.0.0.1:${await freePort()}`;
    await assert.rejects(connectLdap({ url, bindDn: slapd.adminDn, timeoutMs: 5000 }, async () => 'x'), (e: unknown) => {
      assert.ok(e instanceof LdapUnreachableError, String(e));
      assert.ok(isIdsyncError(e, 'LDAP_UNREACHABLE'));
      assert.equal(e.url, url);
      return true;
    });
  });
});

describe('LDAP bind refusals by Active Directory sub-code', () => {
  const ctx = { url: 'ldaps://dc1.lab.test', bindDn: 'svc@lab.test', phase: 'bind' as const, connectorName: 'corp' };
  const adAnswer = (data: string) => new InvalidCredentialsError(`80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data ${data}, v3839`);

  const cases: Array<[string, LdapBindError['reason'], boolean, string]> = [
    ['52e', 'invalid-credentials', true, 'invalid credentials'],
    ['525', 'user-not-found', true, 'user not found'],
    ['533', 'account-disabled', false, 'account disabled'],
    ['775', 'account-locked', false, 'account locked out'],
    ['532', 'password-expired', false, 'password expired'],
  ];
  for (const [data, reason, wrong, words] of cases) {
    it(`data ${data} -> ${reason}`, () => {
      const e = mapLdapError(adAnswer(data), ctx);
      assert.ok(e instanceof LdapBindError, String(e));
      assert.equal(e.reason, reason);
      assert.equal(e.adSubCode, data);
      assert.equal(e.wrongCredentials, wrong);
      assert.equal(e.message, `connector "corp": the directory refused the bind for svc@lab.test: ${words}`);
    });
  }

  it('strongAuthRequired (8) -> encryption-required', () => {
    const e = mapLdapError(new StrongAuthRequiredError('requires a secure connection'), ctx);
    assert.ok(e instanceof LdapBindError, String(e));
    assert.equal(e.reason, 'encryption-required');
  });
});
