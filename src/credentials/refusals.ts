/**
 * Secrets a directory refused, so that no component presents the same one again (DESIGN.md §4,
 * smart lockout's mirror): the incumbent's KB 2962509 outage returns as a lockout otherwise — every
 * queued change, every `doctor` run, each retrying the old password until the cloud locks the
 * account and refuses the administrator's correct new one.
 *
 * A refusal is recorded once, against a keyed fingerprint of the secret (HMAC with the store key:
 * the row says nothing about the secret to whoever reads the database), in the database, so every
 * process (the service, `doctor`, `credentials test`) and a restart see it. A changed secret has
 * another fingerprint and is presented at once; the refused one is re-probed by one process at
 * most every `recheckMs`, so a fix made on the cloud's side (the old password set back) recovers too.
 * A locked answer is recorded the same way until the lock ends: the secret was not checked then.
 */
import type { Database, Migration } from '../store/database.js';

export const refusalMigrations: Migration[] = [
  {
    id: 'credentials/002-refused-secrets',
    sql: `
      CREATE TABLE credential_refusals (
        connector      TEXT NOT NULL,
        fingerprint    TEXT NOT NULL,
        refused_at     INTEGER NOT NULL,
        not_before     INTEGER NOT NULL,
        code           TEXT NOT NULL,
        reason         TEXT NOT NULL,
        locked_seconds INTEGER,
        PRIMARY KEY (connector, fingerprint)
      ) WITHOUT ROWID;
    `,
  },
];

/** Default time before a refused, unchanged secret is presented once more (configurable per connector). */
export const DEFAULT_RECHECK_MS = 15 * 60 * 1000;

/** Refusals of secrets no longer in use are forgotten after this long. */
const KEEP_MS = 7 * 86_400_000;

export interface RefusalRecord {
  connector: string;
  /** ISO time the directory first refused this secret (a re-probe refused again keeps it). */
  refusedAt: string;
  /** ISO time from which the unchanged secret may be presented once more. */
  nextAttemptAt: string;
  /** The directory's answer, e.g. invalid_grant, invalid_client, HTTP 401, locked. */
  code: string;
  /** The refusal in plain words (never the secret). */
  reason: string;
  /** Set when the directory said the account was locked: the secret itself was not checked. */
  lockedSeconds?: number;
}

export interface RefusalInput {
  code: string;
  reason: string;
  lockedSeconds?: number | undefined;
}

export type PresentDecision = { present: true; probe: boolean } | { present: false; refusal: RefusalRecord };

interface Row {
  connector: string;
  fingerprint: string;
  refused_at: number;
  not_before: number;
  code: string;
  reason: string;
  locked_seconds: number | null;
}

const toRecord = (r: Row): RefusalRecord => ({
  connector: r.connector,
  refusedAt: new Date(r.refused_at).toISOString(),
  nextAttemptAt: new Date(r.not_before).toISOString(),
  code: r.code,
  reason: r.reason,
  ...(r.locked_seconds !== null ? { lockedSeconds: r.locked_seconds } : {}),
});

/** The store's record of refused secrets; `fingerprint` is the store's keyed digest of a secret. */
export class RefusedSecrets {
  constructor(
    private readonly db: Database,
    private readonly fingerprint: (connector: string, secret: string) => string,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Whether `secret` may be presented to the directory now. A refused secret may once its re-probe
   * time has come, and then only for the one caller that claims it (an atomic update), so several
   * processes do not all probe at once.
   */
  mayPresent(connector: string, secret: string, recheckMs: number = DEFAULT_RECHECK_MS): PresentDecision {
    const fp = this.fingerprint(connector, secret);
    const row = this.row(connector, fp);
    if (!row) return { present: true, probe: false };
    const now = this.now();
    if (now >= row.not_before) {
      const claimed = this.db
        .prepare('UPDATE credential_refusals SET not_before = ? WHERE connector = ? AND fingerprint = ? AND not_before = ?')
        .run(now + recheckMs, connector, fp, row.not_before).changes;
      if (claimed === 1) return { present: true, probe: true };
      return { present: false, refusal: toRecord(this.row(connector, fp) ?? row) };
    }
    return { present: false, refusal: toRecord(row) };
  }

  /** Records that the directory refused `secret` (or was locked): not presented again before `recheckMs`. */
  recordRefusal(connector: string, secret: string, input: RefusalInput, recheckMs: number = DEFAULT_RECHECK_MS): RefusalRecord {
    const now = this.now();
    // A lock is waited out, then the secret (which was not checked) may be tried once.
    const wait = input.lockedSeconds !== undefined ? Math.max(1000, input.lockedSeconds * 1000) : recheckMs;
    const row: Row = {
      connector,
      fingerprint: this.fingerprint(connector, secret),
      refused_at: now,
      not_before: now + wait,
      code: input.code,
      reason: input.reason,
      locked_seconds: input.lockedSeconds ?? null,
    };
    this.db
      .prepare(
        `INSERT INTO credential_refusals (connector, fingerprint, refused_at, not_before, code, reason, locked_seconds)
         VALUES (@connector, @fingerprint, @refused_at, @not_before, @code, @reason, @locked_seconds)
         ON CONFLICT (connector, fingerprint) DO UPDATE SET not_before = excluded.not_before,
           code = excluded.code, reason = excluded.reason, locked_seconds = excluded.locked_seconds`,
      )
      .run(row);
    // Secrets no one has tried for a week are no longer in use anywhere.
    this.db.prepare('DELETE FROM credential_refusals WHERE not_before < ?').run(now - KEEP_MS);
    // As stored: the same secret refused again (a re-probe, or two processes at once) is the same
    // refusal, with its first time, so that it is reported once.
    return toRecord(this.row(connector, row.fingerprint) ?? row);
  }

  /** The directory accepted a secret of this connector: every refusal recorded for it is moot. */
  recordAccepted(connector: string): void {
    this.db.prepare('DELETE FROM credential_refusals WHERE connector = ?').run(connector);
  }

  /** The recorded refusal of this very secret, if any (read-only: claims nothing). */
  refusalOf(connector: string, secret: string): RefusalRecord | undefined {
    const row = this.row(connector, this.fingerprint(connector, secret));
    return row ? toRecord(row) : undefined;
  }

  /**
   * A connector renamed: the refusal of its stored secret (fingerprint `fromFp`) moves to the new
   * name under `toFp`; its other refusals (secrets no longer stored) are dropped.
   */
  move(from: string, fromFp: string, to: string, toFp: string): void {
    this.db.prepare('UPDATE credential_refusals SET connector = ?, fingerprint = ? WHERE connector = ? AND fingerprint = ?').run(to, toFp, from, fromFp);
    this.forget(from);
  }

  /** Drops every refusal recorded for a connector. */
  forget(connector: string): void {
    this.db.prepare('DELETE FROM credential_refusals WHERE connector = ?').run(connector);
  }

  private row(connector: string, fp: string): Row | undefined {
    try {
      return this.db.prepare('SELECT * FROM credential_refusals WHERE connector = ? AND fingerprint = ?').get(connector, fp) as Row | undefined;
    } catch (err) {
      // A database opened read-only by an older migration set has no table yet: nothing recorded.
      if (/no such table/.test((err as Error).message)) return undefined;
      throw err;
    }
  }
}
