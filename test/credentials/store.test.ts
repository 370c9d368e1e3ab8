import { strict as assert } from 'node:assert';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { IdsyncError, isIdsyncError } from '../../src/core/errors.js';
import { generateKey, keyId, loadOrCreateKey, SECRET_KEY_ENV, SECRET_KEY_FILE } from '../../src/credentials/key.js';
import { CredentialStore, credentialMigrations, openCredentialStore } from '../../src/credentials/store.js';
import { openDatabase, type Database } from '../../src/store/database.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'idsync-cred-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const noEnv: NodeJS.ProcessEnv = {};
const OPENSSL_TEXT = /bad decrypt|unable to authenticate|unsupported state|error:[0-9a-f]{8}/i;

function memStore(key = generateKey()): { db: Database; store: CredentialStore } {
  const db = openDatabase(':memory:', credentialMigrations);
  return { db, store: new CredentialStore(db, key) };
}

describe('CredentialStore', () => {
  it('round-trips secrets, replaces them, deletes them', () => {
    const { store } = memStore();
    assert.equal(store.get('corp-ad'), undefined);
    store.set('corp-ad', 'first sécret ✓');
    assert.equal(store.get('corp-ad'), 'first sécret ✓');
    store.set('corp-ad', 'second');
    assert.equal(store.get('corp-ad'), 'second');
    store.set('cloud', 'cloud-secret');
    assert.deepEqual(store.list().map((c) => c.name), ['cloud', 'corp-ad']);
    assert.equal(store.delete('corp-ad'), true);
    assert.equal(store.delete('corp-ad'), false);
    assert.equal(store.get('corp-ad'), undefined);
    assert.equal(store.get('cloud'), 'cloud-secret');
  });

  it('refuses an empty secret with CREDENTIAL_INVALID', () => {
    const { store } = memStore();
    assert.throws(() => store.set('cloud', ''), (e) => isIdsyncError(e, 'CREDENTIAL_INVALID'));
  });

  it('uses a fresh IV for every write (same secret, different ciphertexts)', () => {
    const { db, store } = memStore();
    store.set('a', 'same');
    const first = db.prepare('SELECT iv, ciphertext FROM credentials WHERE connector = ?').get('a') as { iv: Buffer; ciphertext: Buffer };
    store.set('a', 'same');
    const second = db.prepare('SELECT iv, ciphertext FROM credentials WHERE connector = ?').get('a') as { iv: Buffer; ciphertext: Buffer };
    assert.equal(first.iv.length, 12);
    assert.notDeepEqual(first.iv, second.iv);
    assert.notDeepEqual(first.ciphertext, second.ciphertext);
  });

  it('list() and recordTest(): metadata only, never the secret', () => {
    const { store } = memStore();
    store.set('corp-ad', 'Hunter2-list-secret');
    let [info] = store.list();
    assert.equal(info!.name, 'corp-ad');
    assert.match(info!.changedAt, /^\d{4}-\d\d-\d\dT/);
    assert.equal(info!.lastTestAt, null);
    assert.equal(info!.lastTestOk, null);
    assert.equal(store.recordTest('corp-ad', false, 'LDAP_BIND_FAILED'), true);
    [info] = store.list();
    assert.equal(info!.lastTestOk, false);
    assert.equal(info!.lastErrorCode, 'LDAP_BIND_FAILED');
    assert.ok(info!.lastTestAt);
    store.recordTest('corp-ad', true);
    [info] = store.list();
    assert.equal(info!.lastTestOk, true);
    assert.equal(info!.lastErrorCode, null);
    assert.equal(store.recordTest('missing', true), false);
    assert.ok(!JSON.stringify(store.list()).includes('Hunter2'));
    assert.deepEqual(Object.keys(info!).sort(), ['changedAt', 'lastErrorCode', 'lastTestAt', 'lastTestOk', 'name']);
  });

  it('a new secret set without validation clears the last test result', () => {
    const { store } = memStore();
    store.set('cloud', 'one');
    store.recordTest('cloud', true);
    store.set('cloud', 'two');
    assert.equal(store.info('cloud')!.lastTestOk, null);
  });

  it('the database file never contains the secret in clear (UTF-8 or UTF-16)', () => {
    const dir = tempDir();
    const file = path.join(dir, 'idsync.db');
    const db = openDatabase(file, credentialMigrations);
    const store = openCredentialStore(db, dir, noEnv);
    const secret = 'Very-Distinctive-Secret-4711';
    store.set('corp-ad', secret);
    assert.equal(store.get('corp-ad'), secret);
    const bytesOf = () =>
      Buffer.concat(readdirSync(dir).filter((f) => f.startsWith('idsync.db')).map((f) => readFileSync(path.join(dir, f))));
    const live = bytesOf(); // main file + WAL while open
    assert.equal(live.includes(Buffer.from(secret, 'utf8')), false);
    assert.equal(live.includes(Buffer.from(secret, 'utf16le')), false);
    db.close(); // checkpoints the WAL into the main file
    const bytes = bytesOf();
    assert.ok(bytes.includes(Buffer.from('corp-ad')), 'sanity: the row is in the file');
    assert.equal(bytes.includes(Buffer.from(secret, 'utf8')), false);
    assert.equal(bytes.includes(Buffer.from(secret, 'utf16le')), false);
  });

  it('binds each ciphertext to its connector name (AAD): a row copied to another connector does not decrypt', () => {
    const { db, store } = memStore();
    store.set('corp-ad', 'ad-secret-xyz');
    store.set('cloud', 'cloud-secret');
    db.prepare(
      `UPDATE credentials SET (ciphertext, iv, tag) = (SELECT ciphertext, iv, tag FROM credentials WHERE connector = 'corp-ad')
       WHERE connector = 'cloud'`,
    ).run();
    assert.throws(
      () => store.get('cloud'),
      (e) =>
        isIdsyncError(e, 'CREDENTIAL_INVALID') &&
        e.message.includes('"cloud"') &&
        !e.message.includes('ad-secret-xyz') &&
        !OPENSSL_TEXT.test(e.message) &&
        (e.hint ?? '').includes('idsync credentials set cloud'),
    );
    assert.equal(store.get('corp-ad'), 'ad-secret-xyz');
  });

  it('detects a tampered ciphertext', () => {
    const { db, store } = memStore();
    store.set('a', 'secret-a');
    const row = db.prepare('SELECT ciphertext FROM credentials').get() as { ciphertext: Buffer };
    row.ciphertext[0]! ^= 1;
    db.prepare('UPDATE credentials SET ciphertext = ?').run(row.ciphertext);
    assert.throws(() => store.get('a'), (e) => isIdsyncError(e, 'CREDENTIAL_INVALID'));
  });

  it('a wrong key gives SECRET_KEY_INVALID with the key ids, never an OpenSSL message', () => {
    const db = openDatabase(':memory:', credentialMigrations);
    const keyA = generateKey();
    const keyB = generateKey();
    new CredentialStore(db, keyA).set('corp-ad', 'secret-under-a');
    const wrong = new CredentialStore(db, keyB);
    assert.throws(
      () => wrong.get('corp-ad'),
      (e) =>
        isIdsyncError(e, 'SECRET_KEY_INVALID') &&
        e.message.includes(keyId(keyA)) &&
        e.message.includes(keyId(keyB)) &&
        !OPENSSL_TEXT.test(e.message) &&
        !e.message.includes('secret-under-a'),
    );
    // the right key still works
    assert.equal(new CredentialStore(db, keyA).get('corp-ad'), 'secret-under-a');
  });

  it('refuses a key that is not 32 bytes', () => {
    const db = openDatabase(':memory:', credentialMigrations);
    assert.throws(() => new CredentialStore(db, Buffer.alloc(16)), (e) => isIdsyncError(e, 'SECRET_KEY_INVALID'));
  });

  it('a second store instance (another connection, as another process would) sees a change at once', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'idsync.db');
    const db1 = openDatabase(file, credentialMigrations);
    const db2 = openDatabase(file, credentialMigrations);
    const s1 = openCredentialStore(db1, dir, noEnv);
    const s2 = openCredentialStore(db2, dir, noEnv);
    const resolve = s2.resolver('cloud');
    s1.set('cloud', 'old-secret');
    assert.equal(s2.get('cloud'), 'old-secret');
    s1.set('cloud', 'new-secret');
    assert.equal(s2.get('cloud'), 'new-secret');
    assert.equal(await resolve(), 'new-secret');
    s1.delete('cloud');
    assert.equal(await resolve(), undefined);
    db1.close();
    db2.close();
  });

  it('resolver() reads the store at every call', async () => {
    const { store } = memStore();
    const resolve = store.resolver('corp-ad');
    assert.equal(await resolve(), undefined);
    store.set('corp-ad', 'v1');
    assert.equal(await resolve(), 'v1');
    store.set('corp-ad', 'v2');
    assert.equal(await resolve(), 'v2');
  });
});

