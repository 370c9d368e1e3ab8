/**
 * Password hash synchronization (PHS): intake → durable outbox → delivery → per-user status.
 *
 *   password change notification ─┐
 *   LDAP sambaNTPassword (import) ─┼─▶ OrgId hash ─▶ phs_users (sealed, latest wins) ─▶ POST /api/v1/passwordHashes
 *   Samba DC agent (DirSync)      ─┘                                                     (≤ 50 users per batch)
 *
 * A plaintext password lives only for the time it takes to hash it (acceptPassword); NT hashes
 * only as keyed fingerprints; OrgId hashes only sealed with the data key. See docs/password-hash-sync.md.
 */
import { classifyFailure, type CloudClient } from '../connectors/cloud/client.js';
import { toIdsyncError } from '../core/errors.js';
import type { RefusalRecord } from '../credentials/refusals.js';
import { EVENTS } from '../events/catalog.js';
import type { EventLog } from '../events/log.js';
import { migrate, type Database } from '../store/database.js';
import { Delivery, isAuthFailure, type DeliveryCounts } from './delivery.js';
import { UserDirectory, type KnownUser } from './directory.js';
import { passwordError } from './errors.js';
import { hashPoolThreads, isOrgIdHash, ntHash, orgIdHashFromNt } from './hash.js';
import { PasswordKeys } from './keys.js';
import { passwordMigrations } from './migrations.js';
import { lowerHashPoolPriority } from './pool-priority.js';
import { IntakeCheckpoints } from './checkpoints.js';
import { IntakeWriter, type IntakeWriterOptions } from './intake.js';
import { Outbox, type EnqueueResult, type OutboxWrite } from './outbox.js';
import { StatusLog, type PasswordStatusRecord } from './status.js';

export { passwordMigrations } from './migrations.js';
export type { PasswordStatus, PasswordStatusRecord } from './status.js';
export type { DeliveryCounts } from './delivery.js';

export const DEFAULT_BATCH_SIZE = 50;
export const DEFAULT_HEARTBEAT_MS = 30 * 60 * 1000;
export const DEFAULT_POLL_MS = 1000;
export const DEFAULT_MAX_BACKOFF_MS = 5 * 60 * 1000;
/** Most changes per transaction on the import path. */
export const INTAKE_BATCH = 256;

/**
 * Hashes in flight on the import path: enough that libuv's pool (UV_THREADPOOL_SIZE, default 4)
 * stays busy while the main thread writes a transaction of INTAKE_BATCH rows (≈ 4 ms on 2 cores,
 * in which the pool computes ≈ 40 hashes), and at least twice the pool. With 8 in flight (twice
 * the pool, the default before) the pool ran dry during every such write: measured on 2 cores at
 * the same priority, 8,359 hashes/s with 8 in flight, 9,610 with 32, 9,922 with 64 (raw PBKDF2:
 * 10,031, 10,953 and 11,186 at the same numbers in flight).
 */
export const IMPORT_HASHES_IN_FLIGHT = 64;

export function defaultHashConcurrency(): number {
  return Math.max(IMPORT_HASHES_IN_FLIGHT, 2 * hashPoolThreads());
}

export interface PasswordPipelineOptions {
  /** Users per request to the cloud (1–50; default 50, the incumbent's). */
  batchSize?: number;
  /** Batches in flight at once (default 4). */
  concurrency?: number;
  /** Heartbeat (ping) when idle this long (default 30 min). */
  heartbeatMs?: number;
  /** How often the loop looks at the outbox for items queued by other processes (default 1 s). */
  pollMs?: number;
  /** First retry delay (default 1 s); doubles per attempt up to maxBackoffMs. */
  baseBackoffMs?: number;
  /** Longest retry delay (default 5 min). */
  maxBackoffMs?: number;
  /** Clock, for tests. */
  now?: () => number;
  /** The notification path's coalescing window (intake.ts); defaults: 3 ms, 256 changes. */
  intake?: IntakeWriterOptions;
}

