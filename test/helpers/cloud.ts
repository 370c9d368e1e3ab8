/**
 * A real cloud directory for tests: `idsync cloud serve`'s server on a random loopback port with
 * its SQLite in a temp folder (or, with IDSYNC_CLOUD_TEST_STORE=postgres, a fresh database on a
 * private PostgreSQL 15: test/helpers/postgres.ts), a sync client provisioned through the admin API, and a small SCIM
 * reader for assertions.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { createSyncClient, fetchToken } from '../../src/cloud/admin-api-client.js';
import { PasswordHashStore } from '../../src/cloud/passwords/store.js';
import { findUserForSignIn } from '../../src/cloud/scim/index.js';
import { createCloudServer, type CloudServer } from '../../src/cloud/server.js';
import { verifyOrgIdHash } from '../../src/passwords/hash.js';
import { sharedPostgres } from './postgres.js';

export interface TestCloud {
  url: string;
  dataDir: string;
  admin: { username: string; password: string };
  syncClientId: string;
  syncSecret: string;
  /** The server itself (its database, for assertions). */
  server: CloudServer;
  // Tests assert on arbitrary SCIM JSON, so the default body type is deliberately loose.
  /** SCIM GET/POST/... as the global administrator; returns status and parsed body. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  scim<T = any>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', p: string, body?: unknown): Promise<{ status: number; body: T }>;
  /** Every resource of a type (follows paging). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  all<T = any>(type: 'Users' | 'Groups'): Promise<T[]>;
  /**
   * Whether the cloud holds a password hash that matches `password` for this user, checked in its
   * store: no sign-in attempt, so polling it cannot trip the smart lockout (a test that polls the
   * token endpoint with a password not delivered yet would lock the user out).
   */
  holdsPassword(userName: string, password: string): Promise<boolean>;
  close(): Promise<void>;
}

export async function startTestCloud(options: { dataDir?: string; port?: number; lockout?: boolean } = {}): Promise<TestCloud> {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'idsync-cloud-'));
  const admin = { username: 'admin', password: 'Test-admin-pass-1!' };
  const database = process.env.IDSYNC_CLOUD_TEST_STORE === 'postgres' ? await (await sharedPostgres()).createDatabase() : undefined;
  const server = await createCloudServer({
    dataDir,
    ...(database ? { database } : {}),
    port: options.port ?? 0,
    adminUser: admin.username,
    adminPassword: admin.password,
    logger: false,
    secretHashParams: { logN: 10, r: 8, p: 1 },
    // Tests that poll the token endpoint with a password that does not work yet turn lockout off.
    ...(options.lockout === false ? { lockout: { threshold: 1_000_000 } } : {}),
  });
  const syncClientId = 'idsync-test';
  let syncSecret: string;
  try {
    syncSecret = await createSyncClient(server.url, admin, syncClientId);
  } catch {
    syncSecret = ''; // already provisioned (a restarted cloud on the same data dir)
  }
  let token = await fetchToken(server.url, { grant_type: 'password', ...admin });
  const scim = async (method: string, p: string, body?: unknown) => {
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await request(`${server.url}/scim/v2${p}`, {
        method: method as 'GET',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.body.text();
      if (res.statusCode === 401 && attempt === 0) {
        token = await fetchToken(server.url, { grant_type: 'password', ...admin });
        continue;
      }
      return { status: res.statusCode, body: text ? JSON.parse(text) : undefined };
    }
    throw new Error('unreachable');
  };
  const all = async (type: 'Users' | 'Groups') => {
    const out: unknown[] = [];
    for (let start = 1; ; start += 1000) {
      const r = await scim('GET', `/${type}?startIndex=${start}&count=1000`);
      out.push(...(r.body.Resources ?? []));
      if (out.length >= r.body.totalResults || (r.body.Resources ?? []).length === 0) break;
    }
    return out;
  };
  return {
    url: server.url,
    dataDir,
    admin,
    syncClientId,
    syncSecret,
    server,
    scim: scim as TestCloud['scim'],
    all: all as TestCloud['all'],
    holdsPassword: async (userName, password) => {
      const user = await findUserForSignIn(server.store, userName);
      const hash = user ? await new PasswordHashStore(server.store).hashFor(user.id) : undefined;
      return hash !== undefined && (await verifyOrgIdHash(password, hash));
    },
    close: async () => {
      await server.close();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