describe('setValidated', () => {
  it('saves a secret the directory accepts and records a passing test', async () => {
    const { store } = memStore();
    const seen: string[] = [];
    await store.setValidated('corp-ad', 'good-one', async (s) => {
      seen.push(s);
    });
    assert.deepEqual(seen, ['good-one']);
    assert.equal(store.get('corp-ad'), 'good-one');
    const info = store.info('corp-ad')!;
    assert.equal(info.lastTestOk, true);
    assert.ok(info.lastTestAt);
  });

  it('keeps the working secret when the directory refuses the new one, records nothing, and never echoes the secret', async () => {
    const { store } = memStore();
    await store.setValidated('corp-ad', 'working-secret', async () => {});
    const before = store.info('corp-ad');
    await assert.rejects(
      store.setValidated('corp-ad', 'Bad-New-Secret', async (s) => {
        // a careless library might echo the credential: it must not reach the user
        throw new IdsyncError('LDAP_BIND_FAILED', `invalid credentials for cn=sync (tried ${s})`, { hint: 'Check the bind DN.' });
      }),
      (e) =>
        isIdsyncError(e, 'CREDENTIAL_INVALID') &&
        e.message.includes('invalid credentials for cn=sync') &&
        e.message.includes('saved credential is kept') &&
        !e.message.includes('Bad-New-Secret') &&
        e.details.causeCode === 'LDAP_BIND_FAILED' &&
        (e.hint ?? '').includes('Check the bind DN.'),
    );
    assert.equal(store.get('corp-ad'), 'working-secret');
    assert.deepEqual(store.info('corp-ad'), before);
  });

  it('saves nothing when there was no secret and the new one is refused', async () => {
    const { store } = memStore();
    await assert.rejects(
      store.setValidated('cloud', 'nope', async () => {
        throw new Error('401 Unauthorized');
      }),
      (e) => isIdsyncError(e, 'CREDENTIAL_INVALID') && e.message.includes('401 Unauthorized') && e.message.includes('nothing was saved'),
    );
    assert.equal(store.get('cloud'), undefined);
    assert.deepEqual(store.list(), []);
  });
});

