/**
 * The cloud directory server (`idsync cloud serve`): the far end of idsync's export.
 *
 *   GET  /healthz                                 liveness and database check (no auth)
 *   GET  /.well-known/jwks.json                   public signing keys (ES256)
 *   GET  /.well-known/oauth-authorization-server  RFC 8414 metadata
 *   POST /oauth2/token                            client_credentials and password grants
 *   *    /scim/v2/...                             SCIM 2.0 (GlobalAdministrator, DirectorySynchronizationAccounts)
 *   POST /api/v1/passwordHashes                   synced OrgId hashes (same roles)
 *   *    /admin/v1/accounts|clients|audit         administration (GlobalAdministrator)
 *
 * State lives in <dataDir>/cloud.db (SQLite, WAL), or in PostgreSQL (`database: postgres://…`), where
 * any number of nodes can share it: accounts, clients, signing keys, SCIM objects, password hashes,
 * lockout counters and the audit log. Nothing that matters is kept in one node's memory.
 *
 * SCIM requests are worked on in a worker thread with its own connection to cloud.db, or its own
 * pg pool (scim/host/): this thread's event loop serves health, tokens, sign-in, administration and
 * the portal. It listens on loopback unless told
 * otherwise; put a TLS-terminating proxy in front to expose it (and set trustProxy).
 *
 * Logs are JSON (pino). Request bodies, Authorization headers, passwords, secrets and hashes are
 * never logged.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Database, Migration } from '../store/database.js';
import { ensureAdministrator } from './accounts/bootstrap.js';
import { SCIM_ROLES } from './accounts/roles.js';
import { registerAdminAccountRoutes } from './accounts/routes.js';
import { DEFAULT_SECRET_HASH_PARAMS, type SecretHashParams } from '../web/secret-hash.js';
import { AccountStore, accountsMigrations, accountsPgMigrations } from './accounts/store.js';
import { registerAuditRoutes } from './audit/routes.js';
import { AuditLog, auditMigrations, auditPgMigrations } from './audit/store.js';
import { ApiError, OAuthError } from './auth/errors.js';
import { Guard } from './auth/guard.js';
import { keysMigrations, keysPgMigrations, loadSigningKeys } from './auth/keys.js';
import { Lockout, lockoutMigrations, lockoutPgMigrations, type LockoutPolicy } from './auth/lockout.js';
import { API_SCOPE, SIGNIN_SCOPES, registerTokenEndpoint } from './auth/token-endpoint.js';
import { GRANT_TYPES } from './auth/grants/index.js';
import { TokenService } from './auth/tokens.js';
import { registerPasswordRoutes } from './passwords/routes.js';
import { PORTAL_PREFIX, portalPlugin } from './portal/plugin.js';
import { PasswordHashStore, passwordHashMigrations, passwordHashPgMigrations } from './passwords/store.js';
import { announceWrites, registerScim, scimMigrations, scimPgMigrations, type ScimHost } from './scim/index.js';
import { openStore, type StoreSpec } from './store/open.js';
import type { PostgresTls } from './store/postgres.js';
import type { CloudStore } from './store/sql.js';
import { SqliteStore } from './store/sqlite.js';
import { registerSyncInstallations, syncInstallationMigrations, syncInstallationPgMigrations } from './sync-installations/index.js';
import { registerSyncFence, syncFenceMigrations, syncFencePgMigrations } from './sync-fence/index.js';

export const CLOUD_DATABASE_FILE = 'cloud.db';
export const SCIM_BASE_PATH = '/scim/v2';
const PRUNE_INTERVAL_MS = 3_600_000;

export interface CloudLoggerOptions {
  /** pino level; default "info". */
  level?: string;
  /** Where JSON lines go; default stdout. */
  stream?: NodeJS.WritableStream;
}

