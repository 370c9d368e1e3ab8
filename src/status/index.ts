/**
 * One truth about status. Each question an administrator asks about a running installation has ONE
 * answer here, and every command asks this module: `idsync doctor`, `idsync service status` (with or
 * without the service), the service's `/status`, and `idsync passwords status`. Before, the same
 * question was answered three ways and the answers disagreed (issue 11): "outbox: nothing waiting"
 * next to "1 waiting", "heartbeat none yet" next to a batch 15 s ago, "no changes recorded" for a user
 * event 657 showed as Success, a source "last test FAILED" after good runs.
 *
 * Read-only: every function reads the sync database (and its event log); none writes. The SQL lives
 * with the module that owns each table (engine/runs.ts, passwords/outbox.ts...): this module words
 * and combines the answers.
 */
import type { CredentialInfo } from '../credentials/store.js';
import { RunLog, type RunRecord } from '../engine/runs.js';
import { EVENTS } from '../events/catalog.js';
import type { EventLog } from '../events/log.js';
import { redactString } from '../events/redact.js';
import { UserDirectory, type KnownUser } from '../passwords/directory.js';
import { oldestOutboxError, outboxDepth } from '../passwords/index.js';
import { StatusLog, type PasswordStatus, type PasswordStatusRecord } from '../passwords/status.js';
import type { Database } from '../store/database.js';

// ---------------------------------------------------------------------------------------------
// The password outbox
// ---------------------------------------------------------------------------------------------

export interface OutboxStatus {
  /** Every queued change. */
  depth: number;
  /** Changes the service can deliver now (their user exists in the cloud, as far as it knows). */
  deliverable: number;
  /** Changes waiting for their user to be exported first (TargetNotExported): not a backlog. */
  waitingForExport: number;
  /** When the oldest deliverable change was queued. */
  oldestQueuedAt: string | null;
  /** The last delivery error of that oldest change (redacted), and the most attempts of any. */
  lastError: string | null;
  attempts: number | null;
}

/** How many password changes wait, and for what (the outbox module owns the table and answers). */
export function outboxStatus(db: Database): OutboxStatus {
  const d = outboxDepth(db);
  return {
    depth: d.depth,
    deliverable: d.depth - d.waitingForExport,
    waitingForExport: d.waitingForExport,
    oldestQueuedAt: d.oldestQueuedAt,
    lastError: redactOrNull(d.oldestQueuedAt ? oldestOutboxError(db) : null),
    attempts: d.attempts,
  };
}

const redactOrNull = (s: string | null): string | null => (s ? redactString(s) : null);

/** The outbox in one line, worded the same everywhere. */
export function describeOutbox(o: OutboxStatus): string {
  if (o.depth === 0) return 'nothing waiting';
  const parts = [
    ...(o.deliverable > 0 ? [`${o.deliverable} to deliver${o.oldestQueuedAt ? ` (oldest queued ${o.oldestQueuedAt})` : ''}`] : []),
    ...(o.waitingForExport > 0 ? [`${o.waitingForExport} waiting for their user to be exported`] : []),
  ];
  return `${o.depth} password change(s) waiting: ${parts.join(', ')}`;
}

// ---------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------

/** The last run that is not running any more (success, with errors, failed or interrupted). */
export function lastFinishedRun(db: Database, maxErrors = 3): RunRecord | undefined {
  return new RunLog(db).lastFinished(maxErrors);
}

// ---------------------------------------------------------------------------------------------
// Password hash sync activity
// ---------------------------------------------------------------------------------------------

export interface PasswordActivity {
  /** The last heartbeat (event 654). */
  heartbeatAt: string | null;
  /** The last delivered batch (event 651). */
  lastBatchAt: string | null;
  /** The newer of the two: the pipeline was alive then. */
  lastActivityAt: string | null;
  lastActivity: 'heartbeat' | 'batch' | null;
}

/** When the password pipeline last showed life: a heartbeat or a delivered batch, whichever is newer. */
export function passwordActivity(events: EventLog): PasswordActivity {
  const heartbeatAt = events.latest(EVENTS.PHS_HEARTBEAT)?.time ?? null;
  const lastBatchAt = events.latest(EVENTS.PHS_BATCH_END)?.time ?? null;
  const hb = heartbeatAt ? Date.parse(heartbeatAt) : -Infinity;
  const batch = lastBatchAt ? Date.parse(lastBatchAt) : -Infinity;
  if (!heartbeatAt && !lastBatchAt) return { heartbeatAt, lastBatchAt, lastActivityAt: null, lastActivity: null };
  return batch > hb ? { heartbeatAt, lastBatchAt, lastActivityAt: lastBatchAt, lastActivity: 'batch' } : { heartbeatAt, lastBatchAt, lastActivityAt: heartbeatAt, lastActivity: 'heartbeat' };
}

