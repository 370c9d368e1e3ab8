/**
 * Delivery: sends due outbox items to the cloud directory's POST /api/v1/passwordHashes in batches
 * of at most 50 users (the incumbent's), several batches at once (bounded), and records the outcome
 * of every item. Nothing in a request body, an event or a status record is logged with a hash.
 *
 * Per item:  Success            → leaves the outbox (that version only), status Success
 *            TargetNotExported  → stays, retried with backoff until the export created the user
 *            InvalidHash        → stays parked at the longest backoff (a newer change replaces it)
 *            HTTP 500 to its batch, alone too, while other users' items go through
 *                               → ServerErrorForUser: retried with its own backoff (isolate)
 * Per batch: the credential refused → events 115, 0 and 655 once (the refusal is recorded against
 *                                  the secret); items wait until it changes or its re-probe is due
 *            a refusal already recorded → no event, no sign-in: items wait likewise
 *            the account locked  → event 6113; items wait for the lock to end
 *            the cloud unavailable (429/5xx/network) → event 6112 once per outage, no credential
 *                                  advice; items wait as long as the cloud asked (Retry-After)
 *                                  or a backoff, but no longer than until the cloud answers this
 *                                  process again, or another process (the next `idsync sync`) tries
 *            anything else      → event 652; items stay queued
 * The CloudClient resolves the credential from the store at every request, so a fixed credential is
 * used by the next attempt without a restart (DESIGN.md §1).
 */
import { classifyFailure, retryAfterOf, UNAVAILABLE_CODES, type CloudClient, type CloudFailureKind } from '../connectors/cloud/client.js';
import { toIdsyncError, type IdsyncError } from '../core/errors.js';
import { EVENTS } from '../events/catalog.js';
import type { EventLog } from '../events/log.js';
import type { UserDirectory } from './directory.js';
import type { Outbox, OutboxItem } from './outbox.js';
import type { StatusLog } from './status.js';

export const PASSWORD_HASHES_PATH = '/api/v1/passwordHashes';

export interface DeliveryOptions {
  batchSize: number;
  concurrency: number;
  baseBackoffMs: number;
  maxBackoffMs: number;
}

export interface DeliveryCounts {
  delivered: number;
  waiting: number;
  failed: number;
}

/** A request's outcome, and whether it says to end the pass (the credential refused, the cloud unavailable). */
type BatchCounts = DeliveryCounts & { authFailed: boolean; unavailable: boolean };

interface ResultItem {
  externalId?: unknown;
  status?: unknown;
}

const AUTH_CODES = new Set(['CLOUD_AUTH_FAILED', 'CREDENTIAL_MISSING', 'CREDENTIAL_INVALID', 'SECRET_KEY_INVALID']);
/** Longest wait between attempts while the cloud is unavailable and gave no Retry-After. */
const MAX_UNAVAILABLE_WAIT_MS = 30_000;
/** Items of a failed batch tried alone before "every request fails" is the likelier story (isolate). */
const ISOLATION_PROBES = 3;

export function isAuthFailure(code: string): boolean {
  return AUTH_CODES.has(code);
}

export class Delivery {
  private readonly inFlight = new Set<string>();
  /**
   * Set while the cloud answers "unavailable": since when, when it asked to be tried again, and the
   * last request (see `requests`) started before the latest such answer.
   */
  unavailable: { since: number; retryAt: number; requestsBefore: number } | undefined;
  /**
   * Requests to the cloud started so far (batches and heartbeats). Only an answer to a request
   * started after the cloud last said "unavailable" says it answers again: a batch sent before a
   * 429 and answered after it must not override the cloud's Retry-After.
   */
  private requests = 0;
  /** The refusal (its time) this service last reported, so that each is said once. */
  private reportedRefusal: string | undefined;
  /**
   * The next pass brings forward the changes parked because the cloud was unavailable: the first
   * pass of this process, and the first after the cloud answered again. Not every pass: in a
   * shared (HA) store each write is a fenced transaction, and a pass runs every poll.
   */
  private resumeParked = true;

  constructor(
    private readonly outbox: Outbox,
    private readonly status: StatusLog,
    private readonly users: UserDirectory,
    private readonly events: EventLog,
    private readonly cloud: () => CloudClient,
    private readonly options: DeliveryOptions,
    private readonly now: () => number = Date.now,
  ) {}

  private waiters: (() => void)[] = [];

  backoff(attempts: number): number {
    const base = Math.min(this.options.maxBackoffMs, this.options.baseBackoffMs * 2 ** Math.min(attempts, 30));
    return Math.max(1, Math.round(base / 2 + Math.random() * (base / 2)));
  }

  /** A request to the cloud starts: its number, for cloudAnswered. */
  startRequest(): number {
    return ++this.requests;
  }