export interface CloudServerOptions {
  /** Directory of cloud.db; created (0700) when missing. */
  dataDir: string;
  /** A postgres:// URL: keep the state in PostgreSQL instead of <dataDir>/cloud.db (several nodes may share it). */
  database?: string;
  /**
   * The database password, when not in the URL (from the environment). Without it, the sealed
   * `database` credential of dataDir is used when there is one (store/credentials.ts).
   */
  databasePassword?: string;
  /** TLS to PostgreSQL beyond what the URL says (mode, CA file, server name). */
  databaseTls?: PostgresTls;
  /** Default 127.0.0.1 (loopback only). */
  host?: string;
  /** Default 0: a free port, see `url`. */
  port?: number;
  /** First start only: the global administrator's name (else $IDSYNC_CLOUD_ADMIN_USER, else "admin"). */
  adminUser?: string;
  /** First start only: its password (else $IDSYNC_CLOUD_ADMIN_PASSWORD, else generated and returned once). */
  adminPassword?: string;
  /** false for silence; default JSON at info level on stdout. */
  logger?: boolean | CloudLoggerOptions;
  /** The URL clients use (the tokens' `iss`), when a proxy fronts the server; default the listen URL. */
  publicUrl?: string;
  /** Trust X-Forwarded-For from a fronting proxy (fastify's trustProxy): the lockout keys on the client address. */
  trustProxy?: boolean | string | string[];
  /** Lifetime of access tokens; default 3600 s. */
  tokenTtlSeconds?: number;
  /** Smart lockout thresholds (see auth/lockout.ts). */
  lockout?: Partial<LockoutPolicy>;
  /** scrypt cost for account passwords and client secrets; lower only in tests. */
  secretHashParams?: SecretHashParams;
  /** Clock (ms since epoch) for tokens, lockout and audit; for tests. */
  now?: () => number;
  /** Environment for the administrator bootstrap; default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface CloudServer {
  app: FastifyInstance;
  /** Where it listens, e.g. http://127.0.0.1:41234 (no trailing slash). */
  url: string;
  /** Where the state lives: SQLite or PostgreSQL behind one async query layer (src/cloud/store/). */
  store: CloudStore;
  /** The SQLite database itself (undefined on PostgreSQL), for tests and tools. */
  db: Database | undefined;
  /** Where SCIM requests are worked on (a worker thread with its own connection or pool). */
  scimHost: ScimHost;
  /** Stops listening, finishes in-flight requests and closes the database. */
  close(): Promise<void>;
  bootstrap: {
    adminUser: string;
    /** Only on the first start without a given password: show it once. */
    generatedPassword?: string;
  };
}

function loggerConfig(logger: CloudServerOptions['logger']): false | Record<string, unknown> {
  if (logger === false) return false;
  const opts: CloudLoggerOptions = typeof logger === 'object' ? logger : {};
  return {
    level: opts.level ?? 'info',
    ...(opts.stream ? { stream: opts.stream } : {}),
    // Belt and braces: the serializers below never include these, and nothing logs a body.
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'req.body',
        'body',
        'password',
        '*.password',
        'client_secret',
        '*.client_secret',
        'hash',
        '*.hash',
      ],
      censor: '[redacted]',
    },
    serializers: {
      // Path only: no query string, no headers.
      req: (req: FastifyRequest) => ({ method: req.method, url: req.url.split('?')[0], remoteAddress: req.ip }),
      res: (res: FastifyReply) => ({ statusCode: res.statusCode }),
      // Parse errors may quote the body: log the kind of error, not its message.
      err: (err: FastifyError) => ({ type: err.name, code: err.code, statusCode: err.statusCode, ...(isClientError(err) ? {} : { message: err.message, stack: err.stack }) }),
    },
  };
}

function isClientError(err: { statusCode?: number }): boolean {
  return typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500;
}

function isScimPath(url: string): boolean {
  return url === SCIM_BASE_PATH || url.startsWith(SCIM_BASE_PATH + '/') || url.startsWith(SCIM_BASE_PATH + '?');
}

function scimErrorBody(status: number, detail: string) {
  return { schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: String(status), detail };
}

