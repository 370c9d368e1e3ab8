/**
 * A proxy in front of the cloud directory that slows down or holds its password-hash batches, and
 * slows down its SCIM Bulk requests: the only way to keep a batch "in flight" on demand (a crash
 * mid-batch, a slow cloud). Everything else passes straight through to the real cloud.
 */
import { buffer } from 'node:stream/consumers';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { PASSWORD_HASHES_PATH } from '../../src/passwords/delivery.js';

export interface SlowProxy {
  url: string;
  /** Every password-hash batch waits this long before it is forwarded. */
  delayMs: number;
  /** Every SCIM Bulk request waits this long before it is forwarded (a cloud slower than the engine). */
  bulkDelayMs: number;
  /** Password-hash batches being held now. */
  inFlight: number;
  /** Password-hash batches seen in all. */
  held: number;
  /** Holds the next password-hash batch until the returned function is called. */
  holdNext(): () => void;
  close(): Promise<void>;
}

export async function startSlowProxy(target: string): Promise<SlowProxy> {
  const state = { delayMs: 0, bulkDelayMs: 0, inFlight: 0, held: 0 };
  let gate: Promise<void> | undefined;
  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await buffer(req);
      const slow = (req.url ?? '').startsWith(PASSWORD_HASHES_PATH);
      if (slow) {
        state.inFlight++;
        state.held++;
        const g = gate;
        gate = undefined;
        if (g) await g;
        await sleep(state.delayMs);
      }
      if (state.bulkDelayMs > 0 && (req.url ?? '').startsWith('/scim/v2/Bulk')) await sleep(state.bulkDelayMs);
      try {
        const headers = { ...req.headers };
        delete headers.host;
        delete headers.connection;
        delete headers['content-length'];
        delete headers['transfer-encoding'];
        // Forwarded even when the caller died meanwhile: the cloud may store a hash the caller
        // never heard back about (re-sending it must be harmless).
        const up = await request(`${target}${req.url ?? '/'}`, { method: req.method as 'POST', headers, body: body.length ? body : undefined });
        const text = Buffer.from(await up.body.arrayBuffer());
        if (!res.destroyed) res.writeHead(up.statusCode, { 'content-type': String(up.headers['content-type'] ?? 'application/json') }).end(text);
      } catch {
        if (!res.destroyed) res.writeHead(502).end();
      } finally {
        if (slow) state.inFlight--;
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(v: number) {
      state.delayMs = v;
    },
    get bulkDelayMs() {
      return state.bulkDelayMs;
    },
    set bulkDelayMs(v: number) {
      state.bulkDelayMs = v;
    },
    get inFlight() {
      return state.inFlight;
    },
    get held() {
      return state.held;
    },
    holdNext() {
      let release!: () => void;
      gate = new Promise<void>((r) => (release = r));
      return release;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
