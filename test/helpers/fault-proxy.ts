/**
 * A loopback proxy in front of the real cloud directory that can make it answer as a cloud in
 * trouble does — the only way to get those answers from a healthy cloud on demand:
 *  - `down`: every request answered 503 (with `Retry-After` when set), nothing forwarded;
 *  - `tokenAnswer`: the token endpoint's answer replaced (e.g. the locked answer documented for the
 *    cloud's smart lockout), nothing forwarded.
 * Everything else passes straight through, and every request is counted by path.
 */
import { buffer } from 'node:stream/consumers';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';

export interface CannedAnswer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface FaultProxy {
  url: string;
  /** Answer every request with 503 (and this Retry-After in seconds, when given). */
  down: { retryAfter?: number } | undefined;
  /** Answer POST /oauth2/token with this instead of forwarding it. */
  tokenAnswer: CannedAnswer | undefined;
  /** Requests seen, by path (without query). */
  readonly seen: Map<string, number>;
  /** Requests answered 503 by the proxy itself. */
  readonly refused503: number;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const state = { down: undefined as FaultProxy['down'], tokenAnswer: undefined as CannedAnswer | undefined, refused503: 0 };
  const seen = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await buffer(req);
      const p = (req.url ?? '/').split('?')[0]!;
      seen.set(p, (seen.get(p) ?? 0) + 1);
      if (state.down) {
        state.refused503++;
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (state.down.retryAfter !== undefined) headers['retry-after'] = String(state.down.retryAfter);
        res.writeHead(503, headers).end(JSON.stringify({ error: 'service_unavailable' }));
        return;
      }
      if (state.tokenAnswer && p === '/oauth2/token') {
        const a = state.tokenAnswer;
        res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers }).end(JSON.stringify(a.body));
        return;
      }
      try {
        const headers = { ...req.headers };
        delete headers.host;
        delete headers.connection;
        delete headers['content-length'];
        delete headers['transfer-encoding'];
        const up = await request(`${target}${req.url ?? '/'}`, { method: req.method as 'POST', headers, body: body.length ? body : undefined });
        const text = Buffer.from(await up.body.arrayBuffer());
        const out: Record<string, string> = { 'content-type': String(up.headers['content-type'] ?? 'application/json') };
        for (const h of ['etag', 'retry-after', 'www-authenticate']) if (typeof up.headers[h] === 'string') out[h] = up.headers[h];
        if (!res.destroyed) res.writeHead(up.statusCode, out).end(text);
      } catch {
        if (!res.destroyed) res.writeHead(502).end();
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get down() {
      return state.down;
    },
    set down(v) {
      state.down = v;
    },
    get tokenAnswer() {
      return state.tokenAnswer;
    },
    set tokenAnswer(v) {
      state.tokenAnswer = v;
    },
    seen,
    get refused503() {
      return state.refused503;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
