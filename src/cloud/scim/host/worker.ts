/**
 * The SCIM worker thread: its own SQLite connection (WAL) to the cloud database and the SCIM
 * service on it. Requests are handled one at a time, in arrival order (writes are serialised, as
 * the single gate on the main thread serialised them before), so the main thread's event loop,
 * which serves /healthz, sign-in and the portal, never runs SCIM CPU work.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase } from '../../../store/database.js';
import { ScimService, type ScimLimits } from '../service.js';
import { createScimHandler, type ScimWireRequest, type ScimWireResponse } from './handler.js';
import { stepAside, writing } from './write-intent.js';

export interface ScimWorkerData {
  file: string;
  limits: ScimLimits;
  /** Bulk: milliseconds of work per transaction (bounds how long a main-thread write waits for the lock). */
  sliceMs: number;
  /** The main thread's write counter (write-intent.ts): the worker steps aside while it is set. */
  intent: Int32Array;
}

export type ToWorker = { kind: 'request'; id: number; req: ScimWireRequest } | { kind: 'close' };
export type FromWorker = { kind: 'response'; id: number; res: ScimWireResponse } | { kind: 'closed' };

const port = parentPort;
if (!port) throw new Error('host/worker.ts runs as a worker thread');
const data = workerData as ScimWorkerData;
const db = openDatabase(data.file);
const intent = data.intent;
const handle = createScimHandler(new ScimService(db, data.limits), {
  sliceMs: data.sliceMs,
  yieldNow: () => writing(intent),
  between: async () => stepAside(intent),
});

let queue: Promise<void> = Promise.resolve();
port.on('message', (msg: ToWorker) => {
  queue = queue.then(async () => {
    if (msg.kind === 'close') {
      if (db.open) db.close();
      port.postMessage({ kind: 'closed' } satisfies FromWorker);
      port.close();
      return;
    }
    stepAside(intent);
    const res = await handle(msg.req);
    // The body is this thread's own buffer: handed over, not copied.
    port.postMessage({ kind: 'response', id: msg.id, res } satisfies FromWorker, res.body ? [res.body.buffer as ArrayBuffer] : []);
  });
});
