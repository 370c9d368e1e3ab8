/**
 * The service's HTTP(S) server: /healthz /readyz /status /metrics, the DC agent's batches and
 * password change notifications, and the web console. The PCN endpoint carries passwords: plain
 * HTTP only on loopback (the service refuses other addresses without TLS). The logger logs method,
 * path and status only, never bodies or headers.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { CONSOLE_PREFIX, consolePlugin } from '../console/plugin.js';
import type { AttrIndex } from '../console/attr-index.js';
import type { SearchBudget } from '../console/search.js';
import type { EngineContext } from '../engine/context.js';
import type { CycleResult } from '../engine/cycle.js';
import {
  AGENT_BATCH_PATH,
  AGENT_TOKEN_CREDENTIAL,
  PCN_PATH,
  handleAgentBatch,
  handlePasswordChangeNotification,
  verifyBearer,
  type PasswordPipeline,
} from '../passwords/index.js';
import type { HealthReport } from './health.js';
import type { CycleRequest } from './scheduler.js';

export interface ServiceLoggerOptions {
  level?: string;
  /** Where JSON log lines go (default stdout). */
  stream?: NodeJS.WritableStream;
}

export interface ServiceHttpDeps {
  ctx: EngineContext;
  pipeline: PasswordPipeline;
  /** The console's attribute index (the service catches it up after each cycle). */
  attrIndex?: AttrIndex;
  searchBudget?: SearchBudget;
  registry: Registry;
  health: () => HealthReport;
  runNow: (request?: CycleRequest) => Promise<CycleResult | undefined>;
  /** Resolves when no cycle is in flight. */
  idle: () => Promise<void>;
  /** The listen address: the console is served only on loopback or under TLS. */
  host: string;
  tls?: { cert: string; key: string } | undefined;
  logger?: false | ServiceLoggerOptions | undefined;
}

const LOOPBACK_NAMES = new Set(['localhost', '::1', '[::1]']);

export function isLoopback(host: string): boolean {
  if (LOOPBACK_NAMES.has(host.toLowerCase())) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (host.toLowerCase().startsWith('::ffff:127.')) return true;
  return false;
}

export function createServiceServer(deps: ServiceHttpDeps): FastifyInstance {
  const base = {
    logger: loggerConfig(deps.logger),
    bodyLimit: 4 * 1024 * 1024,
    forceCloseConnections: true,
    return503OnClosing: true,
  };
  const tls = deps.tls;
  const app: FastifyInstance = tls
    ? (Fastify({ ...base, https: { cert: readFileSync(tls.cert), key: readFileSync(tls.key) } }) as unknown as FastifyInstance)
    : Fastify(base);

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    // Never echo a parser message: it may quote the body.
    const body =
      status === 413
        ? { error: { code: 'PAYLOAD_TOO_LARGE', message: 'the request body is too large' } }
        : status < 500
          ? { error: { code: 'BAD_REQUEST', message: 'the request could not be read (send JSON with content-type application/json)' } }
          : { error: { code: 'INTERNAL', message: 'internal error' } };
    return reply.code(status).send(body);
  });

  app.get('/healthz', async () => ({ status: 'alive' }));
  app.get('/readyz', async (_req, reply) => {
    const h = deps.health();
    return reply.code(h.ready ? 200 : 503).send({ ready: h.ready, reasons: h.notReady });
  });
  app.get('/status', async () => deps.health());
  app.get('/metrics', async (_req, reply) => {
    const text = await deps.registry.metrics();
    return reply.header('content-type', deps.registry.contentType).send(text);
  });

  const auth = async (req: FastifyRequest, reply: FastifyReply) => {
    // Read from the store on every request: a rotated token applies at once.
    const expected = deps.ctx.credentials.get(AGENT_TOKEN_CREDENTIAL);
    if (!verifyBearer(req.headers.authorization, expected)) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: { code: 'UNAUTHORIZED', message: 'a valid agent token is required', hint: 'Send Authorization: Bearer <token>; the token is set with `idsync credentials set agent --no-validate`.' } });
    }
    if (!deps.ctx.loaded.config.passwordHashSync.enabled) {
      return reply.code(503).send({
        error: { code: 'PASSWORD_HASH_SYNC_OFF', message: 'password hash synchronization is turned off on this service', hint: 'Turn it on with `idsync configure --task password-hash-sync --enable`, then `idsync service restart`.' },
      });
    }
  };
  app.post(AGENT_BATCH_PATH, { onRequest: auth }, async (req, reply) => {
    const r = await handleAgentBatch(deps.pipeline, req.body);
    return reply.code(r.statusCode).header('cache-control', 'no-store').send(r.body);
  });
  app.post(PCN_PATH, { onRequest: auth }, async (req, reply) => {
    const r = await handlePasswordChangeNotification(deps.pipeline, req.body);
    return reply.code(r.statusCode).header('cache-control', 'no-store').send(r.body);
  });
  // The web console (src/console/): only on loopback or under TLS, its own path and session.
  if (tls || isLoopback(deps.host)) {
    void app.register(consolePlugin, { prefix: CONSOLE_PREFIX, ctx: deps.ctx, health: () => deps.health(), runNow: (o) => deps.runNow(o), pipeline: deps.pipeline, idle: () => deps.idle(), secure: !!tls, ...(deps.attrIndex ? { attrIndex: deps.attrIndex } : {}), ...(deps.searchBudget ? { searchBudget: deps.searchBudget } : {}) });
  }
  return app;
}

function loggerConfig(logger: false | ServiceLoggerOptions | undefined): false | Record<string, unknown> {
  if (logger === false) return false;
  const opts = logger ?? {};
  return {
    level: opts.level ?? 'info',
    ...(opts.stream ? { stream: opts.stream } : {}),
    redact: { paths: ['req.headers', 'req.body', 'body', 'password', '*.password', 'orgIdHash', '*.orgIdHash'], censor: '[redacted]' },
    serializers: {
      // Method and path only: no query string, no headers, no body.
      req: (req: FastifyRequest) => ({ method: req.method, url: req.url.split('?')[0] }),
      res: (res: FastifyReply) => ({ statusCode: res.statusCode }),
      err: (err: FastifyError) => ({ type: err.name, code: err.code, statusCode: err.statusCode }),
    },
  };
}