  /**
   * The cloud answered request `request` (a batch or the heartbeat): an outage this process met is
   * over, if the request was sent after the cloud last said it was unavailable.
   */
  cloudAnswered(request: number): void {
    if (this.unavailable === undefined || request <= this.unavailable.requestsBefore) return;
    this.unavailable = undefined;
    this.resumeParked = true;
  }

  /** A new term of this process's delivery (started again, e.g. leader again in HA): as a new process. */
  restart(): void {
    this.unavailable = undefined;
    this.resumeParked = true;
  }

  /** Wakes idle workers of a pass in progress: a change was just queued. */
  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /**
   * Resolves once nothing in flight now (a pass another caller runs, e.g. the service's loop) is
   * still in flight: a caller that must end with its users' passwords answered waits for those.
   */
  async settled(): Promise<void> {
    const pending = new Set(this.inFlight);
    while ([...pending].some((anchor) => this.inFlight.has(anchor))) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /**
   * One pass: up to `concurrency` batches in flight, each worker taking the next due batch as soon
   * as its previous one is answered, so a slow batch never holds the others back. While any batch
   * is in flight, an idle worker waits for a newly queued change (notify) instead of ending the
   * pass. An item already tried in this pass waits for the next pass.
   */
  async deliverDue(): Promise<DeliveryCounts> {
    const totals: DeliveryCounts = { delivered: 0, waiting: 0, failed: 0 };
    const { batchSize, concurrency } = this.options;
    // A change that waits only because the cloud was unavailable goes out as soon as the cloud may
    // answer again: in a process that has not met the outage (the next `idsync sync` after the
    // cloud came back), or once the cloud answered this one again (the service). Its wait was a
    // guess of when that would be, or a Retry-After said to another process or before the cloud
    // answered again; waiting it out left a user's newest password unused after a successful run
    // (issue 9: `npm run chaos` seed 778493644). During an outage this process knows of, it waits.
    if (this.resumeParked && this.unavailable === undefined) {
      this.outbox.dueAfterOutage(this.now(), UNAVAILABLE_CODES);
      this.resumeParked = false; // after the write: a failed one is tried again next pass
    }
    const tried = new Set<string>();
    let authFailed = false;
    let active = 0;
    const worker = async () => {
      while (!authFailed) {
        const exclude = new Set([...this.inFlight, ...tried]);
        const items = this.outbox.due(batchSize, exclude, this.now());
        if (items.length === 0) {
          if (active === 0) return;
          await new Promise<void>((resolve) => this.waiters.push(resolve));
          continue;
        }
        for (const it of items) {
          this.inFlight.add(it.anchor);
          tried.add(it.anchor);
        }
        active++;
        try {
          const r = await this.deliverBatch(items);
          totals.delivered += r.delivered;
          totals.waiting += r.waiting;
          totals.failed += r.failed;
          // A refused credential or an unavailable cloud fails every batch alike: stop this pass
          // rather than hammer the cloud.
          authFailed ||= r.authFailed || r.unavailable;
        } finally {
          for (const it of items) this.inFlight.delete(it.anchor);
          active--;
          this.notify(); // idle workers re-check: maybe the pass is over, maybe something new is due
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return totals;
  }

  private async deliverBatch(items: OutboxItem[]): Promise<BatchCounts> {
    const counts: BatchCounts = { delivered: 0, waiting: 0, failed: 0, authFailed: false, unavailable: false };
    const connector = [...new Set(items.map((i) => i.connector))].join(', ');
    const started = this.now();
    // Rows that cannot be opened (another key, altered): park them; they need a re-read at the source.
    const sendable = items.filter((it) => {
      if (it.hash !== undefined) return true;
      this.outbox.retry(it, this.now() + this.options.maxBackoffMs, 'SECRET_KEY_INVALID');
      this.status.record(it.anchor, it.connector, 'Error', 'SECRET_KEY_INVALID: the queued hash cannot be decrypted with the current key; run `idsync passwords resync`', it.source, it.queuedAt);
      counts.failed++;
      return false;
    });
    if (sendable.length === 0) return counts;
    this.events.emit(EVENTS.PHS_BATCH_START, { connector, count: sendable.length });
    const dns = new Map<string, string>();
    for (const it of sendable) {
      const dn = this.users.dn(it.connector, it.anchor) ?? '';
      dns.set(it.anchor, dn);
      this.events.emit(EVENTS.PHS_CHANGE_REQUEST, { connector: it.connector, anchor: it.anchor, dn });
    }
    let results: ResultItem[];
    const request = this.startRequest();
    try {
      results = await this.post(sendable);
    } catch (err) {
      const e = toIdsyncError(err);
      // HTTP 500 to a batch: the cloud may be failing on one user's item, not on every request.
      if (e.code === 'CLOUD_SERVER_ERROR' && sendable.length > 1) {
        const isolated = await this.isolate(sendable, dns);
        if (isolated) {
          this.events.emit(EVENTS.PHS_BATCH_END, { connector, delivered: isolated.delivered, failed: isolated.failed, waiting: isolated.waiting, ms: this.now() - started });
          return { ...isolated, failed: isolated.failed + counts.failed };
        }
      }
      this.batchFailed(sendable, e, counts);
      this.events.emit(EVENTS.PHS_BATCH_END, { connector, delivered: 0, failed: sendable.length, waiting: 0, ms: this.now() - started });
      return counts;
    }
    this.cloudAnswered(request);
    this.outbox.transaction(() => this.recordResults(sendable, results, counts, dns));
    this.events.emit(EVENTS.PHS_BATCH_END, { connector, delivered: counts.delivered, failed: counts.failed, waiting: counts.waiting, ms: this.now() - started });
    return counts;
  }

  /** One request with these items; the per-item results, or the failure. */
  private async post(items: readonly OutboxItem[]): Promise<ResultItem[]> {
    const client = this.cloud();
    const res = await client.api<{ results?: ResultItem[] }>('POST', PASSWORD_HASHES_PATH, {
      items: items.map((it) => ({ externalId: it.anchor, hash: it.hash, changedAt: it.changedAt })),
    });
    if (res.status !== 200 || !Array.isArray(res.body.results)) {
      const detail = (res.body as { detail?: unknown; error?: unknown }).detail ?? (res.body as { error?: unknown }).error;
      throw toIdsyncError(new Error(`the cloud directory answered HTTP ${res.status} to ${PASSWORD_HASHES_PATH}${typeof detail === 'string' ? `: ${detail}` : ''}`), 'CLOUD_REJECTED');
    }
    return res.body.results;
  }

  /**
   * A batch the cloud failed on (HTTP 500): each item again on its own, so that one user the cloud
   * cannot store (a "poison" item) does not hold back the others, pass after pass. An item that
   * fails alone while others go through waits with its own backoff (`ServerErrorForUser`: not an
   * outage, so the cloud answering again does not bring it forward). When the first
   * ISOLATION_PROBES items all fail too, the cloud is failing every request: undefined, and the
   * batch counts as failed as a whole (an outage costs a few requests, not one per item).
   */
  private async isolate(items: OutboxItem[], dns: Map<string, string>): Promise<BatchCounts | undefined> {
    const counts: BatchCounts = { delivered: 0, waiting: 0, failed: 0, authFailed: false, unavailable: false };
    const poisoned: OutboxItem[] = [];
    let answered = 0;
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      const request = this.startRequest();
      let results: ResultItem[];
      try {
        results = await this.post([it]);
      } catch (err) {
        const e = toIdsyncError(err);
        if (e.code === 'CLOUD_SERVER_ERROR') {
          poisoned.push(it);
          if (answered === 0 && poisoned.length >= ISOLATION_PROBES) return undefined; // nothing recorded yet
          continue;
        }
        // Another kind of failure (the credential, the network, 429): the rest as a failed batch.
        this.batchFailed([...poisoned, ...items.slice(i)], e, counts);
        return counts;
      }
      answered++;
      this.cloudAnswered(request);
      this.outbox.transaction(() => this.recordResults([it], results, counts, dns));
    }
    if (answered === 0) return undefined; // every item failed
    this.outbox.transaction(() => {
      for (const it of poisoned) {
        this.outbox.retry(it, this.now() + this.backoff(it.attempts), 'ServerErrorForUser');
        this.status.record(it.anchor, it.connector, 'Error', 'ServerErrorForUser: the cloud directory failed (HTTP 500) on this user\'s hash while it stored the others; retried with backoff', it.source, it.queuedAt);
        this.events.emit(EVENTS.PHS_CHANGE_RESULT, { connector: it.connector, anchor: it.anchor, dn: dns.get(it.anchor) ?? '', result: 'ServerErrorForUser' });
      }
    });
    counts.failed += poisoned.length;
    return counts;
  }

  /** Every item of a request that failed as a whole: when to try again, the status, the events. */
  private batchFailed(items: readonly OutboxItem[], e: IdsyncError, counts: BatchCounts): void {
    const kind = classifyFailure(e);
    counts.authFailed = isAuthFailure(e.code);
    counts.unavailable = kind === 'unavailable';
    const now = this.now();
    // When to try again: an unavailable cloud when it asked to be (or soon: its recovery should
    // be noticed); otherwise with backoff. A refused secret is not presented again meanwhile (the
    // store's record, which costs no sign-in), and a changed one brings everything forward.
    const retryAfter = retryAfterOf(e);
    const at = (it: OutboxItem): number =>
      counts.unavailable ? now + (retryAfter ?? Math.min(MAX_UNAVAILABLE_WAIT_MS, this.backoff(it.attempts))) : now + this.backoff(it.attempts);
    const reason = `${e.code}: ${e.message}`;
    this.outbox.transaction(() => {
      for (const it of items) {
        this.outbox.retry(it, at(it), e.code);
        this.status.record(it.anchor, it.connector, 'Error', reason, it.source, it.queuedAt);
      }
    });
    counts.failed += items.length;
    this.reportFailure(e, kind, [...new Set(items.map((i) => i.connector))].join(', '), items.length);
  }

  /** The cloud's answer per item (in the caller's transaction). */
  private recordResults(items: readonly OutboxItem[], results: ResultItem[], counts: DeliveryCounts, dns: Map<string, string>): void {
    const byId = new Map<string, string>();
    for (const r of results) if (typeof r.externalId === 'string' && typeof r.status === 'string') byId.set(r.externalId, r.status);
    for (const it of items) {
      const result = byId.get(it.anchor) ?? 'NoResult';
      if (result === 'Success') {
        this.outbox.complete(it);
        this.status.record(it.anchor, it.connector, 'Success', null, it.source, it.queuedAt);
        counts.delivered++;
      } else if (result === 'TargetNotExported') {
        this.outbox.retry(it, this.now() + this.backoff(it.attempts), 'TargetNotExported');
        this.status.record(it.anchor, it.connector, 'TargetNotExported', 'the user does not exist in the cloud directory yet; retried after the next export', it.source, it.queuedAt);
        counts.waiting++;
      } else if (result === 'InvalidHash') {
        this.outbox.retry(it, this.now() + this.options.maxBackoffMs, 'InvalidHash');
        this.status.record(it.anchor, it.connector, 'Error', 'InvalidHash: the cloud directory refused the hash; run `idsync passwords resync` for the user', it.source, it.queuedAt);
        counts.failed++;
      } else {
        this.outbox.retry(it, this.now() + this.backoff(it.attempts), 'NoResult');
        this.status.record(it.anchor, it.connector, 'Error', `the cloud directory returned no result for the user (${result})`, it.source, it.queuedAt);
        counts.failed++;
      }
      this.events.emit(EVENTS.PHS_CHANGE_RESULT, { connector: it.connector, anchor: it.anchor, dn: dns.get(it.anchor) ?? '', result });
    }
  }

  /** The events of a failed batch: each cause its own, said once (see the module comment). */
  reportFailure(e: IdsyncError, kind: CloudFailureKind, connector: string, count: number): void {
    const details = { connector, error: e.message, code: e.code, hint: e.hint, count };
    // A refusal is said once: when this service first meets it, whoever recorded it (another
    // process, e.g. `doctor`, may have been refused first; a re-probe refused again is news again).
    const refusedAt = typeof e.details.refusedAt === 'string' ? e.details.refusedAt : undefined;
    const news = refusedAt === undefined ? e.details.recorded !== true : refusedAt !== this.reportedRefusal;
    if (refusedAt !== undefined) this.reportedRefusal = refusedAt;
    switch (kind) {
      case 'refused-recorded':
        if (news) this.reportRefused(details);
        return;
      case 'locked':
        if (news) this.events.emit(EVENTS.CLOUD_ACCOUNT_LOCKED, { ...details, seconds: e.details.lockedSeconds, account: 'cloud' });
        return;
      case 'unavailable': {
        const retryAfter = retryAfterOf(e);
        const now = this.now();
        if (!this.unavailable) this.events.emit(EVENTS.CLOUD_UNAVAILABLE, { ...details, ...(retryAfter !== undefined ? { retryAfterSeconds: Math.ceil(retryAfter / 1000) } : {}) });
        this.unavailable = { since: this.unavailable?.since ?? now, retryAt: now + (retryAfter ?? MAX_UNAVAILABLE_WAIT_MS), requestsBefore: this.requests };
        return;
      }
      case 'refused':
        if (news) this.reportRefused(details);
        return;
      default:
        if (isAuthFailure(e.code)) this.reportRefused(details);
        else this.events.emit(EVENTS.PHS_BATCH_ERROR, details);
    }
  }

  private reportRefused(details: Record<string, unknown>): void {
    this.events.emit(EVENTS.CLOUD_ACCESS_DENIED, details);
    this.events.emit(EVENTS.AUTH_USER_OR_PASSWORD_INCORRECT, { ...details, connector: 'cloud' });
    this.events.emit(EVENTS.PHS_PING_ERROR, details);
    if (Number(details.count) > 0) this.events.emit(EVENTS.PHS_BATCH_ERROR, details);
  }
}
