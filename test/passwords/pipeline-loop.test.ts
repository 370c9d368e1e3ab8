/**
 * The delivery loop (PasswordPipeline.run) survives what its passes meet. CI caught the resumed old
 * leader of an HA pair dying: after SIGCONT its loop's first write met the lost lease, the event
 * that should have said so was refused by the same fence, and the rejection ended the process
 * (unhandled). Here, on a real PostgreSQL 15 with the real lease, a real cloud directory over HTTP
 * and production defaults (1 s poll, 5 s lease):
 *  - a loop whose term ended: it writes and delivers nothing, says LEASE_LOST (event 652, written
 *    outside the fence, with the fence's code, so that the service can act on it) once per start,
 *    stops when asked; the change waits in the shared outbox and the next leader's loop delivers it;
 *  - a loop whose store goes away (connections refused, its session ended): it says so once, and
 *    delivers again when the store is back.
 * Neither may leave an unhandled rejection.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CloudClient } from '../../src/connectors/cloud/client.js';
import { CredentialStore } from '../../src/credentials/store.js';
import { EventLog } from '../../src/events/log.js';
import { PasswordPipeline } from '../../src/passwords/pipeline.js';
import { LeaderLease } from '../../src/service/ha/lease.js';
import { haMigrations } from '../../src/service/ha/lease-sql.js';
import type { Database } from '../../src/store/database.js';
import { runFenced } from '../../src/store/fence.js';
import { connectOptions, openPostgresDatabase } from '../../src/store/postgres/open.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { skipUnlessPostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { until } from '../helpers/processes.js';
import { addUser, cloudClient, createCloudUser, MIGRATIONS, signIn } from './sources/fixtures.js';

interface Store {
  url: string;
  name: string;
  db: Database;
  key: Buffer;
  credentials: CredentialStore;
  events: EventLog;
}

describe('the password delivery loop survives what its passes meet', { skip: skipUnlessPostgres() }, () => {
  let pgc: TestPostgres;
  let cloud: TestCloud;
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown): void => {
    rejections.push(reason);
  };
  const closers: (() => Promise<void> | void)[] = [];

  before(async () => {
    [pgc, cloud] = await Promise.all([startPostgres(), startTestCloud()]);
    process.on('unhandledRejection', onRejection);
  });
  after(async () => {
    process.off('unhandledRejection', onRejection);
    await cloud?.close();
    await pgc?.stop();
  });
  beforeEach(() => {
    rejections.length = 0;
  });
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  async function store(): Promise<Store> {
    const url = await pgc.createDatabase();
    const db = openPostgresDatabase({ url }, [...MIGRATIONS, ...haMigrations]);
    closers.push(() => {
      db.close();
    });
    const key = randomBytes(32);
    const credentials = new CredentialStore(db, key);
    credentials.set('cloud', cloud.syncSecret);
    return { url, name: new URL(url).pathname.slice(1), db, key, credentials, events: new EventLog(db) };
  }

  function client(s: Store): CloudClient {
    const c = cloudClient(cloud, s.credentials);
    closers.push(() => c.close());
    return c;
  }

  function pipeline(s: Store, log?: (level: 'warn' | 'error', msg: string) => void): PasswordPipeline {
    const p = new PasswordPipeline({ db: s.db, cloud: client(s), events: s.events, key: s.key, ...(log ? { log } : {}) });
    closers.push(() => p.stop());
    return p;
  }

  async function lease(s: Store, node: string): Promise<LeaderLease> {
    const l = new LeaderLease({ connection: connectOptions({ url: s.url }), node });
    closers.push(() => l.stop());
    l.start();
    return l;
  }

  const codesOf = (s: Store, id: number): string[] =>
    s.events.query({ ids: [id] }).map((e) => String(e.details.code));
  const queued = (s: Store, anchor: string): boolean =>
    s.db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM phs_users WHERE anchor = ? AND next_attempt_at IS NOT NULL').get(anchor)!.n === 1;

  it('a loop whose term ended delivers nothing, says LEASE_LOST and stops when asked; the next leader delivers the change', async () => {
    const s = await store();
    const user = addUser(s.db, { sam: `dep${randomBytes(3).toString('hex')}` });
    await createCloudUser(cloud, user);

    const a = await lease(s, 'a');
    await until('a to lead', () => a.isLeader, 30_000);
    const fenceA = a.fence()!;
    const loopA = pipeline(s);
    runFenced(fenceA, () => loopA.start());
    // While a leads, its loop delivers.
    await loopA.acceptPassword(user.upn, 'First-Pa55!');
    // Polled in the cloud's store: polling sign-ins with a password not there yet would trip the lockout.
    await until('the first password in the cloud', () => cloud.holdsPassword(user.upn, 'First-Pa55!'), 30_000, 100);
    assert.equal(await signIn(cloud, user.upn, 'First-Pa55!'), true);

    // a's term ends (released: b takes over with the next token); a's loop is not told.
    const b = await lease(s, 'b');
    await a.stop(true);
    await until('b to lead', () => b.isLeader, 30_000);
    assert.equal(b.token, fenceA.token + 1);
    assert.throws(() => fenceA.assertHeld(), (e: Error & { code?: string }) => e.code === 'LEASE_LOST');

    // A change arrives (the intake is not fenced: any node takes it) and wakes a's loop.
    await loopA.acceptPassword(user.upn, 'Second-Pa55!');
    await until("a's loop to say LEASE_LOST (event 652)", () => codesOf(s, 652).includes('LEASE_LOST'), 30_000, 100);
    // Several passes later: said once, nothing delivered, the change still queued.
    await sleep(2500);
    assert.deepEqual(codesOf(s, 652), ['LEASE_LOST'], 'said once, not once per pass');
    assert.equal(await cloud.holdsPassword(user.upn, 'Second-Pa55!'), false, 'the deposed loop delivered nothing');
    assert.equal(await cloud.holdsPassword(user.upn, 'First-Pa55!'), true);
    assert.ok(queued(s, user.anchor), 'the change waits in the shared outbox');
    await loopA.stop();
    // Started again under the same lost term (as after a term won and lost again): said again.
    runFenced(fenceA, () => loopA.start());
    await until('the restarted loop to say LEASE_LOST again', () => codesOf(s, 652).length === 2, 30_000, 100);
    await loopA.stop();
    assert.deepEqual(codesOf(s, 652), ['LEASE_LOST', 'LEASE_LOST']);
    assert.deepEqual(rejections, [], 'no unhandled rejection');

    // The next leader's loop delivers it.
    const loopB = pipeline(s);
    runFenced(b.fence()!, () => loopB.start());
    await until('the second password in the cloud', () => cloud.holdsPassword(user.upn, 'Second-Pa55!'), 30_000, 100);
    assert.equal(await signIn(cloud, user.upn, 'Second-Pa55!'), true);
    await until('the outbox to be empty', () => !queued(s, user.anchor), 10_000, 100);
    assert.deepEqual(rejections, [], 'no unhandled rejection');
  });

  it('a loop whose store goes away says so once and delivers again when the store is back', async () => {
    const s = await store();
    const user = addUser(s.db, { sam: `out${randomBytes(3).toString('hex')}` });
    await createCloudUser(cloud, user);
    const logged: string[] = [];
    const loop = pipeline(s, (_level, msg) => logged.push(msg));
    loop.start();
    await loop.acceptPassword(user.upn, 'Before-Pa55!');
    await until('the first password in the cloud', () => cloud.holdsPassword(user.upn, 'Before-Pa55!'), 30_000, 100);

    // The outage: new connections refused, the store's session ended by the server.
    const admin = await pgc.admin();
    try {
      await admin.query(`ALTER DATABASE ${s.name} ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [s.name]);
      await until('the loop to say the store failed', () => logged.length > 0, 30_000, 100);
      await sleep(3000); // three more passes, every one failing
      assert.equal(logged.length, 1, `said once, not once per pass: ${logged.join(' | ')}`);
      assert.match(logged[0]!, /STORE_FAILED/);
      assert.deepEqual(rejections, [], 'no unhandled rejection');
    } finally {
      await admin.query(`ALTER DATABASE ${s.name} ALLOW_CONNECTIONS true`);
      await admin.end();
    }

    // The store is back: the loop (still running) delivers the next change.
    await until('the store to answer', () => {
      try {
        return s.db.prepare('SELECT 1 AS one').get() !== undefined;
      } catch {
        return false;
      }
    }, 30_000, 200);
    await loop.acceptPassword(user.upn, 'After-Pa55!');
    await until('the password after the outage in the cloud', () => cloud.holdsPassword(user.upn, 'After-Pa55!'), 30_000, 100);
    assert.equal(await signIn(cloud, user.upn, 'After-Pa55!'), true);
    assert.deepEqual(rejections, [], 'no unhandled rejection');
  });
});