export interface PasswordPipelineDeps {
  db: Database;
  /** A client, or a function returning the client to use now. The pipeline never closes it. */
  cloud: CloudClient | (() => CloudClient);
  events: EventLog;
  /** The credential store's 32-byte data key (loadOrCreateKey(dataDir).key). */
  key: Buffer;
  /**
   * The cloud credential's version (e.g. its changed-at time), read each loop: when it changes,
   * everything waiting is retried at once instead of after its backoff.
   */
  credentialVersion?: () => string | undefined;
  /**
   * The refusal of the cloud credential in use while it is recorded and not due for a re-probe
   * (credentials/refusals.ts): the loop then leaves the outbox alone instead of trying batches that
   * would only meet the refusal again (and fill the event log with 650/656/651).
   */
  credentialRefused?: () => RefusalRecord | undefined;
  /** Where the loop says what it cannot put in the event log (default: standard error). */
  log?: (level: 'warn' | 'error', msg: string) => void;
  options?: PasswordPipelineOptions;
}

/** The default of a background loop's `log`: what it cannot put in the event log, on standard error. */
export function logToStderr(_level: 'warn' | 'error', msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/** How long a change waits for its user to appear in the cloud before it is dropped. */
const UNEXPORTED_RETENTION_MS = 7 * 86_400_000;

export class PasswordPipeline {
  readonly events: EventLog;
  private readonly db: Database;
  private readonly keys: PasswordKeys;
  private readonly outboxStore: Outbox;
  private readonly statusLog: StatusLog;
  private readonly users: UserDirectory;
  private readonly delivery: Delivery;
  private readonly opts: Required<Omit<PasswordPipelineOptions, 'now' | 'intake'>>;
  private readonly intake: IntakeWriter;
  /** The intake's WAL checkpoints, on a worker thread (SQLite files only). */
  private readonly checkpoints: IntakeCheckpoints | undefined;
  /** Per user, the hand-over to the writer of the change that arrived last (inOrder). */
  private readonly submitted = new Map<string, Promise<void>>();
  private readonly now: () => number;
  private readonly cloud: () => CloudClient;

  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private woken = false;
  private lastActivity = 0;
  private lastPrune = 0;
  private credentialVersion: (() => string | undefined) | undefined;
  private readonly credentialRefused: (() => RefusalRecord | undefined) | undefined;
  private lastCredentialVersion: string | undefined;
  /** The last pass delivered nothing because the cloud credential is recorded as refused. */
  private heldByRefusal = false;
  /** The code of the failure the loop's last pass threw (said once: passFailed). */
  private failing: string | undefined;
  private readonly log: (level: 'warn' | 'error', msg: string) => void;

  constructor(deps: PasswordPipelineDeps) {
    this.db = deps.db;
    this.events = deps.events;
    this.credentialVersion = deps.credentialVersion;
    this.credentialRefused = deps.credentialRefused;
    this.log = deps.log ?? logToStderr;
    this.now = deps.options?.now ?? Date.now;
    const o = deps.options ?? {};
    this.opts = {
      batchSize: Math.max(1, Math.min(DEFAULT_BATCH_SIZE, o.batchSize ?? DEFAULT_BATCH_SIZE)),
      concurrency: Math.max(1, Math.min(16, o.concurrency ?? 4)),
      heartbeatMs: o.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
      pollMs: o.pollMs ?? DEFAULT_POLL_MS,
      baseBackoffMs: Math.max(1, o.baseBackoffMs ?? 1000),
      maxBackoffMs: Math.max(1, o.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS),
    };
    // Idempotent; the main database's migration list applies them as well.
    migrate(this.db, passwordMigrations);
    this.keys = new PasswordKeys(deps.key);
    this.outboxStore = new Outbox(this.db, this.keys, this.now);
    this.statusLog = new StatusLog(this.db, this.now);
    this.users = new UserDirectory(this.db);
    this.intake = new IntakeWriter((changes) => this.write(changes), o.intake);
    this.checkpoints = IntakeCheckpoints.for(this.db);
    const cloud = deps.cloud;
    this.cloud = typeof cloud === 'function' ? cloud : () => cloud;
    this.delivery = new Delivery(
      this.outboxStore,
      this.statusLog,
      this.users,
      this.events,
      this.cloud,
      { batchSize: this.opts.batchSize, concurrency: this.opts.concurrency, baseBackoffMs: this.opts.baseBackoffMs, maxBackoffMs: this.opts.maxBackoffMs },
      this.now,
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Intake
  // ---------------------------------------------------------------------------------------------

  /** Resolves a user name (anchor, sAMAccountName, UPN, uid or DN) to one connector-space user. */
  resolveUser(user: string): KnownUser {
    const found = this.users.find(user);
    if (found.length === 0) {
      throw passwordError('PASSWORD_USER_UNKNOWN', `no user "${user.slice(0, 256)}" in any connector space`, {
        hint: 'Use the sAMAccountName, userPrincipalName, DN or anchor of a user that idsync has imported; run `idsync sync` if the user is new.',
        details: { user: user.slice(0, 256) },
      });
    }
    const anchors = new Set(found.map((u) => u.anchor));
    if (anchors.size > 1) {
      throw passwordError('PASSWORD_USER_UNKNOWN', `"${user.slice(0, 256)}" names ${anchors.size} different users`, {
        hint: 'Use the userPrincipalName, the DN or the anchor, which are unique.',
        details: { user: user.slice(0, 256), matches: anchors.size },
      });
    }
    return found[0]!;
  }

  /**
   * The notification path's coalescing: changes waiting now, transactions and changes written; and
   * the WAL checkpoints the intake's worker ran (checkpoints.ts).
   */
  intakeStats(): { pending: number; transactions: number; changes: number; checkpoints: number } {
    return { ...this.intake.stats(), checkpoints: this.checkpoints?.done ?? 0 };
  }

  /**
   * Password change notification: hashes the password at once (NT, then OrgId) and queues the
   * hash. The plaintext is not stored, logged or returned, and no error message contains it; it is
   * dropped as soon as the NT hash is computed. Resolves once the change is on disk.
   */
  async acceptPassword(user: string, password: string, source = 'pcn'): Promise<{ anchor: string }> {
    if (typeof user !== 'string' || typeof password !== 'string' || password.length === 0) {
      throw passwordError('PASSWORD_INPUT_INVALID', 'a password change needs a user name and a non-empty password', {
        hint: 'Send {"user": "<sAMAccountName, UPN, DN or anchor>", "password": "<new password>"}.',
      });
    }
    const u = this.resolveUser(user);
    // The change time is its arrival, taken before any await: of two changes of one user, the one
    // that arrived later is the newer one, whichever hash finishes first.
    const at = new Date(this.now());
    const nt = await ntHash(password);
    await this.queueNtHash(u.connector, u.anchor, nt, this.changeTime(u.anchor, at), true, source);
    return { anchor: u.anchor };
  }

  /**
   * Queues the OrgId hash of an NT hash (and remembers the NT hash's keyed fingerprint). Changes
   * arriving within a few milliseconds share one transaction (intake.ts); resolves once on disk.
   */
  async acceptNtHash(connector: string, anchor: string, nt: Buffer, changedAt?: Date, source = 'nt-hash'): Promise<void> {
    await this.queueNtHash(connector, anchor, nt, this.changeTime(anchor, changedAt), changedAt === undefined, source);
  }

  /** `arrival`: dated by its arrival here, so never older than what is known of the user (outbox.ts). */
  private async queueNtHash(connector: string, anchor: string, nt: Buffer, at: Date, arrival: boolean, source: string): Promise<void> {
    this.hashingStarts();
    const fp = this.keys.fingerprint(connector, anchor, nt);
    const res = await this.inOrder(anchor, orgIdHashFromNt(nt), (hash) => ({ connector, anchor, hash, changedAt: at, source, fp, arrival }));
    if (res === 'queued') this.kick();
  }

  /** Queues an OrgId hash computed elsewhere (the DC agent). Resolves once on disk. */
  async acceptOrgIdHash(connector: string, anchor: string, orgIdHash: string, changedAt?: Date, source = 'agent'): Promise<void> {
    this.assertOrgIdHash(anchor, orgIdHash);
    const at = this.changeTime(anchor, changedAt);
    const arrival = changedAt === undefined;
    const res = await this.inOrder(anchor, Promise.resolve(orgIdHash), (hash) => ({ connector, anchor, hash, changedAt: at, source, arrival }));
    if (res === 'queued') this.kick();
  }

  /**
   * Many OrgId hashes computed elsewhere (a batch from the DC agent), in ONE transaction: all are
   * queued or, when the store fails, none. Every item is checked before anything is written.
   * Returns how many were queued (the others were older than what is known).
   */
  acceptOrgIdHashes(items: readonly { connector: string; anchor: string; orgIdHash: string; changedAt?: Date }[], source = 'agent'): number {
    const changes: OutboxWrite[] = items.map((it) => {
      this.assertOrgIdHash(it.anchor, it.orgIdHash);
      return { connector: it.connector, anchor: it.anchor, hash: it.orgIdHash, changedAt: this.changeTime(it.anchor, it.changedAt), source, arrival: it.changedAt === undefined };
    });
    // What waits in the window goes first, so this batch cannot be overtaken by an older change.
    this.intake.flush();
    const queued = this.write(changes).filter((r) => r === 'queued').length;
    if (queued > 0) this.kick();
    return queued;
  }

  /**
   * For sources that are polled (LDAP sambaNTPassword): queues the hash only when it differs from
   * the one seen last time for this user. Returns whether it was queued.
   */
  async observeNtHash(connector: string, anchor: string, nt: Buffer, changedAt?: Date): Promise<boolean> {
    const fp = this.keys.fingerprint(connector, anchor, nt);
    const prev = this.outboxStore.fingerprint(connector, anchor);
    if (prev && prev.equals(fp)) return false;
    await this.queueNtHash(connector, anchor, nt, this.changeTime(anchor, changedAt), false, 'ldap'); // read, not notified: dated by the read
    return true;
  }

  /**
   * observeNtHash for a page of users at once (the import path). The OrgId hashes are computed
   * `concurrency` at a time on the thread pool (default 64: defaultHashConcurrency), each
   * user's fingerprint computed as its hash is started, and written in transactions of up to
   * INTAKE_BATCH while the next hashes are computed (measured: transactions of 16 rows kept the
   * pool busier during a write but cost ≈ 4 µs more CPU a row in commits and WAL pages, and were
   * no faster in the bench). Once every hash of the page is started, what is
   * ready is written as soon as it is at least as much as what is still hashing, so the page ends
   * with a write of a few rows, not of up to 256 with the pool idle. A user listed twice counts
   * once, with the later entry. No per-user "Queued" status here: the outbox row is the user's
   * "Queued" (status.ts), and the delivery records Success or Error. Returns how many changed.
   *
   * `readAt`: when the source began reading these hashes (default now). A change accepted after
   * it (a notification) is newer than what the read saw, and the outbox keeps the newer one: a
   * page read before a password change and handed over after its notification must not win.
   */
  async observeNtHashes(connector: string, items: { anchor: string; nt: Buffer }[], concurrency = defaultHashConcurrency(), source = 'ldap', readAt?: Date): Promise<number> {
    if (items.length === 0) return 0;
    const last = new Map<string, number>();
    items.forEach(({ anchor }, i) => {
      this.assertAnchor(anchor);
      last.set(anchor, i);
    });
    const known = this.outboxStore.fingerprints(connector, [...last.keys()]);
    this.hashingStarts();
    const at = readAt ?? new Date(this.now());
    let ready: OutboxWrite[] = [];
    const flush = (): void => {
      const batch = ready;
      ready = [];
      if (this.write(batch).includes('queued')) this.kick();
    };
    let next = 0;
    let hashing = 0;
    let changed = 0;
    let failed: unknown;
    /** The next user whose hash changed (its fingerprint computed here, as the hashes go). */
    const nextChanged = (): OutboxWrite & { nt: Buffer } | undefined => {
      while (next < items.length) {
        const i = next++;
        const { anchor, nt } = items[i]!;
        if (last.get(anchor) !== i) continue;
        const fp = this.keys.fingerprint(connector, anchor, nt);
        const prev = known.get(anchor);
        if (prev && prev.equals(fp)) continue;
        return { connector, anchor, hash: '', changedAt: at, source, fp, nt };
      }
      return undefined;
    };
    await Promise.all(
      Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, async () => {
        for (let c = nextChanged(); c !== undefined && failed === undefined; c = nextChanged()) {
          changed++;
          hashing++;
          let hash: string;
          try {
            hash = await orgIdHashFromNt(c.nt);
          } catch (err) {
            failed ??= err;
            return;
          } finally {
            hashing--;
          }
          // Only the OrgId hash is kept; the NT hash of this item is no longer needed.
          ready.push({ connector, anchor: c.anchor, hash, changedAt: at, source, fp: c.fp });
          if (ready.length >= INTAKE_BATCH || (next >= items.length && ready.length >= hashing)) flush();
        }
      }),
    );
    if (ready.length > 0) flush();
    if (failed !== undefined) throw failed;
    return changed;
  }

  /**
   * The export created, re-created, adopted or re-enabled these users' cloud objects (anchors =
   * cloud externalIds): their current hash goes out again, without `passwords resync`.
   */
  followCloudObjects(anchors: readonly string[]): number {
    const queued = this.outboxStore.requeueForCloudObjects(anchors);
    for (const q of queued) this.statusLog.record(q.anchor, q.connector, 'Queued', 'the user has a new or re-enabled cloud object', 'cloud-object');
    if (anchors.length > 0) this.kick();
    return queued.length;
  }

  /**
   * From the first hash on, the event loop comes before libuv's hashing threads (pool-priority.ts;
   * once per process): not at construction, so a service without password sync traffic leaves
   * its pool as it is.
   */
  private hashingStarts(): void {
    void lowerHashPoolPriority();
  }

  /** Which connector space holds an anchor (for senders that do not say). */
  connectorOf(anchor: string): string | undefined {
    return this.users.connectorOf(anchor);
  }

  private assertAnchor(anchor: string): void {
    if (typeof anchor !== 'string' || anchor.length === 0 || anchor.length > 1024) {
      throw passwordError('PASSWORD_INPUT_INVALID', 'a password change needs the user\'s anchor (1 to 1024 characters)', {
        hint: 'Pass the anchor (AD objectGUID as base64, LDAP entryUUID) as the cloud externalId.',
      });
    }
  }

  private assertOrgIdHash(anchor: string, orgIdHash: string): void {
    if (typeof orgIdHash !== 'string' || !isOrgIdHash(orgIdHash)) {
      throw passwordError('PASSWORD_INPUT_INVALID', `the OrgId hash for ${String(anchor).slice(0, 256)} is malformed`, {
        hint: 'Expected v1;PPH1_MD4,<salt hex>,<iterations>,<64 hex digits>; as computed by `idsync hash orgid`.',
        details: { anchor: String(anchor).slice(0, 256) },
      });
    }
  }

  /** Checks the anchor and the change time (default: now, the arrival). */
  private changeTime(anchor: string, changedAt: Date | undefined): Date {
    this.assertAnchor(anchor);
    const at = changedAt ?? new Date(this.now());
    if (Number.isNaN(at.getTime())) {
      throw passwordError('PASSWORD_INPUT_INVALID', `the change time for ${anchor} is not a valid date`, { details: { anchor } });
    }
    return at;
  }

  /**
   * Submits one change to the coalescing writer, keeping each user's changes in arrival order:
   * the hash is computed at once (concurrently with every other), but a user's change is handed
   * to the writer only after that user's previous change was, so the later one is applied later
   * (in the same transaction or a later one) and wins.
   */
  private async inOrder(anchor: string, hash: Promise<string>, change: (hash: string) => OutboxWrite): Promise<EnqueueResult> {
    const before = this.submitted.get(anchor);
    let handedOver!: () => void;
    const mine = new Promise<void>((resolve) => (handedOver = resolve));
    this.submitted.set(anchor, mine);
    this.intake.hashStarted();
    let hashEnded = false;
    try {
      const h = await hash;
      this.intake.hashEnded();
      hashEnded = true;
      if (before) await before;
      const done = this.intake.submit(change(h));
      handedOver();
      return await done;
    } finally {
      if (!hashEnded) this.intake.hashEnded();
      handedOver();
      if (this.submitted.get(anchor) === mine) this.submitted.delete(anchor);
    }
  }

  /**
   * Writes changes in ONE transaction. No status row per change: the outbox row is the change's
   * "Queued" until the delivery records its outcome (status.ts).
   */
  private write(changes: readonly OutboxWrite[]): EnqueueResult[] {
    if (!this.checkpoints) return this.outboxStore.enqueueMany(changes);
    return this.checkpoints.write(changes.length, () => this.outboxStore.enqueueMany(changes));
  }

  // ---------------------------------------------------------------------------------------------
  // Delivery
  // ---------------------------------------------------------------------------------------------

  /** Delivers everything due now (one pass). */
  async deliverOnce(): Promise<DeliveryCounts> {
    const refusal = this.credentialRefused?.();
    this.heldByRefusal = refusal !== undefined;
    if (refusal) {
      // Changes wait. The service's loop says why, once per refusal: the refusal may have been met
      // by another process (`idsync doctor`, `credentials test`) whose output the people watching
      // the service's events for 115/655 never see. Nothing is presented to the cloud. (One-shot
      // commands, e.g. a scheduled `idsync sync`, do not repeat it at every run.)
      const due = this.running ? this.outboxStore.depth().nextAttemptAt : undefined;
      if (due !== undefined && due <= this.now()) {
        const e = this.cloud().recordedRefusal(refusal);
        this.delivery.reportFailure(e, classifyFailure(e), 'cloud', 0);
      }
      return { delivered: 0, waiting: 0, failed: 0 };
    }
    const counts = await this.delivery.deliverDue();
    if (counts.delivered + counts.waiting + counts.failed > 0) this.lastActivity = this.now();
    return counts;
  }

  /**
   * A cycle's delivery: what is due now, then what this pipeline's loop already had in flight, so
   * that a cycle in `idsync serve` (which shares the service's pipeline) ends with its users'
   * passwords answered rather than skipping the ones the loop took first.
   */
  async deliverSettled(): Promise<DeliveryCounts> {
    const counts = await this.deliverOnce();
    await this.delivery.settled();
    return counts;
  }

  /** Starts the background loop: delivers as soon as something is queued, backs off on failure. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.failing = undefined; // a new term (HA) says its failures again
    this.lastActivity = this.now();
    this.delivery.restart();
    this.loop = this.run();
  }

  /** Stops the loop after the pass in flight; queued items stay in the outbox. */
  async stop(): Promise<void> {
    this.intake.flush();
    await this.checkpoints?.close();
    if (!this.running) return;
    this.running = false;
    this.kick();
    await this.loop;
    this.loop = undefined;
  }

  private kick(): void {
    this.delivery.notify();
    this.woken = true;
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /**
   * The loop. Nothing a pass meets may end it: a rejection here would be unhandled and end the
   * process (the resumed old leader of an HA pair did, when its first write met the lost lease).
   * A failed pass is said once per kind of failure and the loop tries again after pollMs: a store
   * that comes back, or a node that learns it lost the lease and is stopped by the service.
   */
  private async run(): Promise<void> {
    try {
      this.lastCredentialVersion = this.credentialVersion?.();
    } catch {
      this.lastCredentialVersion = undefined; // the store is down: the first pass says so
    }
    while (this.running) {
      this.woken = false;
      let delay: number;
      try {
        delay = await this.pass();
        this.failing = undefined;
        // Something was queued meanwhile: at once (after a failed pass, only after the wait).
        if (this.woken) continue;
      } catch (err) {
        this.passFailed(err);
        delay = this.opts.pollMs;
      }
      if (!this.running) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.wake = undefined;
          resolve();
        }, delay);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** One turn of the loop: delivers what is due, pings, prunes; returns how long to wait (ms; 0 when woken). */
  private async pass(): Promise<number> {
    const version = this.credentialVersion?.();
    if (version !== this.lastCredentialVersion) {
      // An administrator just set a new cloud credential: deliver what waits now.
      this.outboxStore.dueNow(this.now());
      this.lastCredentialVersion = version; // after the write: a failed one is tried again next pass
    }
    // deliverDue reports per batch; what it throws (the store, a lost lease) is passFailed's.
    await this.deliverOnce();
    if (!this.running) return 0;
    const unavailable = this.delivery.unavailable;
    if (this.now() - this.lastActivity >= this.opts.heartbeatMs) await this.ping();
    // While the cloud is unavailable, look again when it asked to be, even with nothing queued,
    // so that its recovery is noticed (and health says so) as soon as it answers.
    else if (unavailable && this.now() >= unavailable.retryAt && this.outboxStore.depth().depth === 0) await this.ping();
    if (this.now() - this.lastPrune >= 3600_000) {
      this.lastPrune = this.now(); // a failed prune waits for the next hour, not the next pass
      this.statusLog.prune();
      // A user never exported in the status retention (7 days) is out of scope: stop retrying.
      const cutoff = new Date(this.now() - UNEXPORTED_RETENTION_MS).toISOString();
      for (const x of this.outboxStore.expireUnexported(cutoff)) {
        this.statusLog.record(x.anchor, x.connector, 'Error', 'the user was never exported to the cloud (outside every connector\'s scope?); the change was dropped after 7 days', null, x.queuedAt);
      }
    }
    if (this.woken) return 0;
    const next = this.outboxStore.depth().nextAttemptAt;
    // Held by a refused credential, what is due stays due: look again every pollMs (a new
    // credential, or the refusal's re-check time), not at once, over and over.
    const untilDue = next === undefined || this.heldByRefusal ? Infinity : Math.max(0, next - this.now());
    const untilHeartbeat = Math.max(0, Math.min(this.lastActivity + this.opts.heartbeatMs, this.delivery.unavailable?.retryAt ?? Infinity) - this.now());
    return Math.min(this.opts.pollMs, untilDue, untilHeartbeat);
  }

  /**
   * A pass that threw: event 652 once per kind of failure (not once per poll while PostgreSQL is
   * down), outside the fence: its code reaches the service, which gives up a term whose writes
   * meet LEASE_LOST. When even the event cannot be written (the store is what failed), the
   * service's log says it.
   */
  private passFailed(err: unknown): void {
    const e = toIdsyncError(err);
    if (this.failing === e.code) return;
    this.failing = e.code;
    this.events.tryEmit(EVENTS.PHS_BATCH_ERROR, { connector: 'cloud', error: e.message, code: e.code }, (msg) => this.log('error', msg));
  }

  /**
   * The heartbeat: checks that the cloud accepts our credential (653 then 654, or 655 with 115 and 0
   * for a refused credential). Runs when nothing was delivered for heartbeatMs.
   */
  async ping(): Promise<boolean> {
    this.lastActivity = this.now();
    this.events.emit(EVENTS.PHS_PING_START, {});
    const request = this.delivery.startRequest();
    try {
      await this.cloud().test();
      this.delivery.cloudAnswered(request);
      this.events.emit(EVENTS.PHS_HEARTBEAT, { depth: this.outboxStore.depth().depth });
      return true;
    } catch (err) {
      const e = toIdsyncError(err);
      const kind = classifyFailure(e);
      if (kind === 'other' && !isAuthFailure(e.code)) {
        this.events.emit(EVENTS.PHS_PING_ERROR, { connector: 'cloud', error: e.message, code: e.code, hint: e.hint });
      } else {
        // Refused, locked or unavailable: each said once, by its own events (delivery.ts).
        this.delivery.reportFailure(e, kind, 'cloud', 0);
      }
      return false;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Status
  // ---------------------------------------------------------------------------------------------

  /** A user's history (newest first, 7 days), by anchor, sAMAccountName, UPN, uid or DN. */
  status(user: string): PasswordStatusRecord[] {
    const anchors = new Set(this.users.find(user).map((u) => u.anchor));
    if (anchors.size === 0) anchors.add(user.trim()); // a user already gone from the connector space
    return [...anchors].flatMap((a) => this.statusLog.forAnchor(a));
  }

  outbox(): { depth: number; waitingForExport: number; oldestQueuedAt?: string } {
    const d = this.outboxStore.depth();
    return d.oldestQueuedAt ? { depth: d.depth, waitingForExport: d.waitingForExport, oldestQueuedAt: d.oldestQueuedAt } : { depth: d.depth, waitingForExport: d.waitingForExport };
  }

  /**
   * Full password sync: queues the last known hash of every user (or one user) again, and forgets
   * the NT fingerprints so that polling sources send their current hashes at their next read.
   * (The DC agent re-reads everything with `idsync agent samba --full`.) Returns the users queued.
   */
  async resync(target: { all: true } | { user: string }): Promise<number> {
    let queued: Array<{ connector: string; anchor: string }>;
    if ('all' in target) {
      queued = this.outboxStore.requeueKnown();
    } else {
      const anchors = [...new Set(this.users.find(target.user).map((u) => u.anchor))];
      if (anchors.length === 0) this.resolveUser(target.user); // throws PASSWORD_USER_UNKNOWN
      queued = this.outboxStore.requeueKnown(anchors);
    }
    for (const q of queued) this.statusLog.record(q.anchor, q.connector, 'Queued', 'full password sync (resync)', 'resync');
    if (queued.length > 0) this.kick();
    return queued.length;
  }
}
