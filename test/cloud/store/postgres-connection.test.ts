/**
 * The cloud's connection to a real PostgreSQL 15 (test/helpers/postgres.ts) started with TLS on
 * (a certificate from test/helpers/tls.ts, issued for a name, not for 127.0.0.1): the password
 * sealed by `idsync cloud credentials set database` and read when the main thread and the SCIM
 * worker connect; TLS modes require / verify-full with a CA file and a server name; and errors
 * that say what is wrong without the password.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { getCloudCredential, setCloudCredential } from '../../../src/cloud/store/credentials.js';
import type { CloudServer } from '../../../src/cloud/server.js';
import { giveToPostgres, postgresReadableDir, skipUnlessPostgres, startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { runCli } from '../../helpers/run-cli.js';
import { createTestCa, issueServerCert, type TestCa } from '../../helpers/tls.js';
import { accountToken, createScimUser, start, tempDir } from '../auth/helpers.js';

const DB_NAME = 'db.idsync.test';

describe('the cloud on PostgreSQL: sealed password and TLS', { skip: skipUnlessPostgres() }, () => {
  const tmp = tempDir();
  let pg: TestPostgres;
  let ca: TestCa;
  let otherCa: TestCa;
  /** The database URL without its password. */
  let url: string;
  let certs: string | undefined;

  before(async () => {
    certs = postgresReadableDir();
    ca = createTestCa(certs);
    otherCa = createTestCa(certs, 'other-ca');
    const cert = issueServerCert(certs, ca, { cn: DB_NAME, san: [`DNS:${DB_NAME}`] });
    giveToPostgres([cert.certFile, cert.keyFile]);
    pg = await startPostgres({ args: ['-c', 'ssl=on', '-c', `ssl_cert_file=${cert.certFile}`, '-c', `ssl_key_file=${cert.keyFile}`] });
    const u = new URL(await pg.createDatabase());
    u.password = '';
    url = u.toString();
  });
  after(async () => {
    await pg?.stop();
    if (certs) rmSync(certs, { recursive: true, force: true });
    tmp.cleanup();
  });

  /** Whether every connection of the test role to this database is encrypted (the main thread's and the worker's). */
  async function allEncrypted(): Promise<{ connections: number; encrypted: boolean }> {
    const admin = await pg.admin();
    try {
      const r = await admin.query<{ n: string; ssl: boolean }>(
        'SELECT count(*) AS n, bool_and(s.ssl) AS ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = $1 AND a.datname = $2',
        [pg.role, new URL(url).pathname.slice(1)],
      );
      return { connections: Number(r.rows[0]!.n), encrypted: r.rows[0]!.ssl };
    } finally {
      await admin.end();
    }
  }

  test('`idsync cloud credentials set database` seals the password; serve reads it (main thread and SCIM worker) over verify-full TLS', async () => {
    const dataDir = path.join(tmp.dir, 'node1');
    const set = await runCli(['cloud', 'credentials', 'set', 'database', '--data', dataDir], { stdin: `${pg.password}\n`, env: { IDSYNC_CLOUD_SECRET_KEY: undefined } });
    assert.equal(set.code, 0, set.stderr);
    assert.ok(!set.stdout.includes(pg.password) && !set.stderr.includes(pg.password), 'the password is not printed');
    // Sealed: the file holds no plaintext, and it and the key are owner-only.
    const sealed = readFileSync(path.join(dataDir, 'database.credential'), 'utf8');
    assert.ok(!sealed.includes(pg.password));
    assert.equal(statSync(path.join(dataDir, 'database.credential')).mode & 0o777, 0o600);
    assert.equal(statSync(path.join(dataDir, 'cloud-secret.key')).mode & 0o777, 0o600);
    const list = await runCli(['cloud', 'credentials', 'list', '--data', dataDir, '--json']);
    assert.deepEqual((JSON.parse(list.stdout) as { credentials: { name: string }[] }).credentials.map((c) => c.name), ['database']);
    assert.ok(!list.stdout.includes(pg.password));

    let server: CloudServer | undefined;
    try {
      server = await start(dataDir, { database: url, databaseTls: { mode: 'verify-full', caFile: ca.certFile, serverName: DB_NAME } });
      const admin = await accountToken(server);
      // A SCIM write goes through the worker's own pool: it read the credential too.
      await createScimUser(server, admin, { userName: 'tls-user@example.test', externalId: 'tls-1' });
      const seen = await allEncrypted();
      assert.ok(seen.connections >= 2, `connections of the main thread and the worker (${seen.connections})`);
      assert.equal(seen.encrypted, true, 'every connection is TLS');
    } finally {
      await server?.close();
    }
  });

  test('verify-full refuses a certificate of another CA, or of another name; require encrypts without checking', async () => {
    const dataDir = path.join(tmp.dir, 'node2');
    setCloudCredential(dataDir, 'database', pg.password);
    await assert.rejects(start(dataDir, { database: url, databaseTls: { mode: 'verify-full', caFile: otherCa.certFile, serverName: DB_NAME } }), (err: Error) => {
      assert.match(err.message, /cannot open the cloud database/);
      assert.ok(!err.message.includes(pg.password));
      return true;
    });
    // Without a server name the URL's host (127.0.0.1) is checked, which the certificate does not name.
    await assert.rejects(start(dataDir, { database: url, databaseTls: { mode: 'verify-full', caFile: ca.certFile } }), /cannot open the cloud database/);
    const server = await start(dataDir, { database: url, databaseTls: { mode: 'require' } });
    try {
      assert.equal((await allEncrypted()).encrypted, true);
    } finally {
      await server.close();
    }
  });

  test('a wrong sealed password is a clear error without the password; IDSYNC_CLOUD_DATABASE_PASSWORD takes precedence', async () => {
    const dataDir = path.join(tmp.dir, 'node3');
    const wrong = 'wrong-password-that-must-not-show';
    setCloudCredential(dataDir, 'database', wrong);
    assert.equal(getCloudCredential(dataDir, 'database'), wrong);
    await assert.rejects(start(dataDir, { database: url }), (err: Error) => {
      assert.match(err.message, /password authentication failed/);
      assert.ok(!err.message.includes(wrong));
      return true;
    });
    const server = await start(dataDir, { database: url, databasePassword: pg.password });
    await server.close();
    // Another key than the one that sealed it: said so, not "damaged".
    assert.throws(() => getCloudCredential(dataDir, 'database', { IDSYNC_CLOUD_SECRET_KEY: Buffer.alloc(32, 7).toString('base64') }), /sealed with another key/);
  });
});
