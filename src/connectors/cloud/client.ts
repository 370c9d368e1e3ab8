/**
 * The sync engine's client for the cloud directory: SCIM 2.0 over an undici Pool (Node's global
 * fetch costs ~8x the CPU). The credential is resolved at use time: a token is bound to the secret
 * it was obtained with, so a secret changed in the store is used by the very next request, and a
 * 401 makes the client re-read the store once before it reports the failure (DESIGN.md §1).
 *
 * What the cloud said decides what a failure is (classifyFailure):
 *  - refused: the token endpoint answered invalid_grant / invalid_client / 401. The refusal is
 *    recorded against the secret (the guard, credentials/refusals.ts) and the same secret is not
 *    presented again until it changes or its re-probe is due; concurrent callers share one attempt.
 *    A locked account (error code 50053, `lockout.remaining_seconds`) is said as such: the password
 *    was not checked.
 *  - unavailable: 429, 5xx or no connection. Retried here within a small budget (retry.ts, honouring
 *    Retry-After), then CLOUD_UNAVAILABLE / CLOUD_UNREACHABLE with the wait the cloud asked for.
 *    Never credential advice.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Pool, type Dispatcher } from 'undici';
import type { CloudConfig } from '../../config/schema.js';
import { IdsyncError, isIdsyncError, type ErrorCode } from '../../core/errors.js';
import type { PresentDecision, RefusalInput, RefusalRecord } from '../../credentials/refusals.js';
import { currentFence, FENCING_TOKEN_HEADER } from '../../store/fence.js';
import type { SecretResolver } from '../types.js';
import { parseRetryAfter, withRetries } from './retry.js';

export const SCIM_BASE = '/scim/v2';
const SCIM_JSON = 'application/scim+json';
/** The cloud's (and Entra's) error code for "the account is locked". */
export const LOCKED_ERROR_CODE = 50053;
/** How long one call may wait out the cloud's Retry-After before handing the wait to its caller. */
export const DEFAULT_RETRY_BUDGET_MS = 15_000;

export interface CloudResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
  etag?: string | undefined;
  /** The wait the cloud asked for (Retry-After), in ms. */
  retryAfterMs?: number | undefined;
  /** The highest fencing token the cloud has seen, when it refused this request's as lower (docs/ha.md). */
  fencedBy?: number | undefined;
}

/** The cloud directory's answer to a write whose fencing token is lower than the highest it has seen. */
const FENCED_HEADER = 'x-idsync-fenced';

interface CachedToken {
  token: string;
  /** Fingerprint of the secret the token was issued for: a changed secret invalidates it. */
  secretFingerprint: string;
  expiresAt: number;
}

/** The store's record of refused secrets, for one connector (CredentialStore.guard). */
export interface CredentialGuard {
  mayPresent(secret: string): PresentDecision;
  refused(secret: string, refusal: RefusalInput): RefusalRecord;
  accepted(): void;
}

export interface CloudClientOptions {
  sleep?: (ms: number) => Promise<void>;
  /** Without one, refusals are not remembered (a bench, a one-off); every real component passes it. */
  guard?: CredentialGuard;
  /** The secret is a new one being validated (`credentials set`): messages speak of "the new password". */
  candidate?: boolean;
  retryBudgetMs?: number;
}

interface TokenBody {
  access_token?: string;
  expires_in?: number;
  error?: string;
  error_description?: string;
  error_codes?: unknown;
  lockout?: { remaining_seconds?: unknown };
}

/** How a failure of the cloud is to be reported: see the module comment. */
export type CloudFailureKind = 'refused' | 'refused-recorded' | 'locked' | 'unavailable' | 'other';

/** The error codes of an unavailable cloud (classifyFailure's 'unavailable'). */
export const UNAVAILABLE_CODES: ReadonlySet<ErrorCode> = new Set(['CLOUD_UNREACHABLE', 'CLOUD_UNAVAILABLE', 'CLOUD_SERVER_ERROR']);

export function classifyFailure(err: unknown): CloudFailureKind {
  if (!isIdsyncError(err)) return 'other';
  if (UNAVAILABLE_CODES.has(err.code)) return 'unavailable';
  if (err.code === 'CLOUD_AUTH_FAILED') {
    if (err.details.lockedSeconds !== undefined) return 'locked';
    return err.details.recorded === true ? 'refused-recorded' : 'refused';
  }
  return 'other';
}

