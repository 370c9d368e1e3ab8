/**
 * The SCIM worker thread: a store of its own (a SQLite connection to cloud.db in WAL mode, or a pg
 * pool), built by the main thread's factory, and the SCIM service on it. Requests are handled one at a time, in arrival order (writes are serialised, as
 * the single gate on the main thread serialised them before), so the main thread's event loop,
 * which serves /healthz, sign-in and the portal, never runs SCIM CPU work.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openStore, type StoreSpec } from '../../store/open.js';
import { ScimService, type ScimLimits } from '../service.js';
import { createScimHandler, type ScimWireRequest, type ScimWireResponse } from './handler.js';
import { stepAside, writing } from './write-intent.js';

export interface ScimWorkerData {
  /** How to open the store (a PostgreSQL password travels here, never printed). */
  store: StoreSpec;
  limits: ScimLimits;
  /** Bulk: milliseconds of work per transaction (bounds how long a main-thread write waits for the lock). */
  sliceMs: number;
  /** SQLite: the main thread's write counter (write-intent.ts); the worker steps aside while it is set. */
  intent?: Int32Array;
}

export type ToWorker = { kind: 'request'; id: number; req: ScimWireRequest } | { kind: 'close' };
export type FromWorker = { kind: 'response'; id: number; res: ScimWireResponse } | { kind: 'closed' };

const port = parentPort;
if (!port) throw new Error('host/worker.ts runs as a worker thread');
const data = workerData as ScimWorkerData;
const intent = data.intent;
// Opened once, before the first request is worked on. A failure (its message carries no password)
// is unhandled here on purpose: the worker ends, and the host answers its requests 500 and logs it.
const ready = openStore(data.store).then((store) => ({
  store,
  handle: createScimHandler(new ScimService(store, data.limits), {
    sliceMs: data.sliceMs,
    ...(intent ? { yieldNow: () => writing(intent), between: async () => stepAside(intent) } : {}),
  }),
}));

let queue: Promise<unknown> = ready;
port.on('message', (msg: ToWorker) => {
  queue = queue.then(async () => {
    const { store, handle } = await ready;
    if (msg.kind === 'close') {
      await store.close();
      port.postMessage({ kind: 'closed' } satisfies FromWorker);
      port.close();
      return;
    }
    if (intent) stepAside(intent);
    const res = await handle(msg.req);
    // The body is this thread's own buffer: handed over, not copied.
    port.postMessage({ kind: 'response', id: msg.id, res } satisfies FromWorker, res.body ? [res.body.buffer as ArrayBuffer] : []);
  });
});
