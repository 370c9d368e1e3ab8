/**
 * Why a user's latest password did not sign in after a chaos trial (bench/chaos-trials.ts): what
 * each side held for that user, read straight from the data files once the trial's processes are
 * done, so that a failure that does not come back on replay still explains itself.
 *
 *   cloud  the user (id, created, version), which password its stored hash is (latest, one
 *          replaced in this trial, an earlier one, none known), the hash's change and store times,
 *          and the sign-in answers the cloud audited for the user;
 *   idsync the user's outbox row (change time, queued, version, attempts, when it is due against
 *          now, last error), the last known state (change time), the status history and the
 *          password events that name the user.
 *
 * Never a password, an NT hash or an OrgId hash: only which password (by its place in the user's
 * history and the time it was written to the directory) and times.
 */
import { existsSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { Sqlite } from '../src/store/sqlite-driver.js';
import { verifyOrgIdHash } from '../src/passwords/hash.js';

export interface PasswordChange {
  password: string;
  /** The trial that made the change (0: seeded before the first trial). */
  trial: number;
  /** When it was written to the directory (epoch ms). */
  at: number;
}

export interface ExplainInput {
  uid: string;
  userName: string;
  /** The source anchor (entryUUID), which is the cloud externalId and the outbox key. */
  anchor: string;
  /** Every password the user had, oldest first; the last is the latest. */
  history: readonly PasswordChange[];
  idsyncDb: string;
  cloudDb: string;
  /** What the token endpoint answered for the latest password (status and OAuth error). */
  answer: string;
}

const time = (ms: number): string => new Date(ms).toISOString().slice(11, 23);
const iso = (s: string | null | undefined): string => (s ? s.slice(11, 23) : '-');

function open(file: string): Database.Database | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return new Sqlite(file, { readonly: true, fileMustExist: true });
  } catch {
    return undefined;
  }
}

/** Which of the user's passwords an OrgId hash is, by its place in the history. */
async function whichPassword(hash: string, history: readonly PasswordChange[]): Promise<string> {
  for (let i = history.length - 1; i >= 0; i--) {
    if (await verifyOrgIdHash(history[i]!.password, hash)) {
      const h = history[i]!;
      const place = i === history.length - 1 ? 'the latest password' : `password ${i + 1} of ${history.length} (${history.length - 1 - i} change(s) before the latest)`;
      return `${place}, written to the directory at ${time(h.at)} in trial ${h.trial}`;
    }
  }
  return 'none of the passwords this user had';
}