/** The wait the cloud asked for on an unavailable answer, in ms (undefined when it said nothing). */
export function retryAfterOf(err: unknown): number | undefined {
  const v = isIdsyncError(err) ? err.details.retryAfterMs : undefined;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

export class CloudClient {
  private readonly pool: Pool;
  private readonly origin: string;
  private readonly sleep: (ms: number) => Promise<void>;
  private cached: CachedToken | undefined;
  /** Token requests in flight, by secret fingerprint: concurrent callers share one sign-in. */
  private readonly pending = new Map<string, Promise<string>>();
  /** This installation's ID, sent with every request so the cloud knows who exports to it (engine/tenant.ts). */
  installation: string | undefined;

  constructor(
    private readonly cfg: CloudConfig,
    private readonly secret: SecretResolver,
    private readonly options: CloudClientOptions = {},
  ) {
    const url = new URL(cfg.url);
    this.origin = url.origin;
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.pool = new Pool(this.origin, {
      connections: cfg.concurrency,
      pipelining: 1,
      headersTimeout: cfg.timeoutMs,
      bodyTimeout: cfg.timeoutMs,
      connect: cfg.ca ? { ca: readFileSync(cfg.ca) } : undefined,
    });
  }

  get url(): string {
    return this.origin;
  }

  /** Authenticates and reads the service provider configuration. */
  async test(): Promise<void> {
    this.cached = undefined;
    await this.scim('GET', '/ServiceProviderConfig');
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  /** A SCIM request with authentication, retries and backoff; throws IdsyncError on failure. */
  async scim<T = Record<string, unknown>>(method: Dispatcher.HttpMethod, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<CloudResponse<T>> {
    return this.authorized<T>(method, SCIM_BASE + path, body, { 'content-type': SCIM_JSON, accept: SCIM_JSON, ...headers });
  }

  /** Any authenticated API of the cloud directory (non-SCIM, e.g. password hashes). */
  async api<T = Record<string, unknown>>(method: Dispatcher.HttpMethod, path: string, body?: unknown): Promise<CloudResponse<T>> {
    return this.authorized<T>(method, path, body, { 'content-type': 'application/json', accept: 'application/json' });
  }

  /** The one retry policy of this client (retry.ts), for token requests and API calls alike. */
  private retrying<T>(send: () => Promise<CloudResponse<T>>): Promise<CloudResponse<T>> {
    return withRetries(send, { retries: this.cfg.retries, budgetMs: this.options.retryBudgetMs ?? DEFAULT_RETRY_BUDGET_MS, sleep: this.sleep });
  }

  private async authorized<T>(method: Dispatcher.HttpMethod, path: string, body: unknown, headers: Record<string, string>): Promise<CloudResponse<T>> {
    // Under a leader's fence (docs/ha.md) every request carries its token, and none is sent once
    // this node knows it lost the lease; the cloud refuses a token lower than one it has seen.
    const fence = currentFence();
    for (let reauthenticated = false; ; reauthenticated = true) {
      const token = await this.token();
      const res = await this.retrying(() => {
        fence?.assertHeld();
        return this.send<T>(method, path, body, {
          ...headers,
          authorization: `Bearer ${token}`,
          ...(this.installation ? { 'x-idsync-installation': this.installation } : {}),
          ...(fence ? { [FENCING_TOKEN_HEADER]: String(fence.token) } : {}),
        });
      });
      if (res.fencedBy !== undefined && fence) {
        throw new IdsyncError('LEASE_LOST', `the cloud directory refused fencing token ${fence.token}: a newer leader (token ${res.fencedBy}) writes there now; nothing was written`, {
          hint: 'Another node leads now (`idsync service status`); this node goes on as a standby.',
          details: { token: fence.token, highest: res.fencedBy, fencedBy: 'cloud', path },
        });
      }
      if (res.status === 401 && !reauthenticated) {
        // The credential may have changed since the token was issued: re-read it once.
        this.cached = undefined;
        continue;
      }
      if (res.status === 401 || res.status === 403) {
        this.cached = undefined;
        throw new IdsyncError('CLOUD_AUTH_FAILED', `access to the cloud directory has been denied (HTTP ${res.status})`, {
          hint: 'Update the cloud credential with `idsync credentials set cloud`; it takes effect without a restart.',
          details: { status: res.status, path },
        });
      }
      if (res.status === 429 || res.status >= 502) throw this.unavailable(res, `${method} ${path}`);
      if (res.status >= 500) {
        throw new IdsyncError('CLOUD_SERVER_ERROR', `the cloud directory failed with HTTP ${res.status} on ${method} ${path}: ${scimDetail(res.body)}`, {
          hint: 'The cloud directory is having trouble; the next cycle retries. Check its logs if this persists.',
          details: { status: res.status, path },
        });
      }
      return res;
    }
  }

  private unavailable(res: CloudResponse<unknown>, what: string): IdsyncError {
    const after = res.retryAfterMs !== undefined ? `; it asked to retry in ${Math.ceil(res.retryAfterMs / 1000)} s` : '';
    return new IdsyncError('CLOUD_UNAVAILABLE', `the cloud directory is unavailable (HTTP ${res.status} on ${what})${after}`, {
      hint: 'Nothing to change on this side: idsync retries by itself (honouring Retry-After) and queued work waits. Check the cloud directory\'s status if this persists.',
      details: { status: res.status, ...(res.retryAfterMs !== undefined ? { retryAfterMs: res.retryAfterMs } : {}) },
    });
  }

  private async token(): Promise<string> {
    const secret = await this.secret();
    if (secret === undefined) {
      throw new IdsyncError('CREDENTIAL_MISSING', 'no credential is set for the cloud connector', {
        hint: 'Set it with `idsync credentials set cloud`.',
      });
    }
    const fingerprint = createHash('sha256').update(secret).digest('base64');
    const c = this.cached;
    if (c && c.secretFingerprint === fingerprint && c.expiresAt > Date.now() + 30_000) return c.token;
    // One sign-in per secret at a time: ten batches waiting for a token must not be ten attempts,
    // and a refusal is news (events 115/0/655) for the first of them only.
    const shared = this.pending.get(fingerprint);
    if (shared) return shared.catch((err: unknown) => Promise.reject(alreadyReported(err)));
    const p = this.requestToken(secret, fingerprint).finally(() => this.pending.delete(fingerprint));
    this.pending.set(fingerprint, p);
    return p;
  }

  private who(): string {
    const auth = this.cfg.auth;
    return auth.type === 'password' ? `account "${auth.username}"` : `client "${auth.clientId}"`;
  }

  private async requestToken(secret: string, fingerprint: string): Promise<string> {
    const guard = this.options.guard;
    const decision = guard?.mayPresent(secret);
    if (decision && !decision.present) throw this.recordedRefusal(decision.refusal);

    const form = new URLSearchParams();
    const auth = this.cfg.auth;
    if (auth.type === 'password') {
      form.set('grant_type', 'password');
      form.set('username', auth.username);
      form.set('password', secret);
    } else {
      form.set('grant_type', 'client_credentials');
      form.set('client_id', auth.clientId);
      form.set('client_secret', secret);
    }
    const res = await this.retrying(() =>
      this.send<TokenBody>('POST', '/oauth2/token', form.toString(), { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }),
    );
    if (res.status === 200 && typeof res.body.access_token === 'string') {
      guard?.accepted();
      this.cached = { token: res.body.access_token, secretFingerprint: fingerprint, expiresAt: Date.now() + (res.body.expires_in ?? 3600) * 1000 };
      return this.cached.token;
    }
    if (res.status === 429 || res.status >= 500) throw this.unavailable(res, 'POST /oauth2/token');
    const error = typeof res.body.error === 'string' ? res.body.error : undefined;
    if (error === 'invalid_grant' || error === 'invalid_client' || res.status === 401) throw this.refused(secret, res, error);
    throw new IdsyncError('CLOUD_REJECTED', `the cloud directory rejected the token request of ${this.who()} (HTTP ${res.status}${error ? `, ${error}` : ''}): ${String(res.body.error_description ?? 'no description')}`, {
      hint: 'This is not a wrong password: check `cloud.auth` in the configuration (grant type, user name or client id) against what the cloud directory expects.',
      details: { status: res.status, ...(error ? { error } : {}) },
    });
  }

  /** A refusal the cloud just gave: recorded against the secret, so nothing presents it again. */
  private refused(secret: string, res: CloudResponse<TokenBody>, error: string | undefined): IdsyncError {
    const lockedSeconds = lockedFor(res);
    const code = error ?? `HTTP ${res.status}`;
    const secretWord = this.cfg.auth.type === 'password' ? 'password' : 'secret';
    const recheck = this.options.guard ? ` idsync does not present this ${secretWord} again until it changes (or ${this.cfg.refusedCredentialRecheck} later, in case the cloud's side is fixed).` : '';
    if (lockedSeconds !== undefined) {
      const which = this.options.candidate ? `the new ${secretWord}` : `the ${secretWord}`;
      const reason = `the cloud account is locked for ${lockedSeconds} s; ${which} was not checked`;
      const record = this.options.guard?.refused(secret, { code: 'locked', reason, lockedSeconds });
      return new IdsyncError('CLOUD_AUTH_FAILED', `the cloud account is locked for ${lockedSeconds} s; ${which} was not checked (${this.who()})`, {
        hint: `Wait ${lockedSeconds} s, then try again; retyping the ${secretWord} sooner cannot help. The lock comes from earlier wrong attempts: \`idsync events --id 115\` shows this side's, the cloud's audit log all of them.`,
        details: { status: res.status, error: code, lockedSeconds, recorded: false, ...(record ? { refusedAt: record.refusedAt, nextAttemptAt: record.nextAttemptAt } : {}) },
      });
    }
    const reason = `the user name or password is incorrect (${code})`;
    const record = this.options.guard?.refused(secret, { code, reason });
    return new IdsyncError('CLOUD_AUTH_FAILED', `the cloud directory refused the credential of ${this.who()}: ${reason}`, {
      hint: `Set the current credential with \`idsync credentials set cloud\` (it is validated before it is saved, and used from the next call).${recheck}`,
      details: { status: res.status, error: code, recorded: false, ...(record ? { refusedAt: record.refusedAt, nextAttemptAt: record.nextAttemptAt } : {}) },
    });
  }

  /** The stored refusal of this secret, reported without signing in again. */
  recordedRefusal(r: RefusalRecord): IdsyncError {
    if (r.lockedSeconds !== undefined) {
      const left = Math.max(1, Math.ceil((Date.parse(r.nextAttemptAt) - Date.now()) / 1000));
      return new IdsyncError('CLOUD_AUTH_FAILED', `the cloud account is locked (${this.who()}, until ${r.nextAttemptAt}); the password was not checked and is not presented before then`, {
        hint: `Wait about ${left} s; idsync tries again by itself then. Retyping the password sooner cannot help.`,
        details: { error: r.code, lockedSeconds: left, recorded: true, refusedAt: r.refusedAt, nextAttemptAt: r.nextAttemptAt },
      });
    }
    return new IdsyncError(
      'CLOUD_AUTH_FAILED',
      `the cloud directory refused the credential of ${this.who()} at ${r.refusedAt}: ${r.reason}; idsync does not present it again until it changes (next check ${r.nextAttemptAt})`,
      {
        hint: 'Set the current credential with `idsync credentials set cloud` (validated before it is saved, used from the next call, no restart needed).',
        details: { error: r.code, recorded: true, refusedAt: r.refusedAt, nextAttemptAt: r.nextAttemptAt },
      },
    );
  }

  private async send<T>(method: Dispatcher.HttpMethod, path: string, body: unknown, headers: Record<string, string>): Promise<CloudResponse<T>> {
    let res: Dispatcher.ResponseData;
    try {
      res = await this.pool.request({
        method,
        path,
        headers,
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).name;
      throw new IdsyncError('CLOUD_UNREACHABLE', `cannot reach the cloud directory at ${this.origin}: ${code}`, {
        hint: 'Check cloud.url in the configuration, that the cloud directory is running and that this host can reach it.',
        details: { url: this.origin, code },
        cause: err,
      });
    }
    const text = await res.body.text();
    let parsed: unknown = {};
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { detail: text.slice(0, 200) };
      }
    }
    const etag = res.headers.etag;
    const fenced = res.statusCode === 409 ? Number(res.headers[FENCED_HEADER]) : NaN;
    return {
      status: res.statusCode,
      body: parsed as T,
      etag: typeof etag === 'string' ? etag : undefined,
      retryAfterMs: parseRetryAfter(res.headers['retry-after']),
      ...(Number.isFinite(fenced) ? { fencedBy: fenced } : {}),
    };
  }
}

/** A refusal another caller of the same sign-in reports: the same error, marked as already said. */
function alreadyReported(err: unknown): unknown {
  if (!isIdsyncError(err, 'CLOUD_AUTH_FAILED') || err.details.recorded !== false) return err;
  return new IdsyncError(err.code, err.message, { ...(err.hint ? { hint: err.hint } : {}), details: { ...err.details, recorded: true }, cause: err });
}

/** Seconds the cloud said the account stays locked: error code 50053 with lockout.remaining_seconds or Retry-After. */
function lockedFor(res: CloudResponse<TokenBody>): number | undefined {
  const b = res.body;
  const remaining = Number(b.lockout?.remaining_seconds);
  const coded = Array.isArray(b.error_codes) && b.error_codes.some((c) => Number(c) === LOCKED_ERROR_CODE);
  if (Number.isFinite(remaining) && remaining >= 0) return Math.ceil(remaining);
  if (!coded) return undefined;
  return res.retryAfterMs !== undefined ? Math.ceil(res.retryAfterMs / 1000) : 60;
}

/** The human part of a SCIM error body. */
export function scimDetail(body: unknown): string {
  const b = body as { detail?: unknown; scimType?: unknown } | undefined;
  if (b && typeof b.detail === 'string') return b.scimType ? `${b.detail} (${String(b.scimType)})` : b.detail;
  return 'no detail';
}
