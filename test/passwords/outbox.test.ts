import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { orgIdHash } from '../../src/passwords/hash.js';
import { PasswordKeys } from '../../src/passwords/keys.js';
import { Outbox } from '../../src/passwords/outbox.js';
import { makeEnv, type Env } from './sources/fixtures.js';

describe('password outbox', () => {
  let env: Env;
  let h1: string;
  let h2: string;
  before(async () => {
    env = makeEnv();
    h1 = await orgIdHash('First-Passw0rd');
    h2 = await orgIdHash('Second-Passw0rd');
  });
  after(() => env.cleanup());
  const outbox = () => new Outbox(env.db, new PasswordKeys(env.key));

  it('keeps one row per user and the latest change wins', () => {
    const o = outbox();
    const t0 = new Date('2026-01-01T10:00:00Z');
    const t1 = new Date('2026-01-01T11:00:00Z');
    assert.equal(o.enqueue('corp', 'u1', h1, t0, 'test'), 'queued');
    assert.equal(o.enqueue('corp', 'u1', h2, t1, 'test'), 'queued');
    assert.equal(o.depth().depth, 1);
    let [item] = o.due(10, new Set());
    assert.equal(item!.hash, h2);
    assert.equal(item!.version, 2);
    // an older change never replaces a newer one
    assert.equal(o.enqueue('corp', 'u1', h1, t0, 'test'), 'stale');
    [item] = o.due(10, new Set());
    assert.equal(item!.hash, h2);
    assert.equal(item!.changedAt, t1.toISOString());
  });

  it('deletes a row only for the version the cloud stored', () => {
    const o = outbox();
    o.enqueue('corp', 'u2', h1, new Date('2026-01-02T10:00:00Z'), 'test');
    const [inFlight] = o.due(10, new Set(['u1']));
    assert.equal(inFlight!.anchor, 'u2');
    // a newer change arrives while the first is being delivered
    o.enqueue('corp', 'u2', h2, new Date('2026-01-02T11:00:00Z'), 'test');
    o.complete(inFlight!);
    const left = o.due(10, new Set(['u1']));
    assert.equal(left.length, 1);
    assert.equal(left[0]!.hash, h2);
    o.complete(left[0]!);
    assert.equal(o.due(10, new Set(['u1'])).length, 0);
  });

  it('a late answer about a write already completed never touches the change queued after it (two deliveries of one user overlapped)', () => {
    const o = outbox();
    o.enqueue('corp', 'u9', h1, new Date('2026-01-05T10:00:00Z'), 'test');
    const pick = () => o.due(10, new Set()).find((i) => i.anchor === 'u9')!;
    const first = pick(); // one delivery takes it ...
    const second = pick(); // ... and another one too (another process, or the cycle's own)
    o.complete(second); // the second is answered first: the row is gone
    // A newer change arrives: a new row, whose version starts at 1 again.
    o.enqueue('corp', 'u9', h2, new Date('2026-01-05T11:00:00Z'), 'test');
    assert.equal(pick().version, first.version, 'the same version number as the write in flight');
    o.retry(first, Date.now() + 60_000, 'NoResult'); // the first one's late answers
    o.complete(first);
    const left = pick();
    assert.ok(left, 'the newer change is still queued');
    assert.equal(left.hash, h2);
    assert.equal(left.attempts, 0, 'and untouched by the late retry');
    o.complete(left);
    assert.equal(o.due(10, new Set()).filter((i) => i.anchor === 'u9').length, 0);
  });

  it('a change waiting for its user to be exported is not a backlog, and expires after the retention', () => {
    const o = outbox();
    o.enqueue('corp', 'out-of-scope', h1, new Date('2026-01-04T10:00:00Z'), 'agent');
    const [item] = o.due(10, new Set()).filter((i) => i.anchor === 'out-of-scope');
    o.retry(item!, Date.now() + 60_000, 'TargetNotExported');
    const d = o.depth();
    assert.ok(d.waitingForExport >= 1);
    const oldestIsIt = d.oldestQueuedAt !== undefined && d.oldestQueuedAt === env.db.prepare("SELECT queued_at AS q FROM phs_users WHERE anchor = 'out-of-scope'").pluck().get();
    assert.equal(oldestIsIt, false, 'the unexported change does not count as the oldest waiting delivery');
    assert.deepEqual(o.expireUnexported(new Date(Date.now() - 7 * 86_400_000).toISOString()), [], 'not expired before the retention');
    assert.deepEqual(o.expireUnexported(new Date(Date.now() + 1000).toISOString()).map((x) => x.anchor), ['out-of-scope']);
    assert.equal(env.db.prepare("SELECT count(*) FROM phs_users WHERE anchor = 'out-of-scope' AND next_attempt_at IS NOT NULL").pluck().get(), 0, 'nothing waits for it any more');
    assert.equal(env.db.prepare("SELECT count(*) FROM phs_users WHERE anchor = 'out-of-scope' AND hash_ct IS NOT NULL").pluck().get(), 1, 'its hash is still known (queued again once the user is exported)');
  });

  it('survives a crash: reopened without shutdown, the item is still there and readable', () => {
    outbox().enqueue('corp', 'u3', h1, new Date('2026-01-03T10:00:00Z'), 'test');
    env.reopen(); // no stop(), no close of the outbox: as after SIGKILL
    const o = outbox();
    const item = o.due(10, new Set()).find((i) => i.anchor === 'u3');
    assert.ok(item);
    assert.equal(item.hash, h1);
  });

  it('stores the hashes encrypted, bound to the user', () => {
    const raw = env.db.prepare('SELECT hash_ct FROM phs_users').pluck().all() as Buffer[];
    assert.ok(raw.length > 0);
    for (const ct of raw) {
      assert.ok(!ct.toString('latin1').includes('PPH1'));
    }
    env.db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    const file = readFileSync(env.dbFile).toString('latin1');
    assert.ok(!file.includes(h1) && !file.includes(h2) && !file.includes('v1;PPH1'));
    // a ciphertext copied to another user's row does not open
    env.db.prepare("UPDATE phs_users SET hash_ct = (SELECT hash_ct FROM phs_users WHERE anchor = 'u3'), hash_iv = (SELECT hash_iv FROM phs_users WHERE anchor = 'u3'), hash_tag = (SELECT hash_tag FROM phs_users WHERE anchor = 'u3') WHERE anchor = 'u1'").run();
    const u1 = outbox().due(10, new Set()).find((i) => i.anchor === 'u1');
    assert.equal(u1!.hash, undefined);
    // and another key opens nothing
    const other = new Outbox(env.db, new PasswordKeys(Buffer.alloc(32, 7)));
    assert.ok(other.due(10, new Set()).every((i) => i.hash === undefined));
  });

  it('re-queues the last known hash for a full resync', () => {
    const o = outbox();
    const [item] = o.due(10, new Set()).filter((i) => i.anchor === 'u3');
    o.complete(item!);
    assert.equal(o.due(10, new Set()).filter((i) => i.anchor === 'u3').length, 0);
    const queued = o.requeueKnown(['u3']);
    assert.deepEqual(queued, [{ connector: 'corp', anchor: 'u3' }]);
    const again = o.due(10, new Set()).find((i) => i.anchor === 'u3');
    assert.equal(again!.hash, h1);
  });
});

