/**
 * The hashing threads yield to the event loop (src/passwords/pool-priority.ts): a password pipeline
 * lowers the priority of libuv's pool threads, and only theirs. Each case runs in a child process
 * (the change is once per process, and the threads are the child's own). Which threads are the
 * pool is checked independently of how the code finds them: the threads that did the PBKDF2 work
 * of a burst of hashes (their CPU time in /proc) must be exactly the ones lowered.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { getPriority } from 'node:os';
import { describe, test } from 'node:test';
import { DEFAULT_HASH_POOL_NICE, hashPoolNice } from '../../src/passwords/pool-priority.js';
import { ROOT } from '../helpers/processes.js';

const linux = process.platform === 'linux';

/** Child: opens a pipeline, waits, hashes a burst; prints each thread's nice value and CPU time during the burst. */
const CHILD = `
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { allMigrations } from ${JSON.stringify(path.join(ROOT, 'src/app/migrations.ts'))};
import { EventLog } from ${JSON.stringify(path.join(ROOT, 'src/events/log.ts'))};
import { orgIdHash, verifyOrgIdHash } from ${JSON.stringify(path.join(ROOT, 'src/passwords/hash.ts'))};
import { PasswordPipeline } from ${JSON.stringify(path.join(ROOT, 'src/passwords/pipeline.ts'))};
import { openDatabase } from ${JSON.stringify(path.join(ROOT, 'src/store/database.ts'))};
const db = openDatabase(':memory:', allMigrations);
const pipeline = new PasswordPipeline({ db, cloud: () => { throw new Error('no cloud here'); }, events: new EventLog(db), key: randomBytes(32) });
const nices = () => readdirSync('/proc/self/task').map((t) => getPriority(Number(t)));
// Constructed, no hash yet: nothing changes (a service without password traffic keeps its pool).
await orgIdHash('warm-up: the pool exists');
await sleep(300);
const beforeFirstHash = nices();
await pipeline.acceptNtHash('corp', 'anchor-1', Buffer.alloc(16, 7));
const ticks = () => Object.fromEntries(readdirSync('/proc/self/task').map((t) => {
  const stat = readFileSync('/proc/self/task/' + t + '/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [t, Number(f[11]) + Number(f[12])]; // utime + stime
}));
// The pipeline's change runs in the background: give it a moment, then measure a burst of hashes.
await sleep(500);
const before = ticks();
const hashes = await Promise.all(Array.from({ length: 800 }, (_, i) => orgIdHash('Pool-' + i, { iterations: 20000 })));
const after = ticks();
const ok = await verifyOrgIdHash('Pool-7', hashes[7]);
const threads = Object.keys(after).map((t) => ({ tid: Number(t), nice: getPriority(Number(t)), cpu: after[t] - (before[t] ?? 0) }));
console.log(JSON.stringify({ main: process.pid, mainNice: getPriority(), beforeFirstHash, threads, ok }));
`;

interface ChildReport {
  main: number;
  mainNice: number;
  /** Every thread's nice value after the pipeline was constructed, before its first hash. */
  beforeFirstHash: number[];
  threads: { tid: number; nice: number; cpu: number }[];
  ok: boolean;
}

function runChild(env: NodeJS.ProcessEnv): ChildReport {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], {
    cwd: ROOT,
    env: { ...process.env, UV_THREADPOOL_SIZE: '4', ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

describe('the hashing threads yield to the event loop', { skip: linux ? false : 'thread priorities are changed on Linux only' }, () => {
  // A process already at nice 19 (a test run under `nice -n 19`) has nothing lower to go to.
  const atBottom = getPriority() >= 19;

  test('from its first hash, a password pipeline lowers exactly the pool threads, by 10, and not the event loop', { skip: atBottom && 'the tests run at nice 19' }, () => {
    const out = runChild({ IDSYNC_HASH_POOL_NICE: '' });
    assert.ok(out.ok, 'hashes computed on the lowered threads verify');
    assert.ok(out.beforeFirstHash.every((n) => n === out.mainNice), `constructing a pipeline changes nothing: ${JSON.stringify(out.beforeFirstHash)}`);
    const lowered = out.threads.filter((t) => t.nice !== out.mainNice);
    assert.ok(lowered.every((t) => t.nice === Math.min(19, out.mainNice + DEFAULT_HASH_POOL_NICE)), JSON.stringify(lowered));
    assert.equal(lowered.length, 4, `the 4 pool threads are lowered: ${JSON.stringify(out.threads)}`);
    assert.equal(out.threads.find((t) => t.tid === out.main)?.nice, out.mainNice, 'the event loop keeps its priority');
    // The threads that did the hashing are the lowered ones: the four busiest of the burst.
    const busiest = [...out.threads].sort((a, b) => b.cpu - a.cpu).filter((t) => t.tid !== out.main).slice(0, 4);
    assert.deepEqual(busiest.map((t) => t.tid).sort(), lowered.map((t) => t.tid).sort(), `the hashing threads: ${JSON.stringify(out.threads)}`);
    assert.ok(busiest.every((t) => t.cpu > 0));
    const others = out.threads.filter((t) => !lowered.includes(t));
    assert.ok(others.every((t) => t.nice === out.mainNice), 'no other thread changed');
  });

  test('IDSYNC_HASH_POOL_NICE=0 leaves every thread as it was', () => {
    const out = runChild({ IDSYNC_HASH_POOL_NICE: '0' });
    assert.ok(out.ok);
    assert.ok(out.threads.every((t) => t.nice === out.mainNice), JSON.stringify(out.threads));
  });

  test('IDSYNC_HASH_POOL_NICE is read as a whole number from 0 to 19, else the default', () => {
    assert.equal(hashPoolNice({}), DEFAULT_HASH_POOL_NICE);
    assert.equal(hashPoolNice({ IDSYNC_HASH_POOL_NICE: '0' }), 0);
    assert.equal(hashPoolNice({ IDSYNC_HASH_POOL_NICE: '5' }), 5);
    assert.equal(hashPoolNice({ IDSYNC_HASH_POOL_NICE: '40' }), 19);
    assert.equal(hashPoolNice({ IDSYNC_HASH_POOL_NICE: '-5' }), 0, 'never raised above the process');
    assert.equal(hashPoolNice({ IDSYNC_HASH_POOL_NICE: 'low' }), DEFAULT_HASH_POOL_NICE);
  });
});
