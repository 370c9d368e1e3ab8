/** The PostgreSQL test harness itself: a private cluster, password auth, a database per test. */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { PG_TEST_ROLE, skipUnlessPostgres, startPostgres, type TestPostgres } from './postgres.js';

describe('test/helpers/postgres', { skip: skipUnlessPostgres() }, () => {
  let cluster: TestPostgres | undefined;
  after(() => cluster?.stop());

  test('starts a private PostgreSQL 15 on loopback with password auth, one database per call', async () => {
    cluster = await startPostgres();
    const a = await cluster.createDatabase();
    const b = await cluster.createDatabase();
    assert.notEqual(a, b);
    const c = new pg.Client({ connectionString: a });
    await c.connect();
    try {
      const r = await c.query<{ v: string; u: string; addr: string }>('SELECT current_setting(\'server_version_num\') AS v, current_user AS u, inet_server_addr()::text AS addr');
      assert.match(r.rows[0]!.v, /^15/);
      assert.equal(r.rows[0]!.u, PG_TEST_ROLE);
      assert.equal(r.rows[0]!.addr, '127.0.0.1/32');
      await c.query('CREATE TABLE t (x int)');
    } finally {
      await c.end();
    }
    // A wrong password is refused: the role really uses password auth.
    const bad = new pg.Client({ host: cluster.host, port: cluster.port, user: PG_TEST_ROLE, password: 'wrong', database: 'postgres' });
    await assert.rejects(bad.connect(), /password authentication failed/);
    await bad.end().catch(() => undefined);
    const dir = cluster.socketDir;
    await cluster.stop();
    const { existsSync } = await import('node:fs');
    assert.equal(existsSync(dir), false, 'the cluster directory is removed');
    cluster = undefined;
  });
});
