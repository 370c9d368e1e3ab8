/**
 * Which store the sync service's suites run on: IDSYNC_TEST_STORE=postgres puts each test
 * configuration's state in a fresh database of a private PostgreSQL 15 (test/helpers/postgres.ts),
 * else SQLite in the data folder as always. Like IDSYNC_CLOUD_TEST_STORE for the cloud directory.
 *
 *   const store = await testStoreConfig();   // undefined on SQLite
 *   writeFileSync(config, stringify({ dataDir: './data', ...(store ? { store } : {}), ... }));
 *
 * The database password goes where an operator puts it, $IDSYNC_STORE_PASSWORD, set in this
 * process's environment, which the CLI and service processes a test starts inherit.
 */
import { STORE_PASSWORD_ENV } from '../../src/config/store.js';
import { sharedPostgres } from './postgres.js';

export type TestStoreKind = 'sqlite' | 'postgres';

export function testStoreKind(): TestStoreKind {
  return process.env.IDSYNC_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite';
}

/** The `store:` block of a test configuration: a new database on PostgreSQL, undefined on SQLite. */
export async function testStoreConfig(kind: TestStoreKind = testStoreKind()): Promise<{ type: 'postgres'; url: string } | undefined> {
  if (kind === 'sqlite') return undefined;
  return postgresStoreConfig();
}

/** A `store:` block on a new PostgreSQL database (the password in $IDSYNC_STORE_PASSWORD, never in the YAML). */
export async function postgresStoreConfig(): Promise<{ type: 'postgres'; url: string }> {
  const pg = await sharedPostgres();
  const url = new URL(await pg.createDatabase());
  process.env[STORE_PASSWORD_ENV] = decodeURIComponent(url.password);
  url.password = '';
  return { type: 'postgres', url: url.toString() };
}
