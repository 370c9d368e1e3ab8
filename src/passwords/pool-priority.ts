/**
 * The hashing threads yield to the event loop.
 *
 * PBKDF2 runs on libuv's pool (4 threads by default), which on a small machine has more threads
 * than cores: 4 threads and the event loop on 2 cores each get about 2/5 of a core from Linux's
 * fair scheduler. The event loop is then the slow stage: a finished hash waits for it to write the
 * change and answer its caller, and the caller's next hash waits for that answer, so the pool runs
 * dry while the event loop catches up (measured with `IDSYNC_BENCH_TRACE=1 npm run bench:passwords`:
 * fewer than 2 hashes in flight for about 30 % of the notification path's time). The same starving
 * delays every other answer of the process (a DC's notification, /healthz, the console) while a
 * large initial password sync runs.
 *
 * So the pool's threads run at a lower priority (nice +10 from the process's own, by default),
 * from the first hash a password pipeline computes on: the event loop gets a core as soon as it
 * has work, and the pool uses all the rest. On an otherwise idle machine the hashing loses nothing
 * (a nice value only weighs against other runnable threads); on a busy one, other processes at the
 * same nice value come before idsync's hashing, which is the trade a background job should make.
 * The pool also serves the process's file, DNS and compression work, which runs at the same lower
 * priority from then on (a nice value cannot be raised again without privilege).
 * `IDSYNC_HASH_POOL_NICE=0` leaves the pool as it is.
 *
 * Finding the pool's threads: libuv does not name them on Node 20 and Node has no API for them, so
 * each pool thread is asked who it is: `readlink('/proc/thread-self')` runs on the thread that
 * serves the request and answers `<pid>/task/<tid>`. Linux only (elsewhere this does nothing); a
 * nice value can only be raised without privilege, so this never needs any.
 */
import { readlinkSync } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { getPriority, setPriority } from 'node:os';
import { hashPoolThreads } from './hash.js';

/** How much lower than the process the pool runs, unless IDSYNC_HASH_POOL_NICE says otherwise. */
export const DEFAULT_HASH_POOL_NICE = 10;
/** Rounds of concurrent look-ups before giving up on a thread that never answered. */
const PROBE_ROUNDS = 32;
const MAX_NICE = 19;

/** The nice increment configured (0: off). */
export function hashPoolNice(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.IDSYNC_HASH_POOL_NICE;
  if (raw === undefined || raw.trim() === '') return DEFAULT_HASH_POOL_NICE;
  const n = Number(raw);
  return Number.isInteger(n) ? Math.max(0, Math.min(MAX_NICE, n)) : DEFAULT_HASH_POOL_NICE;
}

export interface PoolPriority {
  /** The pool threads found (thread ids). */
  threads: number[];
  /** How many of them this call lowered (none: already that low, e.g. a process at nice 19, or not permitted). */
  lowered: number;
  /** The nice value they were set to (undefined when none was changed). */
  nice: number | undefined;
}

const unchanged: PoolPriority = Object.freeze({ threads: [], lowered: 0, nice: undefined });
let done: Promise<PoolPriority> | undefined;

/**
 * Lowers the priority of libuv's pool threads once per process (later calls return the first
 * call's result). Never rejects: a thread that cannot be found or changed is left as it is.
 */
export function lowerHashPoolPriority(): Promise<PoolPriority> {
  done ??= lower(hashPoolNice()).catch(() => unchanged);
  return done;
}

const tidOf = (link: string): number | undefined => {
  const m = /\/task\/(\d+)$/.exec(link);
  return m ? Number(m[1]) : undefined;
};

async function lower(increment: number): Promise<PoolPriority> {
  if (process.platform !== 'linux' || increment <= 0) return unchanged;
  const self = tidOf(readlinkSync('/proc/thread-self'));
  const want = Math.min(MAX_NICE, getPriority() + increment);
  const threads = new Set<number>();
  const size = hashPoolThreads();
  // Several requests at once wake several threads; a thread busy with a long hash answers in a
  // later round. Without the thread's own answer there is no telling a pool thread from V8's.
  for (let round = 0; round < PROBE_ROUNDS && threads.size < size; round++) {
    const links = await Promise.all(Array.from({ length: 4 * size }, () => readlink('/proc/thread-self').catch(() => '')));
    for (const link of links) {
      const tid = tidOf(link);
      if (tid !== undefined && tid !== self) threads.add(tid);
    }
  }
  let lowered = 0;
  for (const tid of threads) {
    try {
      if (getPriority(tid) < want) {
        setPriority(tid, want);
        lowered++;
      }
    } catch {
      // gone, or not ours to change: it keeps its priority
    }
  }
  return { threads: [...threads], lowered, nice: lowered > 0 ? want : undefined };
}
