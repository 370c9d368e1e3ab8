/** `store:` in the configuration: SQLite by default; PostgreSQL with the password never in the YAML. */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { parseConfigText } from '../../src/config/load.js';
import { storeLocation } from '../../src/config/store.js';
import { isIdsyncError } from '../../src/core/errors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'idsync-store-config-'));
const base = 'connectors:\n  - { name: src, type: ldif, path: ./a.ldif }\ncloud: { url: "https://cloud.example", auth: { type: client_credentials, clientId: x } }\n';
const load = (extra: string) => parseConfigText(base + extra, path.join(dir, 'idsync.yaml'));

describe('config store:', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('SQLite in the data directory is the default', () => {
    const loaded = load('');
    assert.deepEqual(loaded.config.store, { type: 'sqlite' });
    assert.deepEqual(storeLocation(loaded), { type: 'sqlite', file: path.join(loaded.dataDir, 'idsync.db') });
  });

  test('PostgreSQL: the password from $IDSYNC_STORE_PASSWORD, TLS verified by default', () => {
    writeFileSync(path.join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\n');
    const loaded = load('store:\n  type: postgres\n  url: postgres://idsync@db.example:5432/idsync\n  tls: { caFile: ./ca.pem }\n');
    const where = storeLocation(loaded, { env: { IDSYNC_STORE_PASSWORD: 'pw-from-env' } });
    assert.equal(where.type, 'postgres');
    if (where.type !== 'postgres') return;
    assert.equal(where.password, 'pw-from-env');
    assert.equal(where.tls?.verify, true);
    assert.match(where.tls?.ca ?? '', /BEGIN CERTIFICATE/);
  });

  test('a password in store.url is refused, pointing at the line, without echoing it', () => {
    assert.throws(
      () => load('store:\n  type: postgres\n  url: postgres://idsync:Hunter2-secret@db.example/idsync\n'),
      (err: unknown) => isIdsyncError(err) && err.code === 'CONFIG_INVALID' && /without a password/.test(err.message) && !err.message.includes('Hunter2') && /idsync\.yaml:\d+/.test(err.message),
    );
  });

  test('passwordFile: the first line, and only from a file others cannot read', () => {
    const file = path.join(dir, 'store.password');
    writeFileSync(file, 'from-the-file\nignored\n', { mode: 0o600 });
    chmodSync(file, 0o600);
    const loaded = load('store:\n  type: postgres\n  url: postgres://idsync@db.example/idsync\n  passwordFile: ./store.password\n');
    const where = storeLocation(loaded, { env: { IDSYNC_STORE_PASSWORD: 'not-this-one' } });
    assert.equal(where.type === 'postgres' && where.password, 'from-the-file');
    chmodSync(file, 0o644);
    assert.throws(() => storeLocation(loaded), (err: unknown) => isIdsyncError(err) && /readable by other users/.test(err.message) && !err.message.includes('from-the-file'));
  });
});