describe('password outbox: one user known to two connectors, dates from clocks ahead, new cloud objects', () => {
  let env: Env;
  const hashes: Record<string, string> = {};
  before(async () => {
    env = makeEnv();
    for (const p of ['Older', 'Newer', 'Oldest', 'Future', 'Real', 'Again']) hashes[p] = await orgIdHash(`${p}-Passw0rd`);
  });
  after(() => env.cleanup());
  const outbox = (now?: () => number) => new Outbox(env.db, new PasswordKeys(env.key), now);
  const waitingFor = (o: Outbox, anchor: string) => o.due(100, new Set()).filter((i) => i.anchor === anchor);

  it('two connectors knowing one anchor: the newest change of either is delivered, and its delivery ends the older one', () => {
    const o = outbox();
    assert.equal(o.enqueue('corp', 'shared', hashes.Older!, new Date('2026-05-01T10:00:00Z'), 'test'), 'queued');
    assert.equal(o.enqueue('corp2', 'shared', hashes.Newer!, new Date('2026-05-02T10:00:00Z'), 'test'), 'queued');
    let waiting = waitingFor(o, 'shared');
    assert.equal(waiting.length, 1, 'one delivery at a time for the user');
    assert.equal(waiting[0]!.hash, hashes.Newer, 'the newest change goes');
    o.complete(waiting[0]!);
    assert.equal(waitingFor(o, 'shared').length, 0, "the cloud stored the newer change: the other connector's older one is done too");
    assert.equal(o.enqueue('corp', 'shared', hashes.Oldest!, new Date('2026-04-01T10:00:00Z'), 'test'), 'stale');
    // A full resync sends the newest known hash once.
    assert.deepEqual(o.requeueKnown(['shared']), [{ connector: 'corp2', anchor: 'shared' }]);
    waiting = waitingFor(o, 'shared');
    assert.equal(waiting.length, 1);
    assert.equal(waiting[0]!.hash, hashes.Newer);
    // An arriving change (a notification) older than what is known (the clock was set back) is
    // dated after what either connector knows: the cloud keeps the newest, so it must be newest.
    o.complete(waiting[0]!);
    assert.equal(o.enqueueMany([{ connector: 'corp', anchor: 'shared', hash: hashes.Again!, changedAt: new Date('2026-04-15T12:00:00Z'), source: 'pcn', arrival: true }])[0], 'queued');
    waiting = waitingFor(o, 'shared');
    assert.equal(waiting[0]!.hash, hashes.Again);
    assert.ok(waiting[0]!.changedAt > '2026-05-02T10:00:00.000Z', `dated after the newest known change: ${waiting[0]!.changedAt}`);
  });

  it('a change dated beyond the allowed clock skew is dated by its arrival, and a stored future date never blocks a real change', () => {
    let clock = Date.parse('2026-06-01T10:00:00Z');
    const o = outbox(() => clock);
    assert.equal(o.enqueue('corp', 'clock-ahead', hashes.Future!, new Date('2036-01-01T00:00:00Z'), 'agent'), 'queued');
    assert.equal(waitingFor(o, 'clock-ahead')[0]!.changedAt, '2026-06-01T10:00:00.000Z', 'dated by its arrival');
    clock += 1000;
    assert.equal(o.enqueue('corp', 'clock-ahead', hashes.Real!, new Date(clock), 'agent'), 'queued', 'a real change a second later wins');
    // Within the allowed skew a date is kept as it came.
    const soon = new Date(clock + 60_000);
    assert.equal(o.enqueue('corp', 'clock-ahead', hashes.Again!, soon, 'agent'), 'queued');
    assert.equal(waitingFor(o, 'clock-ahead')[0]!.changedAt, soon.toISOString());
    // A future date stored before dates were bounded (written here directly) does not block either.
    env.db.prepare("UPDATE phs_users SET changed_at = '2036-01-01T00:00:00.000Z' WHERE anchor = 'clock-ahead'").run();
    clock += 1000;
    assert.equal(o.enqueue('corp', 'clock-ahead', hashes.Real!, new Date(clock), 'agent'), 'queued');
    assert.equal(waitingFor(o, 'clock-ahead')[0]!.hash, hashes.Real);
    // ... nor an arriving change, which is dated after the known change only when that is believable.
    env.db.prepare("UPDATE phs_users SET changed_at = '2036-01-01T00:00:00.000Z' WHERE anchor = 'clock-ahead'").run();
    assert.equal(o.enqueueMany([{ connector: 'corp', anchor: 'clock-ahead', hash: hashes.Again!, changedAt: new Date(clock), source: 'pcn', arrival: true }])[0], 'queued');
    assert.equal(waitingFor(o, 'clock-ahead')[0]!.changedAt, new Date(clock).toISOString(), 'not 2036 + 1 ms');
  });

  it('a new cloud object makes a waiting change a new write: an answer in flight about the old object does not complete it', () => {
    const o = outbox();
    o.enqueue('corp', 'recreated', hashes.Real!, new Date('2026-07-01T10:00:00Z'), 'test');
    const inFlight = waitingFor(o, 'recreated')[0]!;
    o.requeueForCloudObjects(['recreated']); // the export re-created the user's cloud object meanwhile
    o.complete(inFlight); // Success, but from the old object
    const left = waitingFor(o, 'recreated');
    assert.equal(left.length, 1, 'still waits for the new object');
    assert.equal(left[0]!.hash, hashes.Real);
  });

  it('a change that waited for its export is due at once when the user is exported, and no longer counts as waiting for it', () => {
    const o = outbox();
    o.enqueue('corp', 'late-export', hashes.Real!, new Date('2026-07-02T10:00:00Z'), 'agent');
    const [item] = waitingFor(o, 'late-export');
    o.retry(item!, Date.now() + 3_600_000, 'TargetNotExported');
    o.requeueForCloudObjects(['late-export']);
    const [now] = waitingFor(o, 'late-export');
    assert.ok(now, 'due now');
    // The hourly expiry of changes waiting for their export must not drop it before it is delivered.
    assert.deepEqual(o.expireUnexported(new Date(Date.now() + 1000).toISOString()), []);
    assert.equal(waitingFor(o, 'late-export').length, 1);
  });
});

