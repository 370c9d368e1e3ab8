/**
 * Where SCIM requests are worked on. The HTTP layer (routes.ts) hands a ScimWireRequest to a host
 * and sends back the ScimWireResponse; it never sees the service. Two hosts:
 *
 *  - WorkerHost (the default for a database file or a PostgreSQL URL): one worker thread runs the
 *    service on a store of its own, built by the same factory as the main thread's (store/open.ts):
 *    its own SQLite connection, or its own pg pool. Body parsing, validation, PATCH, filters, queries
 *    and JSON serialisation all happen there, so a heavy SCIM request cannot hold the event loop that
 *    serves /healthz, sign-in and the portal. If the worker dies, its requests answer 500 and the
 *    next request starts a new one.
 *  - InProcessHost (an in-memory SQLite database, which a second connection cannot share): the same
 *    handler on this thread, one request at a time.
 *
 * Only SQLite needs the write hand-off of write-intent.ts (one writer at a time, and a waiting
 * writer blocks its thread); PostgreSQL serialises writers with row locks and unique indexes.
 */
import type { Worker } from 'node:worker_threads';
import { moduleWorker } from '../../../core/module-worker.js';
import type { StoreSpec } from '../../store/open.js';
import type { Sql } from '../../store/sql.js';
import { SqliteStore } from '../../store/sqlite.js';
import { BULK_SLICE_MS } from '../bulk.js';
import { ScimService, type ScimLimits } from '../service.js';
import { createScimHandler, SCIM_CONTENT_TYPE, type ScimHandler, type ScimWireRequest, type ScimWireResponse } from './handler.js';
import type { FromWorker, ScimWorkerData, ToWorker } from './worker.js';
import { announceWrites } from './write-intent.js';

export interface ScimHost {
  readonly kind: 'worker' | 'in-process';
  handle(req: ScimWireRequest): Promise<ScimWireResponse>;
  /** Requests handed over and not answered yet. */
  readonly inFlight: number;
  close(): Promise<void>;
}

export type ScimHosting = 'worker' | 'in-process';

/**
 * Bulk work per SQLite transaction in the worker (a Bulk of 100 creates is one). The main thread
 * writes too, and a slice also ends early when it does (write-intent.ts).
 */
export const WORKER_BULK_SLICE_MS = 25;

/**
 * `sql` is this thread's store (the in-process host works on it); `spec` says how the worker opens
 * its own (absent for an in-memory database, which is hosted in-process).
 */
export function createScimHost(sql: Sql, spec: StoreSpec | undefined, limits: ScimLimits, hosting?: ScimHosting): ScimHost {
  const memory = sql instanceof SqliteStore && sql.db.memory;
  const mode = hosting ?? (spec && !memory ? 'worker' : 'in-process');
  if (mode === 'worker') {
    if (!spec || memory) throw new Error('the SCIM worker needs a database file or URL: an in-memory database is hosted in-process');
    // SQLite: this thread's writes through `sql` make the worker step aside (write-intent.ts).
    const intent = spec.engine === 'sqlite' && sql instanceof SqliteStore ? announceWrites(sql.db) : undefined;
    return new WorkerHost({ store: spec, limits, sliceMs: WORKER_BULK_SLICE_MS, ...(intent ? { intent } : {}) });
  }
  return new InProcessHost(createScimHandler(new ScimService(sql, limits), { sliceMs: BULK_SLICE_MS }));
}

const encoder = new TextEncoder();

/** The answer to a request the host lost (its worker died): a SCIM 500, nothing internal in it. */
function lostResponse(err: Error): ScimWireResponse {
  const body = { schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '500', detail: 'internal error in the SCIM service; see the cloud directory log' };
  return {
    status: 500,
    headers: { 'content-type': SCIM_CONTENT_TYPE },
    body: encoder.encode(JSON.stringify(body)),
    faults: [{ context: 'the SCIM worker failed', name: err.name, message: err.message, ...(err.stack ? { stack: err.stack } : {}) }],
  };
}

class InProcessHost implements ScimHost {
  readonly kind = 'in-process';
  inFlight = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly handler: ScimHandler) {}

  handle(req: ScimWireRequest): Promise<ScimWireResponse> {
    this.inFlight++;
    const run = this.queue.then(() => this.handler(req));
    this.queue = run.catch(() => undefined);
    return run.finally(() => this.inFlight--);
  }

  async close(): Promise<void> {
    await this.queue;
  }
}

/** The SCIM worker thread (worker.ts). */
function spawnWorker(workerData: ScimWorkerData): Worker {
  return moduleWorker(import.meta.url, 'worker', { workerData });
}

class WorkerHost implements ScimHost {
  readonly kind = 'worker';
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, (res: ScimWireResponse) => void>();
  private closing: Promise<void> | undefined;

  constructor(private readonly data: ScimWorkerData) {}

  get inFlight(): number {
    return this.pending.size;
  }

  private start(): Worker {
    const w = spawnWorker(this.data);
    const lose = (err: Error) => {
      if (this.worker === w) this.worker = undefined;
      for (const resolve of this.pending.values()) resolve(lostResponse(err));
      this.pending.clear();
    };
    w.on('message', (msg: FromWorker) => {
      if (msg.kind !== 'response') return;
      const resolve = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      resolve?.(msg.res);
    });
    w.on('error', lose);
    w.on('exit', (code) => lose(new Error(`the SCIM worker exited with code ${code}`)));
    return w;
  }

  handle(req: ScimWireRequest): Promise<ScimWireResponse> {
    if (this.closing) return Promise.resolve(lostResponse(new Error('the SCIM host is closing')));
    const w = (this.worker ??= this.start());
    const id = this.nextId++;
    // A body that owns its whole buffer is handed over; a slice of a shared pool is copied.
    let body = req.body;
    const transfer: ArrayBuffer[] = [];
    if (body && body.byteOffset === 0 && body.byteLength === body.buffer.byteLength && body.buffer instanceof ArrayBuffer) transfer.push(body.buffer);
    else if (body) body = new Uint8Array(body);
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      w.postMessage({ kind: 'request', id, req: body ? { ...req, body } : req } satisfies ToWorker, transfer);
    });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const w = this.worker;
      if (!w) return;
      // Requests already handed over are answered first (the worker works in order), then it closes its database.
      const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
      w.postMessage({ kind: 'close' } satisfies ToWorker);
      const timer = setTimeout(() => void w.terminate(), 30_000);
      await exited;
      clearTimeout(timer);
    })();
    return this.closing;
  }
}