describe('the store key', () => {
  it('is created as <dataDir>/secret.key with mode 0600, 32 bytes in base64, and reused', () => {
    const dir = path.join(tempDir(), 'data');
    const oldUmask = process.umask(0); // even with a permissive umask
    let first;
    try {
      first = loadOrCreateKey(dir, noEnv);
    } finally {
      process.umask(oldUmask);
    }
    const file = path.join(dir, SECRET_KEY_FILE);
    assert.equal(first.created, true);
    assert.equal(first.source, file);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64').length, 32);
    assert.deepEqual(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64'), first.key);
    const second = loadOrCreateKey(dir, noEnv);
    assert.equal(second.created, false);
    assert.deepEqual(second.key, first.key);
    assert.deepEqual(readdirSync(dir), [SECRET_KEY_FILE], 'no temporary file left behind');
  });

  it('refuses a key file readable by group or others (0644, 0640) with SECRET_KEY_INVALID and a chmod hint', () => {
    const dir = tempDir();
    loadOrCreateKey(dir, noEnv);
    const file = path.join(dir, SECRET_KEY_FILE);
    for (const mode of [0o644, 0o640, 0o604]) {
      chmodSync(file, mode);
      assert.throws(
        () => loadOrCreateKey(dir, noEnv),
        (e) => isIdsyncError(e, 'SECRET_KEY_INVALID') && (e.hint ?? '').includes(`chmod 600 ${file}`) && e.message.includes(mode.toString(8)),
      );
      const db = openDatabase(':memory:', credentialMigrations);
      assert.throws(() => openCredentialStore(db, dir, noEnv), (e) => isIdsyncError(e, 'SECRET_KEY_INVALID'));
    }
    chmodSync(file, 0o600);
    assert.doesNotThrow(() => loadOrCreateKey(dir, noEnv));
  });

  it('refuses a key file that does not hold 32 bytes of base64', () => {
    const dir = tempDir();
    const file = path.join(dir, SECRET_KEY_FILE);
    writeFileSync(file, Buffer.alloc(16).toString('base64'), { mode: 0o600 });
    assert.throws(() => loadOrCreateKey(dir, noEnv), (e) => isIdsyncError(e, 'SECRET_KEY_INVALID') && e.message.includes(file));
    writeFileSync(file, 'not base64 at all!', { mode: 0o600 });
    assert.throws(() => loadOrCreateKey(dir, noEnv), (e) => isIdsyncError(e, 'SECRET_KEY_INVALID'));
  });

  it(`comes from ${SECRET_KEY_ENV} (base64) when set, and then no key file is written`, () => {
    const dir = tempDir();
    const key = generateKey();
    const env = { [SECRET_KEY_ENV]: key.toString('base64') };
    const loaded = loadOrCreateKey(dir, env);
    assert.deepEqual(loaded.key, key);
    assert.equal(loaded.source, SECRET_KEY_ENV);
    assert.equal(existsSync(path.join(dir, SECRET_KEY_FILE)), false);
    // a store opened with the env key decrypts what another one with the same key wrote
    const db = openDatabase(':memory:', credentialMigrations);
    openCredentialStore(db, dir, env).set('cloud', 'env-key-secret');
    assert.equal(new CredentialStore(db, key).get('cloud'), 'env-key-secret');
  });

  it(`refuses an ${SECRET_KEY_ENV} that is not 32 bytes of base64, without echoing it`, () => {
    for (const bad of [Buffer.alloc(31).toString('base64'), 'abc', 'Zm9v!!!!']) {
      assert.throws(
        () => loadOrCreateKey(tempDir(), { [SECRET_KEY_ENV]: bad }),
        (e) => isIdsyncError(e, 'SECRET_KEY_INVALID') && e.message.includes(SECRET_KEY_ENV) && !e.message.includes(bad),
      );
    }
  });

  it('the key file from one data directory decrypts in a new process-like open; another key is refused', () => {
    const dir = tempDir();
    const file = path.join(dir, 'idsync.db');
    const db = openDatabase(file, credentialMigrations);
    openCredentialStore(db, dir, noEnv).set('cloud', 's3');
    db.close();
    const db2 = openDatabase(file, credentialMigrations);
    assert.equal(openCredentialStore(db2, dir, noEnv).get('cloud'), 's3');
    assert.throws(
      () => openCredentialStore(db2, dir, { [SECRET_KEY_ENV]: generateKey().toString('base64') }).get('cloud'),
      (e) => isIdsyncError(e, 'SECRET_KEY_INVALID'),
    );
    db2.close();
  });
});
