/**
 * Run history: every cycle, its steps with counts, and its errors — what `idsync runs` shows.
 * Kept 7 days by default (the incumbent's retention).
 */
import { currentFence } from '../store/fence.js';
import type { Database } from '../store/database.js';
import { IdsyncError } from '../core/errors.js';

export type StepName = 'import' | 'sync' | 'export';
export type RunStatus = 'running' | 'success' | 'completed-with-errors' | 'failed' | 'interrupted';

export interface StepCounts {
  adds: number;
  updates: number;
  deletes: number;
  unchanged: number;
  errors: number;
}

export const emptyCounts = (): StepCounts => ({ adds: 0, updates: 0, deletes: 0, unchanged: 0, errors: 0 });

export interface StepRecord extends StepCounts {
  connector: string;
  step: StepName;
  profile: string | null;
  status: 'success' | 'completed-with-errors' | 'failed' | 'skipped';
  startedAt: string;
  endedAt: string | null;
}

export interface RunErrorRecord {
  connector: string;
  step: StepName;
  object: string | null;
  code: string;
  message: string;
}

export interface RunRecord {
  id: number;
  profile: string;
  status: RunStatus;
  startedAt: string;
  endedAt: string | null;
  error: { code: string; message: string; hint?: string } | null;
  steps: StepRecord[];
  errors: RunErrorRecord[];
  errorCount: number;
}

export const RUN_RETENTION_DAYS = 7;
const MAX_ERRORS_PER_RUN = 1000;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class RunLog {
  constructor(private readonly db: Database) {}

  /**
   * Refuses (RUN_IN_PROGRESS) while another live process holds a run; changes nothing. For work
   * that must not overlap a cycle but is no run itself (`idsync connectors rename`).
   */
  assertIdle(): void {
    this.staleRuns();
  }

  /**
   * The runs left `running` by processes that no longer hold them (dead, or an earlier leader);
   * throws RUN_IN_PROGRESS when another live process holds one.
   */
  private staleRuns(): number[] {
    const running = this.db.prepare<[], { id: number; pid: number | null }>("SELECT id, pid FROM runs WHERE status = 'running'").all();
    for (const r of running) {
      // Under the leader lease (docs/ha.md) the lease says who runs: a run left `running` by an
      // earlier leader can write nothing more, even if its process lives on (paused, or its pid
      // is another host's), so it is interrupted rather than waited for.
      if (r.pid && r.pid !== process.pid && pidAlive(r.pid) && !currentFence()) {
        throw new IdsyncError('RUN_IN_PROGRESS', `run ${r.id} is in progress (process ${r.pid})`, {
          hint: 'Wait for it to finish (`idsync runs`), or stop the service first.',
        });
      }
    }
    return running.map((r) => r.id);
  }

  /** Starts a run; refuses when another live process holds one, and marks dead runs interrupted. */
  begin(profile: string, retentionDays = RUN_RETENTION_DAYS): number {
    return this.db.transaction(() => {
      for (const id of this.staleRuns()) this.db.prepare("UPDATE runs SET status = 'interrupted', ended_at = ? WHERE id = ?").run(new Date().toISOString(), id);
      const cutoff = new Date(Date.now() - retentionDays * 86_400_000).toISOString();
      this.db.prepare("DELETE FROM runs WHERE started_at < ? AND status <> 'running'").run(cutoff);
      const info = this.db
        .prepare("INSERT INTO runs (profile, status, started_at, pid) VALUES (?, 'running', ?, ?)")
        .run(profile, new Date().toISOString(), process.pid);
      return Number(info.lastInsertRowid);
    })();
  }

  step(runId: number, connector: string, step: StepName): StepHandle {
    const seq = (this.db.prepare<[number], { n: number }>('SELECT COUNT(*) AS n FROM run_steps WHERE run_id = ?').get(runId)?.n ?? 0) + 1;
    const startedAt = new Date().toISOString();
    this.db
      .prepare("INSERT INTO run_steps (run_id, seq, connector, step, status, started_at) VALUES (?, ?, ?, ?, 'running', ?)")
      .run(runId, seq, connector, step, startedAt);
    return new StepHandle(this.db, runId, seq, connector, step);
  }

  finish(runId: number, status: RunStatus, error?: IdsyncError): void {
    this.db
      .prepare('UPDATE runs SET status = ?, ended_at = ?, error = ? WHERE id = ?')
      .run(status, new Date().toISOString(), error ? JSON.stringify({ code: error.code, message: error.message, hint: error.hint }) : null, runId);
  }

  list(limit = 20): RunRecord[] {
    const ids = this.db.prepare<[number], { id: number }>('SELECT id FROM runs ORDER BY id DESC LIMIT ?').all(limit);
    return ids.map((r) => this.get(r.id)!);
  }

  /** The last run that is not running any more (success, with errors, failed or interrupted). */
  lastFinished(maxErrors = 3): RunRecord | undefined {
    const row = this.db.prepare<[], { id: number }>("SELECT id FROM runs WHERE status <> 'running' ORDER BY id DESC LIMIT 1").get();
    return row ? this.get(row.id, maxErrors) : undefined;
  }

  /**
   * The last step that used a connector's credential successfully: an import for a source, a written
   * export for the cloud (a preview or staging export writes nothing, so it proves nothing).
   */
  lastGoodUse(connector: string): { runId: number; endedAt: string } | undefined {
    const r = this.db
      .prepare<[string], { run_id: number; ended_at: string }>(
        `SELECT s.run_id, s.ended_at FROM run_steps s
         WHERE s.connector = ? AND s.status IN ('success', 'completed-with-errors') AND s.ended_at IS NOT NULL
           AND ((s.step = 'import') OR (s.step = 'export' AND (s.profile IS NULL OR s.profile IN ('export', 'object'))))
         ORDER BY s.ended_at DESC LIMIT 1`,
      )
      .get(connector);
    return r ? { runId: r.run_id, endedAt: r.ended_at } : undefined;
  }

  get(id: number, maxErrors = 50): RunRecord | undefined {
    const r = this.db
      .prepare<[number], { id: number; profile: string; status: RunStatus; started_at: string; ended_at: string | null; error: string | null }>(
        'SELECT id, profile, status, started_at, ended_at, error FROM runs WHERE id = ?',
      )
      .get(id);
    if (!r) return undefined;
    const steps = this.db
      .prepare<[number], Record<string, unknown>>('SELECT * FROM run_steps WHERE run_id = ? ORDER BY seq')
      .all(id)
      .map((s) => ({
        connector: s.connector as string,
        step: s.step as StepName,
        profile: (s.profile as string | null) ?? null,
        status: s.status as StepRecord['status'],
        adds: s.adds as number,
        updates: s.updates as number,
        deletes: s.deletes as number,
        unchanged: s.unchanged as number,
        errors: s.errors as number,
        startedAt: s.started_at as string,
        endedAt: (s.ended_at as string | null) ?? null,
      }));
    const errors = this.db
      .prepare<[number, number], RunErrorRecord>('SELECT connector, step, object, code, message FROM run_errors WHERE run_id = ? LIMIT ?')
      .all(id, maxErrors);
    const errorCount = this.db.prepare<[number], { n: number }>('SELECT COUNT(*) AS n FROM run_errors WHERE run_id = ?').get(id)?.n ?? 0;
    return {
      id: r.id,
      profile: r.profile,
      status: r.status,
      startedAt: r.started_at,
      endedAt: r.ended_at,
      error: r.error ? JSON.parse(r.error) : null,
      steps,
      errors,
      errorCount,
    };
  }
}

