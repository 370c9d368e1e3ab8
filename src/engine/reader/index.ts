/**
 * A directory connector's full import, read on a thread of its own (issue 13).
 *
 * The LDAP connection, the BER decoding of every entry, its mapping to a source object and its
 * preparation for staging (staging.ts: NT hashes out, cleaning, member rows, content hash, the
 * stored text) are CPU on the event loop that stages, syncs and exports the same objects — in the
 * 100k initial cycle a quarter of the sync process's main thread. So the connector's own
 * fullImport() runs on a reader thread (read-worker.ts), which prepares each page, and the event
 * loop only writes what comes over (a structured clone costs it a fraction of the work).
 *
 * Nothing else changes: a page is read only when the engine asks for it (it reads one page ahead,
 * engine/import.ts readAhead, and dates the page's password hashes by that), the secret is read
 * on the event loop when the import starts (as the connect would), errors come back with their
 * code (the LDAP failures with their class and fields: protocol.ts), and close() ends an import still running. Deltas, test()
 * and watermarks stay on the event loop: they are small. An LDIF file is read there too.
 *
 * Reader threads are kept for READER_IDLE_MS after an import (unreferenced: they never keep a
 * process alive), so a service's next cycle and a test file's next import do not start one again.
 */
import type { Worker } from 'node:worker_threads';
import { moduleWorker } from '../../core/module-worker.js';
import { IdsyncError } from '../../core/errors.js';
import type { SourceConnectorConfig } from '../../config/schema.js';
import type { SecretResolver } from '../../connectors/types.js';
import type { PreparedPage } from '../staging.js';
import { errorFromWire, type FromReader, type OffThreadConfig, type ToReader } from './protocol.js';

/** How long an idle reader thread is kept for the next import. */
export const READER_IDLE_MS = 30_000;

/**
 * The reader thread's young generation, in MB. A page of entries read ahead, its BER buffers and
 * its prepared objects outlive V8's default young generation, so each page was copied and promoted
 * by the scavenger: with this the 100k initial cycle's sync process spends 0.7–1 s less CPU
 * (bench/README.md). A process's heap flags cannot be changed at run time; a worker's limits can.
 */
export const READER_YOUNG_GENERATION_MB = 96;

/** One reader thread: a request at a time, answered in order. */
class Reader {
  private pending: { resolve: (m: FromReader) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  private idle: NodeJS.Timeout | undefined;

  constructor(private readonly worker: Worker) {
    worker.on('message', (m: FromReader) => {
      const p = this.pending;
      this.pending = undefined;
      this.worker.unref();
      p?.resolve(m);
    });
    const fail = (err: unknown) => {
      this.failure ??= new IdsyncError('INTERNAL', `the import's reader thread stopped: ${err instanceof Error ? err.message : `exit code ${String(err)}`}`, {
        hint: 'Run the cycle again; if it keeps failing, report it with the log.',
      });
      const p = this.pending;
      this.pending = undefined;
      p?.reject(this.failure);
    };
    worker.on('error', fail);
    worker.on('exit', fail);
    worker.unref();
  }

  get alive(): boolean {
    return this.failure === undefined;
  }

  /** Sends a message that has no answer. */
  post(m: ToReader): void {
    if (this.failure) throw this.failure;
    this.worker.postMessage(m);
  }

  /** Sends a message and waits for its answer (the thread keeps the process alive meanwhile). */
  request(m: ToReader): Promise<FromReader> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.ref();
      this.worker.postMessage(m);
    });
  }

  /** Back in the pool: ended after READER_IDLE_MS unless an import takes it first. */
  park(onExpire: () => void): void {
    this.idle = setTimeout(onExpire, READER_IDLE_MS);
    this.idle.unref();
  }

  unpark(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
  }

  async terminate(): Promise<void> {
    this.unpark();
    this.failure ??= new IdsyncError('INTERNAL', 'the import was closed while it was read');
    const p = this.pending;
    this.pending = undefined;
    p?.reject(this.failure);
    await this.worker.terminate().catch(() => undefined);
  }
}

const parked: Reader[] = [];

function takeReader(): Reader {
  for (;;) {
    const r = parked.pop();
    if (!r) return new Reader(moduleWorker(import.meta.url, 'read-worker', { resourceLimits: { maxYoungGenerationSizeMb: READER_YOUNG_GENERATION_MB } }));
    r.unpark();
    if (r.alive) return r;
  }
}

function parkReader(r: Reader): void {
  parked.push(r);
  r.park(() => {
    const at = parked.indexOf(r);
    if (at >= 0) parked.splice(at, 1);
    void r.terminate();
  });
}

/** A full import read and prepared on a reader thread (importConnector's `reader`). */
export interface FullImportReader {
  /** The pages, prepared; read only as they are asked for. */
  pages(): AsyncGenerator<PreparedPage>;
  /** Ends an import still being read (its thread and connection). Safe to call twice. */
  close(): Promise<void>;
}

/** The reader of a directory connector (AD, LDAP); undefined for a kind read on the event loop (LDIF). */
export function fullImportReader(cfg: SourceConnectorConfig, secret: SecretResolver): FullImportReader | undefined {
  if (cfg.type !== 'ad' && cfg.type !== 'ldap') return undefined;
  const directory: OffThreadConfig = cfg;
  const live = new Set<Reader>();

  async function* pages(): AsyncGenerator<PreparedPage> {
    const password = await secret();
    const reader = takeReader();
    live.add(reader);
    // Whether the thread ended its import itself (done, an error, or stopped): then it can serve another.
    let ended = false;
    try {
      reader.post({ type: 'start', cfg: directory, secret: password });
      for (;;) {
        const m = await reader.request({ type: 'next' });
        if (m.type === 'page') {
          // A Buffer crosses threads as a plain Uint8Array: a Buffer again, on the same memory.
          for (const h of m.page.hashes) h.nt = Buffer.from(h.nt.buffer, h.nt.byteOffset, h.nt.byteLength);
          yield m.page;
          continue;
        }
        ended = true;
        if (m.type === 'error') throw errorFromWire(m.error);
        return;
      }
    } finally {
      // Stopped early (the engine failed on a page, or close()): the thread closes its connection.
      if (!ended && reader.alive && live.has(reader)) ended = (await reader.request({ type: 'stop' }).catch(() => undefined))?.type === 'stopped';
      live.delete(reader);
      if (ended && reader.alive) parkReader(reader);
      else await reader.terminate();
    }
  }

  return {
    pages,
    async close() {
      const running = [...live];
      live.clear();
      await Promise.all(running.map((r) => r.terminate()));
    },
  };
}