/** Maps framework errors (parsing, limits) to a safe ApiError; undefined for a server fault. */
function clientErrorOf(err: FastifyError): ApiError | undefined {
  if (!isClientError(err)) return undefined;
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError(400, 'INVALID_JSON', 'the request body is not valid JSON');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', 'unsupported Content-Type: send application/json (the token endpoint also takes application/x-www-form-urlencoded)');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, 'PAYLOAD_TOO_LARGE', 'the request body is too large');
    default:
      return err instanceof SyntaxError
        ? new ApiError(400, 'INVALID_JSON', 'the request body is not valid JSON')
        : new ApiError(err.statusCode!, 'VALIDATION_FAILED', 'the request is not valid');
  }
}

/** Order matters: the password hashes' migrations refer to the SCIM tables. */
const CLOUD_SQLITE_MIGRATIONS: Migration[] = [
  ...scimMigrations,
  ...accountsMigrations,
  ...keysMigrations,
  ...lockoutMigrations,
  ...auditMigrations,
  ...passwordHashMigrations,
  ...syncInstallationMigrations,
  ...syncFenceMigrations,
];
const CLOUD_PG_MIGRATIONS: Migration[] = [
  ...scimPgMigrations,
  ...accountsPgMigrations,
  ...keysPgMigrations,
  ...lockoutPgMigrations,
  ...auditPgMigrations,
  ...passwordHashPgMigrations,
  ...syncInstallationPgMigrations,
  ...syncFencePgMigrations,
];

