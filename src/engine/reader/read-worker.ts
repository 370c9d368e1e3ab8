/**
 * The full import's reader thread (index.ts): runs the directory connector's own fullImport()
 * here — the LDAP connection, the BER decoding and the entry-to-object mapping — prepares each
 * page for staging (staging.ts: NT hashes out, cleaning, member rows, content hash, stored text),
 * and hands it over when the event loop asks for it. One import at a time; the thread then waits
 * for the next start.
 */
import { parentPort } from 'node:worker_threads';
import { createDirectoryConnector } from '../../connectors/directory.js';
import type { SourceConnector, SourceObject } from '../../connectors/types.js';
import { dnUnicodeOf, preparePage } from '../staging.js';
import { errorToWire, type FromReader, type ToReader } from './protocol.js';

const port = parentPort;
if (!port) throw new Error('engine/reader/read-worker.ts runs as a worker thread');

let connector: SourceConnector | undefined;
let pages: AsyncIterator<SourceObject[]> | undefined;
let unicode = dnUnicodeOf('ldap');
let startError: unknown;

async function end(): Promise<void> {
  const c = connector;
  const it = pages;
  connector = undefined;
  pages = undefined;
  await it?.return?.().catch(() => undefined);
  await c?.close().catch(() => undefined);
}

async function handle(m: ToReader): Promise<void> {
  switch (m.type) {
    case 'start': {
      await end();
      const secret = m.secret; // the caller's, resolved for this import: read at the connect, as on its own thread
      try {
        connector = createDirectoryConnector(m.cfg, async () => secret);
        unicode = dnUnicodeOf(m.cfg.type);
        pages = connector.fullImport()[Symbol.asyncIterator]();
      } catch (err) {
        startError = err; // the answer to the first 'next'
      }
      return;
    }
    case 'next':
      try {
        if (startError !== undefined) {
          const err = startError;
          startError = undefined;
          throw err;
        }
        if (!pages) throw new Error('no import is running on the reader thread');
        const r = await pages.next();
        if (r.done) {
          await end();
          port!.postMessage({ type: 'done' } satisfies FromReader);
          return;
        }
        const page = preparePage(r.value, unicode, true);
        // NT hashes are views into Node's shared 8 KiB buffer pool, and a view crosses threads with
        // its whole pool slab: so they go over in one buffer of their own, moved (not copied), and
        // the originals are wiped here.
        const own = Buffer.allocUnsafeSlow(page.hashes.reduce((n, h) => n + h.nt.length, 0));
        let at = 0;
        for (const h of page.hashes) {
          const nt = own.subarray(at, (at += h.nt.copy(own, at)));
          h.nt.fill(0);
          h.nt = nt;
        }
        port!.postMessage({ type: 'page', page } satisfies FromReader, [own.buffer]);
      } catch (err) {
        await end();
        port!.postMessage({ type: 'error', error: errorToWire(err) } satisfies FromReader);
      }
      return;
    case 'stop':
      await end();
      port!.postMessage({ type: 'stopped' } satisfies FromReader);
      return;
  }
}

// One message at a time, in order: a start's close of an earlier import may wait on its socket,
// and the next page is only asked for after it.
let last: Promise<void> = Promise.resolve();
port.on('message', (m: ToReader) => {
  last = last.then(() => handle(m)).catch(() => undefined);
});
