/**
 * What the configuration refuses so that a secret cannot leak through it: a connector named like a
 * credential of idsync's own (its bind password would become that credential), and URLs that hold
 * a user name or password (they would show in every message about the URL: events, doctor, logs).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parseConfigText } from '../../src/config/load.js';
import { isIdsyncError } from '../../src/core/errors.js';

const file = path.join('/etc/idsync', 'idsync.yaml');
const cloud = 'cloud: { url: "https://cloud.example", auth: { type: client_credentials, clientId: x } }\n';
const ldap = (name: string, url = 'ldaps://dc.example.com') =>
  `connectors:\n  - name: ${name}\n    type: ldap\n    url: ${url}\n    bindDn: cn=idsync,dc=example,dc=com\n    baseDn: dc=example,dc=com\n`;
const refused = (text: string, message: RegExp, secret?: string) =>
  assert.throws(
    () => parseConfigText(text, file),
    (err: unknown) => isIdsyncError(err) && err.code === 'CONFIG_INVALID' && message.test(err.message) && /idsync\.yaml:\d+/.test(err.message) && (secret === undefined || !err.message.includes(secret)),
  );

describe('config: names and URLs that would expose a secret', () => {
  test('a connector cannot be named "agent" (the DC agent token) nor "cloud"', () => {
    refused(ldap('agent') + cloud, /"agent" is reserved for the DC agent's token/);
    refused(ldap('cloud') + cloud, /"cloud" is reserved for the cloud connector/);
    assert.equal(parseConfigText(ldap('corp') + cloud, file).config.connectors[0]!.name, 'corp');
  });

  test('a directory URL with a user name or password is refused, without echoing it', () => {
    refused(ldap('corp', 'ldap://idsync:Secr3tPw@dc.example.com') + cloud, /must not hold a user name or password/, 'Secr3tPw');
    refused(ldap('corp', 'ldaps://idsync@dc.example.com:636') + cloud, /must not hold a user name or password/);
  });

  test('a cloud URL with a user name or password is refused, without echoing it', () => {
    refused(ldap('corp') + 'cloud: { url: "https://svc:CloudSecr3t@cloud.example.com", auth: { type: client_credentials, clientId: x } }\n', /must not hold a user name or password/, 'CloudSecr3t');
  });

  test('sync.interval must be more than 0', () => {
    refused(ldap('corp') + cloud + 'sync: { interval: 0s }\n', /must be more than 0/);
    assert.equal(parseConfigText(ldap('corp') + cloud + 'sync: { interval: 30s }\n', file).config.sync.interval, '30s');
  });
});
