import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { containersToReread } from '../../src/ldap/directory-connector.js';
import { parseExtendedDn } from '../../src/ldap/controls.js';
import { guidFromString } from '../../src/ldap/guid.js';

describe('parseExtendedDn (AD extended DN control)', () => {
  it('splits <GUID=...>;<SID=...>; from the DN', () => {
    assert.deepEqual(parseExtendedDn('<GUID=DF31F933-6a3a-4a08-8634-97dbec5aaeaf>;<SID=S-1-5-21-1-2-3-1102>;CN=Zo\u00eb,OU=probe,DC=lab,DC=test'), {
      dn: 'CN=Zo\u00eb,OU=probe,DC=lab,DC=test',
      guid: 'df31f933-6a3a-4a08-8634-97dbec5aaeaf',
    });
  });
  it('reads the hex form (the control without a value) as the same GUID', () => {
    const hex = guidFromString('df31f933-6a3a-4a08-8634-97dbec5aaeaf').toString('hex');
    assert.equal(parseExtendedDn(`<GUID=${hex}>;CN=x,DC=lab,DC=test`).guid, 'df31f933-6a3a-4a08-8634-97dbec5aaeaf');
  });
  it('leaves a plain DN as it is (a server without the control)', () => {
    assert.deepEqual(parseExtendedDn('CN=a\\<b,DC=lab,DC=test'), { dn: 'CN=a\\<b,DC=lab,DC=test' });
  });
});

describe('containersToReread', () => {
  it('keeps the outermost changed containers and never the naming context', () => {
    assert.deepEqual(
      containersToReread(['OU=b,OU=a,DC=lab,DC=test', 'ou=A,dc=lab,dc=test', 'OU=c,DC=lab,DC=test', 'DC=lab,DC=test', 'OU=c,DC=lab,DC=test'], 'dc=lab,dc=test'),
      ['ou=A,dc=lab,dc=test', 'OU=c,DC=lab,DC=test'],
    );
  });
});
