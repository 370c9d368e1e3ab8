/* eslint-disable @typescript-eslint/no-explicit-any -- response bodies are untyped JSON */
/**
 * Test harness for the SCIM layer: a real fastify server on 127.0.0.1 with SQLite on disk in a temp
 * dir (or, with IDSYNC_CLOUD_TEST_STORE=postgres, a fresh database on a private PostgreSQL 15:
 * test/helpers/postgres.ts), spoken to over HTTP with undici. Authentication here is a trivial fixed bearer check; the real
 * token authentication is the auth module's and is tested there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fastify, { type FastifyInstance } from 'fastify';
import { request, type Dispatcher } from 'undici';
import { openDatabase, type Database } from '../../../src/store/database.js';
import { registerScim, scimMigrations, scimPgMigrations, type ScimOptions } from '../../../src/cloud/scim/index.js';
import { PostgresStore } from '../../../src/cloud/store/postgres.js';
import type { StoreSpec } from '../../../src/cloud/store/open.js';
import type { CloudStore } from '../../../src/cloud/store/sql.js';
import { SqliteStore } from '../../../src/cloud/store/sqlite.js';
import { sharedPostgres } from '../../helpers/postgres.js';

/** Which store the cloud suites run on: IDSYNC_CLOUD_TEST_STORE=postgres, else SQLite. */
export function testStoreKind(): 'sqlite' | 'postgres' {
  return process.env.IDSYNC_CLOUD_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite';
}

/**
 * A fresh store of the selected kind for the SCIM tables; `db` is the SQLite database (undefined on
 * PostgreSQL); `spec` is how the SCIM worker opens a store of its own on the same data.
 */
export async function openTestScimStore(dir: string): Promise<{ store: CloudStore; db: Database | undefined; spec: StoreSpec }> {
  if (testStoreKind() === 'postgres') {
    const pg = await sharedPostgres();
    const url = await pg.createDatabase();
    return { store: await PostgresStore.open(url, scimPgMigrations), db: undefined, spec: { engine: 'postgres', url } };
  }
  const file = path.join(dir, 'cloud.db');
  const db = openDatabase(file, scimMigrations);
  return { store: new SqliteStore(db), db, spec: { engine: 'sqlite', file } };
}

export const TOKEN = 'test-token';
export const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const ONPREM_USER = 'urn:idsync:params:scim:schemas:extension:onprem:2.0:User';
export const ONPREM_GROUP = 'urn:idsync:params:scim:schemas:extension:onprem:2.0:Group';
export const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const BULK = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
export const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';

export interface Res<T = any> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
  text: string;
}

export interface Harness {
  app: FastifyInstance;
  /** The SQLite database (undefined when the suite runs on PostgreSQL). */
  db: Database | undefined;
  store: CloudStore;
  base: string;
  dir: string;
  call<T = any>(method: Dispatcher.HttpMethod, path: string, body?: unknown, headers?: Record<string, string>): Promise<Res<T>>;
  close(): Promise<void>;
}

export async function startScim(opts: Partial<ScimOptions> = {}): Promise<Harness> {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-scim-'));
  const { store, db, spec } = await openTestScimStore(dir);
  const app = fastify();
  await registerScim(app, {
    sql: store,
    spec,
    authenticate: async (req) => {
      if (req.headers.authorization !== `Bearer ${TOKEN}`) throw Object.assign(new Error('invalid or missing bearer token'), { statusCode: 401 });
    },
    ...opts,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  const origin = `http://127.0.0.1:${port}`;
  const base = `${origin}${opts.basePath ?? '/scim/v2'}`;
  return {
    app,
    db,
    store,
    base,
    dir,
    async call(method, p, body, headers = {}) {
      const res = await request(p.startsWith('http') ? p : base + p, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/scim+json', ...headers },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.body.text();
      let parsed: unknown = undefined;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = undefined;
      }
      return { status: res.statusCode, headers: res.headers as Res['headers'], body: parsed as any, text };
    },
    async close() {
      await app.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const user = (userName: string, extra: Record<string, unknown> = {}) => ({ schemas: [USER], userName, ...extra });
export const patch = (...Operations: unknown[]) => ({ schemas: [PATCH_OP], Operations });
