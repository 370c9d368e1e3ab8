/**
 * The PostgreSQL bridge's deferred writes (store/postgres/bridge.ts PgDatabase.defer): writes inside
 * a transaction are queued and sent as one pipelined batch with the next read or the commit. Held
 * here to the store it replaced, on a real PostgreSQL 15:
 *  - seeded random write-heavy transactions (inserts, OR IGNORE inserts and updates, order-sensitive
 *    updates, deletes, reads between them, nested transactions that fail and are caught, failing
 *    statements, batches longer than the queue) run on three stores: PostgreSQL with deferral,
 *    PostgreSQL without (IDSYNC_PG_DEFER=0's path, the reference), and SQLite. After every
 *    transaction the three agree on what the caller saw (each statement's `changes`, reads, whether
 *    and how the transaction failed) and on the tables' contents: nothing lost, nothing reordered;
 *    every `lastInsertRowid` is the id of the row it inserted;
 *  - a failure in a deferred batch fails the transaction with the statement's own SQLSTATE and
 *    rolls all of it back, as an immediate failure does;
 *  - the lever itself: a transaction of 100 writes is one round trip, not 102.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openDatabase, openStore, type Database } from '../../src/store/database.js';
import { bridgeStats, PgDatabase } from '../../src/store/postgres/bridge.js';
import { skipUnlessPostgres, sharedPostgres, type TestPostgres } from '../helpers/postgres.js';
import { prng } from '../helpers/prng.js';

const SCHEMA = `
CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL UNIQUE, v INTEGER NOT NULL, b BLOB);
CREATE TABLE acc (name TEXT PRIMARY KEY, total INTEGER NOT NULL);
INSERT INTO acc (name, total) VALUES ('a', 1);
INSERT INTO acc (name, total) VALUES ('b', 2);`;

/** What a caller can observe of a failure: the kind of constraint, the same on both engines. */
function failureKind(err: unknown): string {
  const e = err as { code?: string; message?: string };
  if (e.code === '23505' || e.code === 'SQLITE_CONSTRAINT_UNIQUE' || e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return 'unique';
  if (e.message === 'planned') return 'thrown';
  return `other: ${e.code ?? ''} ${e.message ?? String(err)}`;
}

type Op = (db: Database, log: unknown[]) => void;

/** A random transaction: a list of operations, drawn once and run on each store. */
function drawTransaction(rand: () => number, depth = 0): Op[] {
  const pick = <T,>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const key = () => `k${Math.floor(rand() * 60)}`;
  const ops: Op[] = [];
  const n = 1 + Math.floor(rand() * (depth === 0 ? 25 : 8));
  for (let i = 0; i < n; i++) {
    const kind = pick(['insert', 'insert', 'insertIgnore', 'update', 'update', 'acc', 'acc', 'delete', 'read', 'renameIgnore', 'nested', 'bulk']);
    const k = key();
    const v = Math.floor(rand() * 1000);
    const readResult = rand() < 0.5;
    switch (kind) {
      case 'insert':
        // A key already there fails the statement, and so the transaction.
        ops.push((db, log) => {
          const r = db.prepare('INSERT INTO items (k, v, b) VALUES (?, ?, ?)').run(k, v, Buffer.from([v & 255, 0, 7]));
          if (readResult) {
            const id = Number(r.lastInsertRowid);
            const actual = db.prepare('SELECT id FROM items WHERE k = ?').pluck().get(k);
            assert.equal(id, actual, `lastInsertRowid of ${k} is its row's id`);
            log.push(['insert', k, 'id ok']);
          }
        });
        break;
      case 'insertIgnore':
        ops.push((db, log) => {
          const r = db.prepare('INSERT OR IGNORE INTO items (k, v) VALUES (?, ?)').run(k, v);
          if (readResult) log.push(['insertIgnore', k, r.changes]);
        });
        break;
      case 'update':
        ops.push((db, log) => {
          const r = db.prepare('UPDATE items SET v = (v * 7 + ?) % 1000003 WHERE k = ?').run(v, k);
          if (readResult) log.push(['update', k, r.changes]);
        });
        break;
      case 'acc': {
        // Not commutative: the order of these updates shows in the total.
        const name = pick(['a', 'b']);
        ops.push((db) => void db.prepare('UPDATE acc SET total = (total * 31 + ?) % 1000000007 WHERE name = ?').run(v, name));
        break;
      }
      case 'delete':
        ops.push((db, log) => {
          const r = db.prepare('DELETE FROM items WHERE k = ?').run(k);
          if (readResult) log.push(['delete', k, r.changes]);
        });
        break;
      case 'read':
        ops.push((db, log) => log.push(['read', k, db.prepare('SELECT v FROM items WHERE k = ?').pluck().get(k) ?? null]));
        break;
      case 'renameIgnore': {
        const to = key();
        ops.push((db, log) => {
          const r = db.prepare('UPDATE OR IGNORE items SET k = ? WHERE k = ?').run(to, k);
          if (readResult) log.push(['rename', k, to, r.changes]);
        });
        break;
      }
      case 'nested': {
        if (depth > 1) break;
        const inner = drawTransaction(rand, depth + 1);
        const throwAtEnd = rand() < 0.3;
        // The caller catches the nested transaction's failure and goes on: its savepoint is rolled
        // back, the outer transaction's writes stay. Its own log counts only when it committed.
        ops.push((db, log) => {
          const sub: unknown[] = [];
          try {
            db.transaction(() => {
              for (const op of inner) op(db, sub);
              if (throwAtEnd) throw new Error('planned');
            })();
            log.push(['nested ok', sub]);
          } catch (err) {
            log.push(['nested failed', failureKind(err)]);
          }
        });
        break;
      }
      case 'bulk': {
        // More writes than the queue holds (1,000): sent in several batches, in order.
        if (depth > 0 || rand() < 0.7) break;
        const base = Math.floor(rand() * 1e6);
        ops.push((db) => {
          const ins = db.prepare('INSERT INTO items (k, v) VALUES (?, ?)');
          const acc = db.prepare('UPDATE acc SET total = (total * 31 + ?) % 1000000007 WHERE name = ?');
          for (let j = 0; j < 1500; j++) {
            ins.run(`bulk-${base}-${j}`, j);
            acc.run(j, 'a');
          }
        });
        break;
      }
    }
  }
  if (depth === 0 && rand() < 0.1) ops.push(() => {
    throw new Error('planned');
  });
  return ops;
}

function contents(db: Database): unknown {
  return {
    items: db.prepare('SELECT k, v, b FROM items ORDER BY k').raw().all(),
    acc: db.prepare('SELECT name, total FROM acc ORDER BY name').raw().all(),
  };
}

describe('store/postgres deferred writes', { skip: skipUnlessPostgres() }, () => {
  let pg: TestPostgres;
  const open: Database[] = [];
  before(async () => {
    pg = await sharedPostgres();
  });
  after(() => {
    for (const db of open) db.close();
  });

  async function pgStore(defer: boolean): Promise<PgDatabase> {
    const db = openStore({ type: 'postgres', url: await pg.createDatabase() }) as PgDatabase;
    db.deferWrites = defer;
    db.exec(SCHEMA);
    open.push(db);
    return db;
  }

  for (const seed of (process.env.IDSYNC_DEFER_SEEDS ?? '1,2,3,4').split(',').map(Number)) {
    test(`seed ${seed}: 60 random write-heavy transactions agree with immediate PostgreSQL and with SQLite, after each one`, { timeout: 600_000 }, async () => {
      const stores: [string, Database][] = [
        ['PostgreSQL, deferred', await pgStore(true)],
        ['PostgreSQL, immediate', await pgStore(false)],
        ['SQLite', openDatabase(':memory:')],
      ];
      stores[2]![1].exec(SCHEMA);
      open.push(stores[2]![1]);
      const rand = prng(seed);
      let failed = 0;
      for (let t = 0; t < 60; t++) {
        const ops = drawTransaction(rand);
        const seen = stores.map(([name, db]) => {
          const log: unknown[] = [];
          let outcome: string;
          try {
            db.transaction(() => {
              for (const op of ops) op(db, log);
            })();
            outcome = 'committed';
          } catch (err) {
            outcome = `failed: ${failureKind(err)}`;
          }
          assert.equal(db.inTransaction, false, name);
          // A failed transaction's partial log is not compared: without deferral it stops at the
          // failing statement, with it at the next statement that is sent (docs/store.md).
          return { name, outcome, log: outcome === 'committed' ? log : [], contents: contents(db) };
        });
        if (seen[0]!.outcome !== 'committed') failed++;
        for (const other of seen.slice(1)) {
          assert.deepEqual(seen[0], { ...other, name: seen[0]!.name }, `seed ${seed}, transaction ${t}: ${seen[0]!.name} and ${other.name} differ`);
        }
      }
      // The sequences exercise both ends: most transactions commit, some fail.
      assert.ok(failed > 0 && failed < 60, `seed ${seed}: ${failed} of 60 transactions failed`);
    });
  }

  test('a failure in a deferred batch fails the transaction with the statement\'s SQLSTATE, and nothing of it is written', async () => {
    for (const defer of [true, false]) {
      const db = await pgStore(defer);
      db.prepare("INSERT INTO items (k, v) VALUES ('dup', 1)").run();
      const ins = db.prepare('INSERT INTO items (k, v) VALUES (?, ?)');
      const err = (() => {
        try {
          db.transaction(() => {
            for (let i = 0; i < 10; i++) ins.run(`x${i}`, i);
            ins.run('dup', 2);
            for (let i = 10; i < 20; i++) ins.run(`x${i}`, i);
          })();
        } catch (e) {
          return e as { code?: string; name?: string };
        }
        return undefined;
      })();
      assert.equal(err?.code, '23505', `defer ${defer}`);
      assert.equal(err?.name, 'PgStatementError');
      assert.deepEqual(db.prepare('SELECT k FROM items ORDER BY k').pluck().all(), ['dup'], `defer ${defer}: rolled back`);
      assert.equal(db.inTransaction, false);
      // The session is usable after it.
      db.transaction(() => ins.run('after', 1))();
      assert.equal(db.prepare("SELECT v FROM items WHERE k = 'after'").pluck().get(), 1);
    }
  });

  test('a transaction of 100 writes is one round trip with deferral (101 without: BEGIN goes with the first)', async () => {
    for (const [defer, expected] of [
      [true, 1],
      [false, 101],
    ] as const) {
      const db = await pgStore(defer);
      const ins = db.prepare('INSERT INTO items (k, v) VALUES (?, ?)');
      const before = bridgeStats();
      db.transaction(() => {
        for (let i = 0; i < 100; i++) ins.run(`r${i}`, i);
      })();
      const trips = bridgeStats().roundTrips - before.roundTrips;
      assert.equal(trips, expected, `defer ${defer}`);
      assert.equal(db.prepare('SELECT COUNT(*) FROM items').pluck().get(), 100);
    }
  });
});
