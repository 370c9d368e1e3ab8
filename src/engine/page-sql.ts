/**
 * Multi-row statements for a page of objects: one statement (and on PostgreSQL one round trip)
 * per slice of a page instead of one per object. The text is written once per row count, in the
 * common SQLite/PostgreSQL subset (plain `VALUES (…), (…)` lists, `RETURNING`).
 */
import type { Statement } from 'better-sqlite3';
import type { Database } from '../store/database.js';

/**
 * The row counts a page is cut into, largest first: a page of 1,000 is two statements, and any
 * other size a handful, so there are few distinct texts to prepare (each once per statement
 * cache). 500 rows of 9 parameters stay far below both stores' parameter limits.
 */
const SLICES = [500, 256, 128, 64, 32, 16, 8, 4, 2, 1];

/** `items` cut into slices of the sizes above (in order). */
export function slices<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  let at = 0;
  for (const size of SLICES) {
    while (items.length - at >= size) {
      out.push(items.slice(at, at + size));
      at += size;
    }
  }
  return out;
}

/** A multi-row statement per row count: `build(n)` writes the text for n rows. */
export class MultiRow {
  private readonly byCount = new Map<number, Statement>();

  constructor(
    private readonly db: Database,
    private readonly build: (rows: number) => string,
  ) {}

  statement(rows: number): Statement {
    let st = this.byCount.get(rows);
    if (!st) this.byCount.set(rows, (st = this.db.prepare(this.build(rows))));
    return st;
  }
}

/** `(?, ?, …), (?, ?, …)`: n rows of `width` parameters each. */
export function valuesList(rows: number, width: number): string {
  const row = `(${Array.from({ length: width }, () => '?').join(', ')})`;
  return Array.from({ length: rows }, () => row).join(', ');
}
