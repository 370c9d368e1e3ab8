/** Shared helpers for the cloud directory tests: a real server on 127.0.0.1 with cloud.db on disk. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request, type Dispatcher } from 'undici';
import { createCloudServer, type CloudServer, type CloudServerOptions } from '../../../src/cloud/server.js';

export const ADMIN_USER = 'admin';
export const ADMIN_PASSWORD = 'admin-password-0123';
/** Cheap scrypt for speed; the default parameters have their own test (secret-hash.test.ts). */
export const FAST_HASH = { logN: 10, r: 8, p: 1 };

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-cloud-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function start(dataDir: string, options: Partial<CloudServerOptions> = {}): Promise<CloudServer> {
  return createCloudServer({
    dataDir,
    adminUser: ADMIN_USER,
    adminPassword: ADMIN_PASSWORD,
    logger: false,
    secretHashParams: FAST_HASH,
    env: {},
    ...options,
  });
}

export interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

export interface CallOptions {
  json?: unknown;
  form?: Record<string, string>;
  scim?: unknown;
  /** A body sent as is (set content-type in headers). */
  raw?: string;
  token?: string;
  headers?: Record<string, string>;
  dispatcher?: Dispatcher;
}

export async function call(server: { url: string }, method: Dispatcher.HttpMethod, path: string, o: CallOptions = {}): Promise<Res> {
  const headers: Record<string, string> = { ...o.headers };
  let body: string | undefined = o.raw;
  if (o.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(o.json);
  } else if (o.form !== undefined) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(o.form).toString();
  } else if (o.scim !== undefined) {
    headers['content-type'] = 'application/scim+json';
    body = JSON.stringify(o.scim);
  }
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  const res = await request(server.url + path, { method, headers, body, dispatcher: o.dispatcher });
  const text = await res.body.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.statusCode, headers: res.headers, body: parsed, text };
}

/** A token request (form-encoded); returns the whole response. */
export function tokenRequest(server: { url: string }, form: Record<string, string>, o: CallOptions = {}): Promise<Res> {
  return call(server, 'POST', '/oauth2/token', { ...o, form });
}

/** An access token for a cloud account, or throws. */
export async function accountToken(server: { url: string }, username = ADMIN_USER, password = ADMIN_PASSWORD): Promise<string> {
  const res = await tokenRequest(server, { grant_type: 'password', username, password });
  if (res.status !== 200) throw new Error(`token for ${username}: HTTP ${res.status} ${res.text}`);
  return res.body.access_token as string;
}

export async function createAccount(server: { url: string }, adminToken: string, username: string, password: string, role = 'sync'): Promise<void> {
  const res = await call(server, 'POST', '/admin/v1/accounts', { token: adminToken, json: { username, password, role } });
  if (res.status !== 201) throw new Error(`create account ${username}: HTTP ${res.status} ${res.text}`);
}

export async function createScimUser(
  server: { url: string },
  token: string,
  user: { userName: string; externalId: string; active?: boolean },
): Promise<string> {
  const res = await call(server, 'POST', '/scim/v2/Users', {
    token,
    scim: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], ...user, active: user.active ?? true },
  });
  if (res.status !== 201) throw new Error(`create SCIM user ${user.userName}: HTTP ${res.status} ${res.text}`);
  return res.body.id as string;
}

export async function setScimActive(server: { url: string }, token: string, id: string, active: boolean): Promise<void> {
  const res = await call(server, 'PATCH', `/scim/v2/Users/${id}`, {
    token,
    scim: { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', path: 'active', value: active }] },
  });
  if (res.status !== 200 && res.status !== 204) throw new Error(`PATCH active: HTTP ${res.status} ${res.text}`);
}

export async function sendHashes(server: { url: string }, token: string, items: { externalId: string; hash: string; changedAt?: string }[]): Promise<Res> {
  return call(server, 'POST', '/api/v1/passwordHashes', { token, json: { items } });
}

/** A settable clock for token expiry and lockout durations. */
export function fakeClock(start = Date.now()): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}
