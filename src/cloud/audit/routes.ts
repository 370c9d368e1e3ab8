/**
 * GET /admin/v1/audit?type=&since=&limit=   (GlobalAdministrator)
 *   type   signin | token | admin | passwordHashes
 *   since  ISO date-time (records at or after it)
 *   limit  1..10000, default 1000
 *   -> { records: [ { id, at, type, actor?, subject?, ip?, result, reason, details? } ] }  newest first
 */
import type { FastifyInstance } from 'fastify';
import { ADMIN_ROLES } from '../accounts/roles.js';
import { ApiError } from '../auth/errors.js';
import type { Guard } from '../auth/guard.js';
import type { AuditLog } from './store.js';

const TYPES = new Set(['signin', 'token', 'admin', 'passwordHashes', 'syncFence']);

export function registerAuditRoutes(app: FastifyInstance, deps: { guard: Guard; audit: AuditLog }): void {
  app.get<{ Querystring: { type?: string; since?: string; limit?: string } }>('/admin/v1/audit', async (req) => {
    await deps.guard.authenticate(req, ADMIN_ROLES);
    const { type, since, limit } = req.query;
    if (type !== undefined && !TYPES.has(type)) throw new ApiError(400, 'VALIDATION_FAILED', `type must be one of ${[...TYPES].join(', ')}`);
    if (since !== undefined && !Number.isFinite(Date.parse(since))) throw new ApiError(400, 'VALIDATION_FAILED', 'since must be an ISO date-time');
    const n = limit === undefined ? undefined : Number(limit);
    if (n !== undefined && (!Number.isInteger(n) || n < 1 || n > 10_000)) throw new ApiError(400, 'VALIDATION_FAILED', 'limit must be an integer from 1 to 10000');
    return { records: await deps.audit.query({ type, since, limit: n }) };
  });
}
