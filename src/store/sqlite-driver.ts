/**
 * Which better-sqlite3 to load. No single major works on every Node line idsync supports:
 *  - 12.x on Node >= 24.19 aborts the process ("Assertion failed: (env) != nullptr" in
 *    RemoveEnvironmentCleanupHook) when an idle garbage collection finalizes a Statement;
 *  - 13.x requires Node >= 22 and crashes on Node 20.
 * Both are installed (13 under the alias better-sqlite3-node22) and the one made for this runtime
 * is loaded. The API idsync uses is the same in both.
 */
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

const require = createRequire(import.meta.url);
const nodeMajor = Number(process.versions.node.split('.')[0]);

/** The resolved path of the driver module (for worker threads that open their own connection). */
export const SQLITE_DRIVER_PATH: string = require.resolve(nodeMajor >= 22 ? 'better-sqlite3-node22' : 'better-sqlite3');

export const Sqlite: typeof BetterSqlite3 = require(SQLITE_DRIVER_PATH);