describe('password outbox after SIGKILL', () => {
  it('keeps every accepted change when the process is killed right after accepting it', async () => {
    const { spawnSync } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const path = await import('node:path');
    const env = makeEnv();
    try {
      const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
      const code = `
        import { openDatabase } from ${JSON.stringify(path.join(root, 'src/store/database.ts'))};
        import { EventLog } from ${JSON.stringify(path.join(root, 'src/events/log.ts'))};
        import { PasswordPipeline } from ${JSON.stringify(path.join(root, 'src/passwords/pipeline.ts'))};
        import { MIGRATIONS, addUser } from ${JSON.stringify(path.join(root, 'test/passwords/sources/fixtures.ts'))};
        const db = openDatabase(process.env.DB, MIGRATIONS);
        addUser(db, { sam: 'killed', anchor: 'anchor-killed' });
        const p = new PasswordPipeline({ db, cloud: () => { throw new Error('offline'); }, events: new EventLog(db), key: Buffer.from(process.env.KEY, 'base64') });
        await p.acceptPassword('killed', 'Killed-Passw0rd');
        process.kill(process.pid, 'SIGKILL');
      `;
      env.db.close();
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
        cwd: root,
        env: { ...process.env, DB: env.dbFile, KEY: env.key.toString('base64') },
        encoding: 'utf8',
      });
      assert.equal(r.signal, 'SIGKILL', r.stderr);
      env.reopen();
      const item = new Outbox(env.db, new PasswordKeys(env.key)).due(10, new Set()).find((i) => i.anchor === 'anchor-killed');
      assert.ok(item, 'the change survived the SIGKILL');
      const { verifyOrgIdHash } = await import('../../src/passwords/hash.js');
      assert.ok(await verifyOrgIdHash('Killed-Passw0rd', item.hash!));
    } finally {
      env.cleanup();
    }
  });
});