export class StepHandle {
  readonly counts: StepCounts = emptyCounts();
  private errorRows = 0;

  constructor(
    private readonly db: Database,
    readonly runId: number,
    private readonly seq: number,
    readonly connector: string,
    readonly step: StepName,
  ) {}

  /** Records an object-level or step-level error (never secret material: callers pass DNs and codes). */
  error(code: string, message: string, object?: string): void {
    this.counts.errors++;
    if (this.errorRows++ >= MAX_ERRORS_PER_RUN) return;
    this.db
      .prepare('INSERT INTO run_errors (run_id, connector, step, object, code, message) VALUES (?, ?, ?, ?, ?, ?)')
      .run(this.runId, this.connector, this.step, object ?? null, code, message);
  }

  /** Sets the start to now (a step recorded ahead, in order, that starts later: the overlapped cycle). */
  markStarted(): void {
    this.db.prepare('UPDATE run_steps SET started_at = ? WHERE run_id = ? AND seq = ?').run(new Date().toISOString(), this.runId, this.seq);
  }

  /** How the step ran: 'full' or 'delta' import, 'preview' or 'staging' export... */
  profile: string | null = null;

  end(status?: StepRecord['status']): StepRecord['status'] {
    const final = status ?? (this.counts.errors > 0 ? 'completed-with-errors' : 'success');
    const c = this.counts;
    this.db
      .prepare('UPDATE run_steps SET status = ?, profile = ?, adds = ?, updates = ?, deletes = ?, unchanged = ?, errors = ?, ended_at = ? WHERE run_id = ? AND seq = ?')
      .run(final, this.profile, c.adds, c.updates, c.deletes, c.unchanged, c.errors, new Date().toISOString(), this.runId, this.seq);
    return final;
  }
}