export async function explainRefusedPassword(x: ExplainInput): Promise<string[]> {
  const out: string[] = [];
  const latest = x.history.at(-1);
  out.push(
    `${x.uid} (anchor ${x.anchor}): latest password written at ${latest ? time(latest.at) : '?'} in trial ${latest?.trial ?? '?'}; ` +
      `${x.history.length} password(s) in all; sign-in answered ${x.answer}; now ${time(Date.now())}`,
  );

  const cloud = open(x.cloudDb);
  if (!cloud) out.push(`cloud: cannot open ${x.cloudDb}`);
  else {
    try {
      const u = cloud.prepare('SELECT id, version, created, last_modified, active FROM scim_users WHERE external_id = ?').get(x.anchor) as
        | { id: string; version: number; created: string; last_modified: string; active: number | null }
        | undefined;
      if (!u) out.push('cloud: no user with this externalId');
      else {
        out.push(`cloud: user ${u.id} created ${iso(u.created)}, last modified ${iso(u.last_modified)}, version ${u.version}, active ${String(u.active)}`);
        const h = cloud.prepare('SELECT hash, changed_at, updated_at FROM user_password_hashes WHERE user_id = ?').get(u.id) as
          | { hash: string; changed_at: string; updated_at: string }
          | undefined;
        if (!h) out.push('cloud: no password hash stored');
        else out.push(`cloud: stored hash is ${await whichPassword(h.hash, x.history)}; its change time ${iso(h.changed_at)}, stored at ${iso(h.updated_at)}`);
      }
      const audits = cloud
        .prepare("SELECT at, result, reason FROM audit_log WHERE type = 'signin' AND lower(subject) = lower(?) ORDER BY id DESC LIMIT 6")
        .all(x.userName) as { at: string; result: string; reason: string }[];
      if (audits.length) out.push(`cloud: last sign-ins (newest first): ${audits.map((a) => `${iso(a.at)} ${a.result} ${a.reason}`).join('; ')}`);
      const batches = cloud
        .prepare("SELECT at, details FROM audit_log WHERE type = 'passwordHashes' ORDER BY id DESC LIMIT 4")
        .all() as { at: string; details: string | null }[];
      if (batches.length) out.push(`cloud: last password batches received (newest first): ${batches.map((b) => `${iso(b.at)} ${b.details ?? ''}`).join('; ')}`);
    } catch (err) {
      out.push(`cloud: cannot read: ${(err as Error).message}`);
    } finally {
      cloud.close();
    }
  }

  const db = open(x.idsyncDb);
  if (!db) out.push(`idsync: cannot open ${x.idsyncDb}`);
  else {
    try {
      const o = db
        .prepare('SELECT changed_at, queued_at, version, attempts, next_attempt_at, last_error, source FROM phs_users WHERE anchor = ? AND next_attempt_at IS NOT NULL')
        .get(x.anchor) as { changed_at: string; queued_at: string; version: number; attempts: number; next_attempt_at: number; last_error: string | null; source: string | null } | undefined;
      if (!o) out.push('idsync: outbox holds nothing for the user');
      else {
        const due = o.next_attempt_at - Date.now();
        out.push(
          `idsync: OUTBOX STILL HOLDS A CHANGE: change time ${iso(o.changed_at)}, queued ${iso(o.queued_at)} from ${o.source ?? '?'}, version ${o.version}, ` +
            `${o.attempts} attempt(s), ${due > 0 ? `due in ${due} ms (at ${time(o.next_attempt_at)})` : `due since ${-due} ms`}, last error ${o.last_error ?? '-'}`,
        );
      }
      const s = db.prepare('SELECT connector, changed_at, updated_at, nt_fp IS NOT NULL AS fp FROM phs_users WHERE anchor = ?').all(x.anchor) as {
        connector: string;
        changed_at: string | null;
        updated_at: string;
        fp: number;
      }[];
      for (const r of s) out.push(`idsync: last known state (${r.connector}): change time ${iso(r.changed_at)}, updated ${iso(r.updated_at)}, NT fingerprint ${r.fp ? 'kept' : 'none'}`);
      const st = db.prepare('SELECT status, reason, source, at, queued_at FROM phs_status WHERE anchor = ? ORDER BY id DESC LIMIT 8').all(x.anchor) as {
        status: string;
        reason: string | null;
        source: string | null;
        at: string;
        queued_at: string | null;
      }[];
      if (st.length) out.push(`idsync: status (newest first): ${st.map((r) => `${iso(r.at)} ${r.status}${r.reason ? ` (${r.reason.slice(0, 160)})` : ''} from ${r.source ?? '?'} queued ${iso(r.queued_at)}`).join('; ')}`);
      const ev = db
        .prepare("SELECT id, name, time, details FROM events WHERE details LIKE ? ESCAPE '\\' ORDER BY seq DESC LIMIT 10")
        .all(`%${x.anchor.replace(/[%_\\]/g, (c) => `\\${c}`)}%`) as { id: number; name: string; time: string; details: string }[];
      if (ev.length) out.push(`idsync: events naming the user (newest first): ${ev.map((e) => `${iso(e.time)} ${e.id} ${e.name}${/"result":"(\w+)"/.exec(e.details)?.[1] ? ` ${/"result":"(\w+)"/.exec(e.details)![1]}` : ''}`).join('; ')}`);
      const batches = db.prepare("SELECT id, name, time, details FROM events WHERE id IN (611, 650, 651, 652, 6112) ORDER BY seq DESC LIMIT 8").all() as {
        id: number;
        name: string;
        time: string;
        details: string;
      }[];
      if (batches.length) out.push(`idsync: last password events (newest first): ${batches.map((e) => `${iso(e.time)} ${e.id} ${e.name} ${e.details.slice(0, 160)}`).join('; ')}`);
    } catch (err) {
      out.push(`idsync: cannot read: ${(err as Error).message}`);
    } finally {
      db.close();
    }
  }
  return out;
}
