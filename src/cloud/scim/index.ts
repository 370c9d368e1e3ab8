/**
 * The cloud directory's SCIM 2.0 service (RFC 7643/7644): Users (core + enterprise + idsync on-premises
 * extension) and Groups, with filters, PATCH, ETags, Bulk and discovery. Mount with `registerScim`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Migration } from '../../store/database.js';
import type { Sql } from '../store/sql.js';
import { scimMigrations as migrations, scimPgMigrations as pgMigrations } from './repository.js';
import { scimPlugin } from './routes.js';
import { DEFAULT_LIMITS, ScimService, type ScimLimits } from './service.js';

export const scimMigrations: Migration[] = migrations;
export const scimPgMigrations: Migration[] = pgMigrations;

export interface ScimOptions {
  sql: Sql;
  /** Where the SCIM API is mounted; default '/scim/v2'. */
  basePath?: string;
  /** Called in an onRequest hook for every SCIM route; throws (e.g. a 401 error) to reject. */
  authenticate: (req: FastifyRequest) => Promise<void>;
  /** Absolute URL of the SCIM base for meta.location (behind a proxy); default: from the request. */
  publicUrl?: string;
  /** maxResults (page size cap), Bulk maxOperations and maxPayloadSize (bytes, all SCIM bodies). */
  limits?: Partial<ScimLimits>;
}

export async function registerScim(app: FastifyInstance, opts: ScimOptions): Promise<void> {
  const basePath = (opts.basePath ?? '/scim/v2').replace(/\/+$/, '');
  const service = new ScimService(opts.sql, { ...DEFAULT_LIMITS, ...opts.limits });
  await app.register(scimPlugin, {
    prefix: basePath,
    service,
    basePath,
    authenticate: opts.authenticate,
    ...(opts.publicUrl ? { publicUrl: opts.publicUrl.replace(/\/+$/, '') } : {}),
  });
}

export { findUserForSignIn, findUserIdsByExternalIds } from './repository.js';
export { ScimError } from './errors.js';
export { ScimService, DEFAULT_LIMITS, type ScimLimits } from './service.js';
export * as scimSchema from './schema.js';
