/**
 * Shared fixtures of the password hash sync tests: idsync.db on disk with the engine, credential,
 * event and password tables; users in a connector space; a pipeline against a real cloud directory.
 */
import type { CloudConfig } from '../../../src/config/schema.js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { CloudClient } from '../../../src/connectors/cloud/client.js';
import { CredentialStore, credentialMigrations } from '../../../src/credentials/store.js';
import { engineMigrations } from '../../../src/engine/migrations.js';
import { EventLog, eventMigrations } from '../../../src/events/log.js';
import { normalizeDn } from '../../../src/ldap/dn.js';
import { PasswordPipeline, passwordMigrations, type PasswordPipelineOptions } from '../../../src/passwords/pipeline.js';
import { openDatabase, type Database } from '../../../src/store/database.js';
import type { TestCloud } from '../../helpers/cloud.js';

export const MIGRATIONS = [...engineMigrations, ...credentialMigrations, ...eventMigrations, ...passwordMigrations];

export interface Env {
  dir: string;
  dbFile: string;
  db: Database;
  key: Buffer;
  credentials: CredentialStore;
  events: EventLog;
  reopen(): void;
  cleanup(): void;
}

export function makeEnv(): Env {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-phs-'));
  const dbFile = path.join(dir, 'idsync.db');
  const key = randomBytes(32);
  const env = {
    dir,
    dbFile,
    key,
    db: openDatabase(dbFile, MIGRATIONS),
  } as Env;
  const bind = () => {
    env.credentials = new CredentialStore(env.db, key);
    env.events = new EventLog(env.db);
  };
  bind();
  /** Simulates a crash: drop the handle without any shutdown work, open the file again. */
  env.reopen = () => {
    env.db.close();
    env.db = openDatabase(dbFile, MIGRATIONS);
    bind();
  };
  env.cleanup = () => {
    try {
      env.db.close();
    } catch {
      // already closed
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return env;
}

export interface TestUser {
  connector: string;
  anchor: string;
  sam: string;
  upn: string;
  dn: string;
}

export function addUser(db: Database, u: Partial<TestUser> & { sam: string }, connector = 'corp'): TestUser {
  const anchor = u.anchor ?? randomBytes(16).toString('base64');
  const upn = u.upn ?? `${u.sam}@lab.test`;
  const dn = u.dn ?? `CN=${u.sam},OU=People,DC=lab,DC=test`;
  const attrs = { samaccountname: [u.sam], userprincipalname: [upn], cn: [u.sam] };
  db.prepare(`INSERT INTO cs_objects (connector, anchor, object_type, dn, dn_norm, attrs, hash, pending) VALUES (?, ?, 'user', ?, ?, ?, 'x', NULL)`).run(
    connector,
    anchor,
    dn,
    normalizeDn(dn),
    JSON.stringify(attrs),
  );
  return { connector, anchor, sam: u.sam, upn, dn };
}

/** The cloud connector settings for a test cloud (optionally through another URL, e.g. a proxy). */
export function cloudConfigOf(cloud: TestCloud, url = cloud.url): CloudConfig {
  return { url, auth: { type: 'client_credentials', clientId: cloud.syncClientId }, timeoutMs: 10_000, concurrency: 8, retries: 0, bulkSize: 200, refusedCredentialRecheck: '15m' };
}

export function cloudClient(cloud: TestCloud, credentials: CredentialStore, url = cloud.url): CloudClient {
  return new CloudClient(cloudConfigOf(cloud, url), credentials.resolver('cloud'), { guard: credentials.guard('cloud') });
}

export function makePipeline(env: Env, cloud: CloudClient | (() => CloudClient), options: PasswordPipelineOptions = {}): PasswordPipeline {
  return new PasswordPipeline({ db: env.db, cloud, events: env.events, key: env.key, options: { baseBackoffMs: 1, maxBackoffMs: 20, ...options } });
}

export async function createCloudUser(cloud: TestCloud, u: TestUser): Promise<void> {
  const res = await cloud.scim('POST', '/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: u.upn, externalId: u.anchor });
  if (res.status !== 201) throw new Error(`SCIM create failed: ${res.status} ${JSON.stringify(res.body)}`);
}

/** A directory user's sign-in at the cloud: true when the password matches the synced hash. */
export async function signIn(cloud: TestCloud, upn: string, password: string): Promise<boolean> {
  const res = await request(`${cloud.url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username: upn, password, scope: 'idsync.signin' }).toString(),
  });
  await res.body.text();
  return res.statusCode === 200;
}

/** Everything the tables that others can read hold, as one string (to scan for secrets). */
export function readableState(db: Database): string {
  const events = db.prepare('SELECT * FROM events').all();
  const status = db.prepare('SELECT * FROM phs_status').all();
  const outbox = db.prepare('SELECT anchor, connector, changed_at, queued_at, version, attempts, last_error, source FROM phs_users WHERE next_attempt_at IS NOT NULL').all();
  return JSON.stringify({ events, status, outbox });
}

export function eventIds(db: Database): number[] {
  return (db.prepare('SELECT id FROM events ORDER BY seq').pluck().all() as number[]);
}
