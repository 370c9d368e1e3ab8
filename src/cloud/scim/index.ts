/**
 * The cloud directory's SCIM 2.0 service (RFC 7643/7644): Users (core + enterprise + idsync on-premises
 * extension) and Groups, with filters, PATCH, ETags, Bulk and discovery. Mount with `registerScim`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Migration } from '../../store/database.js';
import type { StoreSpec } from '../store/open.js';
import type { Sql } from '../store/sql.js';
import { createScimHost, type ScimHost, type ScimHosting } from './host/host.js';
import { scimMigrations as migrations, scimPgMigrations as pgMigrations } from './repository.js';
import { scimPlugin } from './routes.js';
import { DEFAULT_LIMITS, type ScimLimits } from './service.js';

export const scimMigrations: Migration[] = migrations;
export const scimPgMigrations: Migration[] = pgMigrations;

export interface ScimOptions {
  /** The store on this thread (the in-process host works on it; SQLite: its writes make the worker step aside). */
  sql: Sql;
  /** How the SCIM worker opens a store of its own; absent for an in-memory database (hosted in-process). */
  spec?: StoreSpec;
  /** Where the SCIM API is mounted; default '/scim/v2'. */
  basePath?: string;
  /** Called in an onRequest hook for every SCIM route; throws (e.g. a 401 error) to reject. */
  authenticate: (req: FastifyRequest) => Promise<void>;
  /** Absolute URL of the SCIM base for meta.location (behind a proxy); default: from the request. */
  publicUrl?: string;
  /** maxResults (page size cap), Bulk maxOperations and maxPayloadSize (bytes, all SCIM bodies). */
  limits?: Partial<ScimLimits>;
  /**
   * Where SCIM requests are worked on: 'worker' (default when `spec` is given) is a worker thread
   * with its own SQLite connection or pg pool, so SCIM work never holds the event loop that answers
   * /healthz and sign-in; 'in-process' (the only choice for ':memory:') runs them on this thread.
   */
  hosting?: ScimHosting;
}

/** Mounts the SCIM API; returns its host (closed with the app). */
export async function registerScim(app: FastifyInstance, opts: ScimOptions): Promise<ScimHost> {
  const basePath = (opts.basePath ?? '/scim/v2').replace(/\/+$/, '');
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const host = createScimHost(opts.sql, opts.spec, limits, opts.hosting);
  app.addHook('onClose', async () => host.close());
  await app.register(scimPlugin, {
    prefix: basePath,
    host,
    limits,
    basePath,
    authenticate: opts.authenticate,
    ...(opts.publicUrl ? { publicUrl: opts.publicUrl.replace(/\/+$/, '') } : {}),
  });
  return host;
}

export { findUserForSignIn, findUserIdsByExternalIds } from './repository.js';
export { ScimError } from './errors.js';
export { ScimService, DEFAULT_LIMITS, type ScimLimits } from './service.js';
export type { ScimHost, ScimHosting } from './host/host.js';
export { announceWrites } from './host/write-intent.js';
export * as scimSchema from './schema.js';
