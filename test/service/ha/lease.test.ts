/**
 * The leader lease on a real PostgreSQL 15 (src/service/ha/lease.ts): one leader among nodes, a
 * token that only grows, takeover after a release or a lapse, and the fence: a node paused with
 * SIGSTOP past its lease (a real child process) finds on resume that it leads no more — by its own
 * clock before anything else, and in the database, where its fenced write transactions find no row.
 * Production defaults (5 s lease, 1 s renewal) unless a test says otherwise.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import pg from 'pg';
import { allMigrations } from '../../../src/app/migrations.js';
import { LeaderLease, type LeaseChange } from '../../../src/service/ha/lease.js';
import { haMigrations } from '../../../src/service/ha/lease-sql.js';
import { connectOptions, openPostgresDatabase } from '../../../src/store/postgres/open.js';
import { skipUnlessPostgres, startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { ROOT, until } from '../../helpers/processes.js';

function changes(lease: LeaderLease): LeaseChange[] {
  const seen: LeaseChange[] = [];
  lease.onChange((c) => seen.push(c));
  return seen;
}

describe('leader lease on PostgreSQL', { skip: skipUnlessPostgres() }, () => {
  let pgc: TestPostgres;
  before(async () => {
    pgc = await startPostgres();
  });
  after(() => pgc?.stop());

  /** A fresh database with the lease's tables, made as the service makes them: by the store's migration. */
  async function leaseDatabase(): Promise<string> {
    const url = await pgc.createDatabase();
    openPostgresDatabase({ url }, haMigrations).close();
    return url;
  }

  test('the lease tables are the store migration ha/001-lease: made once by the migrations, also over tables an older version made at the lease start', async () => {
    const url = await pgc.createDatabase();
    const sql = new pg.Client({ connectionString: url });
    await sql.connect();
    try {
      const tables = async () => (await sql.query<{ t: string }>("SELECT table_name AS t FROM information_schema.tables WHERE table_name IN ('ha_lease', 'ha_nodes') ORDER BY 1")).rows.map((r) => r.t);
      assert.deepEqual(await tables(), []);
      // The lease worker creates nothing now: without the migration it cannot take the lease.
      openPostgresDatabase({ url }, allMigrations).close();
      assert.deepEqual(await tables(), ['ha_lease', 'ha_nodes']);
      assert.equal((await sql.query("SELECT count(*)::int AS n FROM schema_migrations WHERE id = 'ha/001-lease'")).rows[0].n, 1);
      // An installation whose tables the lease worker of an older version made (no migration recorded).
      const old = await pgc.createDatabase();
      const oldSql = new pg.Client({ connectionString: old });
      await oldSql.connect();
      await oldSql.query("CREATE TABLE ha_lease (name TEXT PRIMARY KEY, holder TEXT NOT NULL, node TEXT NOT NULL, token BIGINT NOT NULL, previous_holder TEXT, expires_at TIMESTAMPTZ NOT NULL, acquired_at TIMESTAMPTZ NOT NULL, renewed_at TIMESTAMPTZ NOT NULL)");
      await oldSql.query("INSERT INTO ha_lease VALUES ('sync-leader', 'x', 'x', 41, NULL, now(), now(), now())");
      openPostgresDatabase({ url: old }, allMigrations).close();
      assert.equal((await oldSql.query("SELECT token::int AS t FROM ha_lease")).rows[0].t, 41, 'the token of the old table is kept: a token is never reused');
      await oldSql.end();
      const a = new LeaderLease({ connection: connectOptions({ url: old }), node: 'a' });
      a.start();
      try {
        await until('a to lead over the old table', () => a.isLeader, 30_000);
        assert.equal(a.token, 42);
      } finally {
        await a.stop();
      }
    } finally {
      await sql.end();
    }
  });

  test('one leader; a release hands the lease on with the next token; the old token fails the fence', async () => {
    const url = await leaseDatabase();
    const a = new LeaderLease({ connection: connectOptions({ url }), node: 'a' });
    const seenA = changes(a);
    a.start();
    await until('a to lead', () => a.isLeader, 30_000);
    const b = new LeaderLease({ connection: connectOptions({ url }), node: 'b' });
    const seenB = changes(b);
    b.start();
    try {
      await until('b to see a as leader', () => b.leader?.node === 'a', 30_000);
      // Several renewals later, still one leader and the same term.
      await sleep(2500);
      assert.equal(a.isLeader, true);
      assert.equal(b.isLeader, false);
      const first = a.token;
      assert.ok(first >= 1);
      assert.deepEqual(seenA.filter((c) => c.kind === 'acquired').length, 1, 'renewals keep the term');
      const fenceA = a.fence()!;

      await a.stop(true);
      await until('b to take over', () => b.isLeader, 10_000);
      assert.equal(b.token, first + 1, 'the next term has the next token');
      const acquired = seenB.find((c) => c.kind === 'acquired');
      assert.ok(acquired && acquired.kind === 'acquired' && acquired.previousHolder === a.holder);

      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        assert.equal((await client.query(fenceA.check.sql, [...fenceA.check.params])).rowCount, 0, "a's token no longer passes the fence");
        const fenceB = b.fence()!;
        assert.equal((await client.query(fenceB.check.sql, [...fenceB.check.params])).rowCount, 1);
      } finally {
        await client.end();
      }
      assert.throws(() => fenceA.assertHeld(), (e: Error & { code?: string }) => e.code === 'LEASE_LOST');
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  test('a lapsed lease (the holder stops renewing) is taken within lease time + one renewal', async () => {
    const url = await leaseDatabase();
    const a = new LeaderLease({ connection: connectOptions({ url }), node: 'a' });
    a.start();
    await until('a to lead', () => a.isLeader, 30_000);
    const b = new LeaderLease({ connection: connectOptions({ url }), node: 'b' });
    b.start();
    await until('b to see a', () => b.leader?.node === 'a', 30_000);
    // a stops without releasing: as if it died.
    const t0 = Date.now();
    await a.stop(false);
    await until('b to take over', () => b.isLeader, 20_000, 20);
    const took = Date.now() - t0;
    assert.ok(took <= 10_000, `takeover after ${took} ms`);
    await b.stop();
  });

  test('a holder paused with SIGSTOP past its lease: taken over, and on resume it writes nothing under its old token', async () => {
    const url = await leaseDatabase();
    const setup = new pg.Client({ connectionString: url });
    await setup.connect();
    await setup.query('CREATE TABLE fenced_writes (token BIGINT NOT NULL, node TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())');
    // The child leads, and every 50 ms writes a row in a fenced transaction (the check first, FOR SHARE).
    const leaseModule = pathToFileURL(path.join(ROOT, 'src/service/ha/lease.ts')).href;
    const openModule = pathToFileURL(path.join(ROOT, 'src/store/postgres/open.ts')).href;
    const code = `
      import pg from 'pg';
      const { LeaderLease } = await import(${JSON.stringify(leaseModule)});
      const { connectOptions } = await import(${JSON.stringify(openModule)});
      const lease = new LeaderLease({ connection: connectOptions({ url: process.env.URL }), node: 'paused' });
      lease.onChange((c) => console.log(JSON.stringify({ change: c.kind, token: c.token ?? null })));
      lease.start();
      const open = async () => {
        const c = new pg.Client({ connectionString: process.env.URL });
        c.on('error', () => undefined);
        await c.connect();
        // As the service sets it: a transaction paused mid-way is ended after one lease time.
        await c.query('SET idle_in_transaction_session_timeout = 5000');
        return c;
      };
      let db = await open();
      let last = -1;
      for (;;) {
        const token = lease.token;
        if (token !== last) { console.log(JSON.stringify({ token })); last = token; }
        const fence = lease.fence();
        if (fence) {
          try {
            await db.query('BEGIN');
            const held = (await db.query(fence.check.sql, fence.check.params)).rowCount === 1;
            if (held) await db.query("INSERT INTO fenced_writes (token, node) VALUES ($1, 'paused')", [fence.token]);
            await db.query(held ? 'COMMIT' : 'ROLLBACK');
            if (!held) console.log(JSON.stringify({ refused: fence.token }));
          } catch (err) {
            // Paused mid-transaction: the server ended the session (idle_in_transaction_session_timeout),
            // and nothing of that transaction was committed. A service would reconnect; so does this loop.
            console.log(JSON.stringify({ ended: err.code ?? err.message }));
            await db.end().catch(() => undefined);
            db = await open();
          }
        }
        await new Promise((r) => setTimeout(r, 50));
      }`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, env: { ...process.env, URL: url }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const standby = new LeaderLease({ connection: connectOptions({ url }), node: 'standby' });
    try {
      await until('the child to lead', () => /"token":[1-9]/.test(out), 60_000);
      standby.start();
      await until('the standby to see the child lead', () => standby.leader?.node === 'paused', 30_000);
      await until('a fenced write of the child', async () => Number((await setup.query('SELECT count(*) AS n FROM fenced_writes')).rows[0].n) > 0, 10_000);

      child.kill('SIGSTOP');
      const stoppedAt = Date.now();
      await until('the standby to take over', () => standby.isLeader, 20_000, 20);
      const took = Date.now() - stoppedAt;
      assert.ok(took <= 10_000, `takeover ${took} ms after the pause`);
      const newToken = standby.token;
      const takenAt = (await setup.query("SELECT acquired_at FROM ha_lease WHERE name = 'sync-leader'")).rows[0].acquired_at as Date;
      // The new leader writes under its token meanwhile.
      await setup.query("INSERT INTO fenced_writes (token, node) VALUES ($1, 'standby')", [newToken]);
      await sleep(2000); // well past the child's lease

      const before = out.length;
      child.kill('SIGCONT');
      await until('the resumed child to notice', () => /"change":"lost"/.test(out.slice(before)), 20_000).catch((err: Error) => {
        throw new Error(`${err.message}; the child printed after SIGCONT: ${out.slice(before)}`);
      });
      await sleep(1000); // a second of the child's loop after resuming
      const resumed = out.slice(before).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      // The first token its loop read on resume was none (its own clock said so at once). Before it the
      // child may print that the server ended a transaction the pause caught half-way, or the lease loss.
      const tokens = resumed.filter((l) => Object.keys(l).join() === 'token');
      assert.deepEqual(tokens[0], { token: 0 }, `after SIGCONT: ${out.slice(before)}`);
      // A transaction the pause caught between reading the fence and its check is refused by the check.
      assert.ok(resumed.every((l) => 'token' in l || 'ended' in l || 'refused' in l), `only token reads, the lease loss, refused and ended transactions after SIGCONT: ${out.slice(before)}`);
      const late = await setup.query("SELECT count(*)::int AS n FROM fenced_writes WHERE node = 'paused' AND (at >= $1 OR token >= $2)", [takenAt, newToken]);
      assert.equal(late.rows[0].n, 0, 'the paused node wrote nothing after the takeover');
      assert.equal(standby.isLeader, true);
    } finally {
      child.kill('SIGKILL');
      await standby.stop();
      await setup.end();
    }
  });
});
