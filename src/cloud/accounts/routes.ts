/**
 * The admin API for cloud accounts and clients (GlobalAdministrator only). Secrets go in, never
 * out: a generated client secret is returned once, at creation.
 *
 *   GET    /admin/v1/accounts               -> { accounts: AccountInfo[] }
 *   POST   /admin/v1/accounts               { username, password, role }  -> 201 AccountInfo
 *   PATCH  /admin/v1/accounts/:username     { password?, role? }          -> AccountInfo
 *          a new password revokes every token the account holds, at once
 *   DELETE /admin/v1/accounts/:username     -> 204
 *   GET    /admin/v1/clients                -> { clients: ClientInfo[] }
 *   POST   /admin/v1/clients                { clientId, role }            -> 201 { clientId, role, createdAt, clientSecret }
 *   DELETE /admin/v1/clients/:clientId      -> 204
 *
 * role: "GlobalAdministrator" | "DirectorySynchronizationAccounts" (or "admin" | "sync").
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Sql } from '../store/sql.js';
import type { AuditLog } from '../audit/store.js';
import { ApiError } from '../auth/errors.js';
import type { Guard } from '../auth/guard.js';
import { findUserForSignIn } from '../scim/index.js';
import { isValidName, passwordProblem } from './policy.js';
import { ADMIN_ROLES, parseRole, type Role } from './roles.js';
import { generateSecret } from '../../web/secret-hash.js';
import type { AccountStore } from './store.js';

export interface AdminRoutesDeps {
  db: Sql;
  guard: Guard;
  accounts: AccountStore;
  audit: AuditLog;
}

function bodyOf(req: FastifyRequest): Record<string, unknown> {
  const b = req.body;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new ApiError(400, 'VALIDATION_FAILED', 'the body must be a JSON object');
  return b as Record<string, unknown>;
}

function roleOf(value: unknown): Role {
  const role = parseRole(value);
  if (!role) throw new ApiError(400, 'VALIDATION_FAILED', 'role must be "GlobalAdministrator" or "DirectorySynchronizationAccounts" ("admin" or "sync")');
  return role;
}

function passwordOf(value: unknown): string {
  if (typeof value !== 'string') throw new ApiError(400, 'VALIDATION_FAILED', 'password must be a string');
  const problem = passwordProblem(value);
  if (problem) throw new ApiError(400, 'VALIDATION_FAILED', `the password is not acceptable: ${problem}`);
  return value;
}

function nameOf(value: unknown, what: string): string {
  if (!isValidName(value)) throw new ApiError(400, 'VALIDATION_FAILED', `${what} may only hold letters, digits and . _ @ - (1 to 128, starting with a letter or digit)`);
  return value;
}

export function registerAdminAccountRoutes(app: FastifyInstance, deps: AdminRoutesDeps): void {
  const { guard, accounts, audit } = deps;
  const admin = guard.require(ADMIN_ROLES);

  const notFound = (what: string) => new ApiError(404, 'NOT_FOUND', `no ${what} of that name`);

  app.get('/admin/v1/accounts', async (req) => {
    await admin(req);
    return { accounts: await accounts.listAccounts() };
  });

  app.post('/admin/v1/accounts', async (req, reply) => {
    const actor = await admin(req);
    const body = bodyOf(req);
    const username = nameOf(body.username, 'username');
    const role = roleOf(body.role);
    const password = passwordOf(body.password);
    if (await findUserForSignIn(deps.db, username)) {
      // Keep the namespaces apart: one name, one kind of sign-in.
      throw new ApiError(409, 'NAME_TAKEN_BY_USER', 'a directory user has that name: choose another name for the cloud account');
    }
    const created = await accounts.createAccount(username, password, role);
    if (!created) throw new ApiError(409, 'ACCOUNT_EXISTS', 'a cloud account of that name exists');
    await audit.record({ type: 'admin', actor: actor.name, subject: username, ip: req.ip, result: 'success', reason: 'account_created', details: { role } });
    return reply.code(201).send(created);
  });

  app.patch<{ Params: { username: string } }>('/admin/v1/accounts/:username', async (req) => {
    const actor = await admin(req);
    const body = bodyOf(req);
    const username = req.params.username;
    const current = await accounts.getAccount(username);
    if (!current) throw notFound('account');
    if (body.password === undefined && body.role === undefined) throw new ApiError(400, 'VALIDATION_FAILED', 'give a new password, a role, or both');
    const password = body.password === undefined ? undefined : passwordOf(body.password);
    const role = body.role === undefined ? undefined : roleOf(body.role);
    if (role && role !== 'GlobalAdministrator' && current.role === 'GlobalAdministrator' && (await accounts.countAdministrators()) <= 1) {
      throw new ApiError(409, 'LAST_ADMINISTRATOR', 'this is the last global administrator: create another one first');
    }
    let info = current;
    if (role && role !== current.role) {
      info = (await accounts.setRole(username, role)) ?? info;
      await audit.record({ type: 'admin', actor: actor.name, subject: info.username, ip: req.ip, result: 'success', reason: 'role_changed', details: { role } });
    }
    if (password !== undefined) {
      info = (await accounts.setPassword(username, password)) ?? info;
      await audit.record({ type: 'admin', actor: actor.name, subject: info.username, ip: req.ip, result: 'success', reason: 'password_changed' });
    }
    return info;
  });

  app.delete<{ Params: { username: string } }>('/admin/v1/accounts/:username', async (req, reply) => {
    const actor = await admin(req);
    const current = await accounts.getAccount(req.params.username);
    if (!current) throw notFound('account');
    if (current.role === 'GlobalAdministrator' && (await accounts.countAdministrators()) <= 1) {
      throw new ApiError(409, 'LAST_ADMINISTRATOR', 'this is the last global administrator: create another one first');
    }
    await accounts.deleteAccount(current.username);
    await audit.record({ type: 'admin', actor: actor.name, subject: current.username, ip: req.ip, result: 'success', reason: 'account_deleted' });
    return reply.code(204).send();
  });

  app.get('/admin/v1/clients', async (req) => {
    await admin(req);
    return { clients: await accounts.listClients() };
  });

  app.post('/admin/v1/clients', async (req, reply) => {
    const actor = await admin(req);
    const body = bodyOf(req);
    const clientId = nameOf(body.clientId, 'clientId');
    const role = roleOf(body.role);
    const clientSecret = generateSecret(32);
    const created = await accounts.createClient(clientId, clientSecret, role);
    if (!created) throw new ApiError(409, 'CLIENT_EXISTS', 'a client with that id exists');
    await audit.record({ type: 'admin', actor: actor.name, subject: clientId, ip: req.ip, result: 'success', reason: 'client_created', details: { role } });
    return reply.code(201).header('cache-control', 'no-store').send({ ...created, clientSecret });
  });

  app.delete<{ Params: { clientId: string } }>('/admin/v1/clients/:clientId', async (req, reply) => {
    const actor = await admin(req);
    if (!(await accounts.deleteClient(req.params.clientId))) throw notFound('client');
    await audit.record({ type: 'admin', actor: actor.name, subject: req.params.clientId, ip: req.ip, result: 'success', reason: 'client_deleted' });
    return reply.code(204).send();
  });
}