export async function createCloudServer(options: CloudServerOptions): Promise<CloudServer> {
  const now = options.now ?? Date.now;
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const dbFile = path.join(options.dataDir, CLOUD_DATABASE_FILE);
  // The SCIM worker opens a store of its own from the same description (the password travels, unprinted).
  const spec: StoreSpec = options.database
    ? {
        engine: 'postgres',
        url: options.database,
        ...(options.databasePassword !== undefined ? { password: options.databasePassword } : { credentialsDir: options.dataDir }),
        ...(options.databaseTls ? { tls: options.databaseTls } : {}),
      }
    : { engine: 'sqlite', file: dbFile };
  const store = await openStore(spec, {
    migrations: { sqlite: CLOUD_SQLITE_MIGRATIONS, postgres: CLOUD_PG_MIGRATIONS },
    // The SCIM worker writes through a connection of its own: this one's writes make it step aside.
    onSqlite: (d) => void announceWrites(d),
  });
  const db = store instanceof SqliteStore ? store.db : undefined;
  // Signing keys and hashes live here: owner only.
  if (db) for (const f of [dbFile, `${dbFile}-wal`, `${dbFile}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);

  let app: FastifyInstance | undefined;
  let pruneTimer: NodeJS.Timeout | undefined;
  try {
    const accounts = new AccountStore(store, options.secretHashParams ?? DEFAULT_SECRET_HASH_PARAMS, now);
    const bootstrap = await ensureAdministrator(accounts, options, options.env ?? process.env);
    const audit = new AuditLog(store, now);
    const lockout = await Lockout.open(store, options.lockout, now);
    const hashes = new PasswordHashStore(store, now);
    const keys = await loadSigningKeys(store, now);
    let issuer = options.publicUrl?.replace(/\/+$/, '') ?? '';
    const tokens = new TokenService(keys, () => issuer, options.tokenTtlSeconds ?? 3600, now);
    const guard = new Guard(tokens, accounts);

    app = Fastify({
      logger: loggerConfig(options.logger),
      trustProxy: options.trustProxy ?? false,
      bodyLimit: 10 * 1024 * 1024,
      forceCloseConnections: true,
      return503OnClosing: true,
    });

    app.setErrorHandler((err: FastifyError, req, reply) => {
      if (err instanceof OAuthError) {
        return reply.code(err.statusCode).headers({ ...err.headers, 'cache-control': 'no-store' }).send(err.toBody());
      }
      const apiErr = err instanceof ApiError ? err : clientErrorOf(err);
      if (req.url.startsWith('/oauth2/') && apiErr) {
        return reply.code(400).header('cache-control', 'no-store').send({ error: 'invalid_request', error_description: apiErr.message });
      }
      if (apiErr) return reply.code(apiErr.statusCode).headers(apiErr.headers).send(apiErr.toBody());
      req.log.error({ err }, 'request failed');
      return reply.code(500).send(new ApiError(500, 'INTERNAL', 'internal error: see the cloud directory log').toBody());
    });
    app.setNotFoundHandler((_req, reply) => reply.code(404).send(new ApiError(404, 'NOT_FOUND', 'no such endpoint').toBody()));

    app.get('/healthz', async () => {
      await store.ping();
      return { status: 'ok' };
    });
    app.get('/.well-known/jwks.json', async (_req, reply) => {
      reply.header('cache-control', 'public, max-age=300');
      return keys.jwks;
    });
    app.get('/.well-known/oauth-authorization-server', async () => ({
      issuer,
      token_endpoint: `${issuer}/oauth2/token`,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      grant_types_supported: GRANT_TYPES,
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      scopes_supported: [API_SCOPE, ...SIGNIN_SCOPES],
      response_types_supported: ['token'],
    }));

    registerTokenEndpoint(app, { db: store, accounts, hashes, lockout, audit, tokens });
    registerAdminAccountRoutes(app, { db: store, guard, accounts, audit });
    registerAuditRoutes(app, { guard, audit });
    // Before the routes it fences (the password hashes here, SCIM below): a hook covers the routes after it.
    registerSyncFence(app, { db: store, guard, audit, now, isScimPath });
    registerPasswordRoutes(app, { db: store, guard, hashes, audit, now });
    registerSyncInstallations(app, { db: store, guard, now, isScimPath });
    // The admin portal (src/cloud/portal/): its own path, cookie session and CSP.
    await app.register(portalPlugin, { prefix: PORTAL_PREFIX, db: store, accounts, audit, lockout, secure: (options.publicUrl ?? '').startsWith('https://'), now });

    // Every SCIM request needs an API token of a role that may provision. Checked here, before
    // the SCIM layer sees the request, and answered in SCIM's error format (RFC 7644 §3.12).
    app.addHook('onRequest', async (req, reply) => {
      if (!isScimPath(req.url)) return;
      try {
        await guard.authenticate(req, SCIM_ROLES);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        return reply.code(err.statusCode).headers(err.headers).type('application/scim+json').send(scimErrorBody(err.statusCode, err.message));
      }
    });
    const scimHost = await registerScim(app, {
      sql: store,
      spec,
      basePath: SCIM_BASE_PATH,
      ...(options.publicUrl ? { publicUrl: issuer + SCIM_BASE_PATH } : {}),
      authenticate: async (req) => {
        await guard.authenticate(req, SCIM_ROLES);
      },
    });

    const prune = async () => {
      try {
        await audit.prune();
        await lockout.prune();
      } catch (err) {
        app?.log.error({ err }, 'pruning the audit log failed');
      }
    };
    await prune();
    pruneTimer = setInterval(() => void prune(), PRUNE_INTERVAL_MS);
    pruneTimer.unref();

    await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 });
    const addr = app.server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    const url = `http://${host}:${addr.port}`;
    if (!issuer) issuer = url;
    if (db) for (const f of [`${dbFile}-wal`, `${dbFile}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);

    const server: CloudServer = {
      app,
      url,
      store,
      db,
      scimHost,
      bootstrap: bootstrap.generatedPassword === undefined ? { adminUser: bootstrap.adminUser } : { adminUser: bootstrap.adminUser, generatedPassword: bootstrap.generatedPassword },
      close: async () => {
        clearInterval(pruneTimer);
        await app!.close();
        await store.close();
      },
    };
    return server;
  } catch (err) {
    clearInterval(pruneTimer);
    await app?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
}