/** The activity in one line, e.g. "last batch (event 651) 15 s ago; no heartbeat (654) yet". */
export function describePasswordActivity(a: PasswordActivity, ago: (iso: string) => string): string {
  if (!a.lastActivityAt) return 'no heartbeat (event 654) or batch (651) yet';
  const main = a.lastActivity === 'batch' ? `last batch (event 651) ${ago(a.lastActivityAt)}` : `last heartbeat (event 654) ${ago(a.lastActivityAt)}`;
  const other = a.lastActivity === 'batch' ? (a.heartbeatAt ? `heartbeat ${ago(a.heartbeatAt)}` : 'no heartbeat (654) yet') : a.lastBatchAt ? `last batch ${ago(a.lastBatchAt)}` : '';
  return other ? `${main}; ${other}` : main;
}

// ---------------------------------------------------------------------------------------------
// Credentials: the last test, and the last time the credential was used successfully
// ---------------------------------------------------------------------------------------------

export interface CredentialStatus extends CredentialInfo {
  /** The last successful step that used the credential (an import for a source, a written export for the cloud). */
  lastGoodUseAt: string | null;
  lastGoodUseRun: number | null;
  /** What the credential's state is now: a good use after a failed test means it works. */
  ok: boolean | null;
  /** When `ok` was learnt. */
  okAt: string | null;
}

/** Each stored credential with its current state: the newer of its last test and its last good use. */
export function credentialStatus(db: Database, credentials: CredentialInfo[]): CredentialStatus[] {
  const runs = new RunLog(db);
  return credentials.map((c) => {
    const use = runs.lastGoodUse(c.name);
    const useAt = use?.endedAt ?? null;
    const testAt = c.lastTestAt;
    const useIsNewer = useAt !== null && (testAt === null || Date.parse(useAt) >= Date.parse(testAt)) && Date.parse(useAt) >= Date.parse(c.changedAt);
    return {
      ...c,
      lastGoodUseAt: useAt,
      lastGoodUseRun: use?.runId ?? null,
      ok: useIsNewer ? true : c.lastTestOk,
      okAt: useIsNewer ? useAt : testAt,
    };
  });
}

/** A credential's state in one line (without its name), e.g. "ok (run 4 used it 2 min ago)". */
export function describeCredential(c: CredentialStatus, ago: (iso: string | null) => string): string {
  const changed = `changed ${ago(c.changedAt)}`;
  if (c.ok === null) return `${changed}, never tested or used`;
  if (c.okAt === c.lastGoodUseAt && c.lastGoodUseRun !== null) return `${changed}, ok: run ${c.lastGoodUseRun} used it ${ago(c.okAt)}`;
  return `${changed}, last test ${c.ok ? 'ok' : `FAILED (${c.lastErrorCode ?? 'error'})`} ${ago(c.okAt)}`;
}

// ---------------------------------------------------------------------------------------------
// A user's password history
// ---------------------------------------------------------------------------------------------

export interface PasswordHistory {
  /** The connector-space users the name designates (none: not imported, or gone). */
  users: KnownUser[];
  /** Newest first, 7 days: the status log, and results (event 657) the log lacks. */
  records: PasswordStatusRecord[];
}

/**
 * A user's password sync history by any name (anchor, sAMAccountName, UPN, uid, DN). The status log
 * and event 657 are the same facts written twice; both are read so the answer never depends on
 * which of the two a writer reached.
 */
export function passwordHistory(db: Database, events: EventLog, user: string, now: () => number = Date.now): PasswordHistory {
  const users = new UserDirectory(db).find(user);
  const anchors = new Set(users.map((u) => u.anchor));
  const dns = new Set(users.map((u) => u.dn.toLowerCase()));
  if (anchors.size === 0) anchors.add(user.trim()); // a user already gone from the connector space
  const log = new StatusLog(db, now);
  const records = [...anchors].flatMap((a) => log.forAnchor(a));
  const since = new Date(now() - 7 * 24 * 3600 * 1000);
  const seen = new Set(records.map((r) => `${r.anchor}|${r.status}|${r.at.slice(0, 19)}`));
  for (const e of events.query({ ids: [EVENTS.PHS_CHANGE_RESULT.id], since, limit: 100_000 })) {
    const anchor = typeof e.details.anchor === 'string' ? e.details.anchor : '';
    const dn = typeof e.details.dn === 'string' ? e.details.dn.toLowerCase() : '';
    if (!anchors.has(anchor) && !(dn && dns.has(dn))) continue;
    const result = String(e.details.result ?? '');
    const status: PasswordStatus = result === 'Success' || result === 'TargetNotExported' ? result : 'Error';
    const key = `${anchor}|${status}|${e.time.slice(0, 19)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    records.push({
      anchor,
      connector: typeof e.details.connector === 'string' ? e.details.connector : null,
      status,
      reason: status === 'Error' ? result : null,
      source: 'event 657',
      at: e.time,
    });
  }
  records.sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
  return { users, records };
}
