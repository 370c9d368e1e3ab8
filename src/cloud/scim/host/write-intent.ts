/**
 * Two connections write cloud.db: the main thread's (sign-in counters, the audit log, password
 * hashes, accounts) and the SCIM worker's. SQLite lets one of them write at a time, and a write that
 * finds the lock taken waits in SQLite's busy handler: on the main thread that wait stops the event
 * loop, so /healthz and sign-in would wait for SCIM work after all. So the main thread announces
 * each write in shared memory, and the worker, which looks between requests and between Bulk
 * operations, commits what it has and steps aside until the main thread's write is done.
 */
import type { Database } from '../../../store/database.js';

const intents = new WeakMap<Database, Int32Array>();

/**
 * Makes every write through `db` (statements prepared from now on, and exec) count itself in the
 * returned shared counter while it runs. Idempotent per connection; call it before stores prepare
 * their statements.
 */
export function announceWrites(db: Database): Int32Array {
  const known = intents.get(db);
  if (known) return known;
  const intent = new Int32Array(new SharedArrayBuffer(4));
  const during = <T>(fn: () => T): T => {
    Atomics.add(intent, 0, 1);
    try {
      return fn();
    } finally {
      Atomics.sub(intent, 0, 1);
      Atomics.notify(intent, 0);
    }
  };
  const prepare = db.prepare.bind(db);
  db.prepare = ((source: string) => {
    const st = prepare(source);
    if (!st.reader) {
      const run = st.run.bind(st);
      st.run = (...params: unknown[]) => during(() => run(...params));
    }
    return st;
  }) as Database['prepare'];
  const exec = db.exec.bind(db);
  db.exec = (source: string) => during(() => exec(source));
  intents.set(db, intent);
  return intent;
}

/** True while the other side is writing (or waiting to). */
export const writing = (intent: Int32Array): boolean => Atomics.load(intent, 0) > 0;

/** Blocks this (worker) thread while the other side writes, at most `maxMs`: a flood of sign-ins must not stop SCIM for good. */
export function stepAside(intent: Int32Array, maxMs = 250): void {
  const deadline = performance.now() + maxMs;
  for (let v = Atomics.load(intent, 0); v > 0; v = Atomics.load(intent, 0)) {
    const left = deadline - performance.now();
    if (left <= 0) return;
    Atomics.wait(intent, 0, v, left);
  }
}
