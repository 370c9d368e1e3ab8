/**
 * The sync engine's client for the cloud directory: SCIM 2.0 over an undici Pool (Node's global
 * fetch costs ~8x the CPU). The credential is resolved at use time: a token is bound to the secret
 * it was obtained with, so a secret changed in the store is used by the very next request, and a
 * 401 makes the client re-read the store once before it reports the failure (DESIGN.md §1).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Pool, type Dispatcher } from 'undici';
import type { CloudConfig } from '../../config/schema.js';
import { IdsyncError } from '../../core/errors.js';
import type { SecretResolver } from '../types.js';

export const SCIM_BASE = '/scim/v2';
const SCIM_JSON = 'application/scim+json';

export interface CloudResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
  etag?: string | undefined;
}

interface CachedToken {
  token: string;
  /** Fingerprint of the secret the token was issued for: a changed secret invalidates it. */
  secretFingerprint: string;
  expiresAt: number;
}

const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);

export class CloudClient {
  private readonly pool: Pool;
  private readonly origin: string;
  private cached: CachedToken | undefined;
  /** This installation's ID, sent with every request so the cloud knows who exports to it (engine/tenant.ts). */
  installation: string | undefined;

  constructor(
    private readonly cfg: CloudConfig,
    private readonly secret: SecretResolver,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {
    const url = new URL(cfg.url);
    this.origin = url.origin;
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

  private async authorized<T>(method: Dispatcher.HttpMethod, path: string, body: unknown, headers: Record<string, string>): Promise<CloudResponse<T>> {
    let reauthenticated = false;
    for (let attempt = 0; ; attempt++) {
      const token = await this.token();
      let res: CloudResponse<T>;
      try {
        res = await this.send<T>(method, path, body, { ...headers, authorization: `Bearer ${token}`, ...(this.installation ? { 'x-idsync-installation': this.installation } : {}) });
      } catch (err) {
        if (attempt < this.cfg.retries) {
          await this.backoff(attempt);
          continue;
        }
        throw err;
      }
      if (res.status === 401 && !reauthenticated) {
        // The credential may have changed since the token was issued: re-read it once.
        reauthenticated = true;
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
      if (RETRYABLE_STATUS.has(res.status) && attempt < this.cfg.retries) {
        await this.backoff(attempt, res);
        continue;
      }
      if (res.status >= 500) {
        throw new IdsyncError('CLOUD_SERVER_ERROR', `the cloud directory failed with HTTP ${res.status} on ${method} ${path}: ${scimDetail(res.body)}`, {
          hint: 'The cloud directory is having trouble; the next cycle retries. Check its logs if this persists.',
          details: { status: res.status, path },
        });
      }
      return res;
    }
  }

  private async backoff(attempt: number, res?: CloudResponse<unknown>): Promise<void> {
    const retryAfter = Number((res?.body as { retryAfter?: unknown } | undefined)?.retryAfter);
    const base = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : Math.min(10_000, 100 * 2 ** attempt);
    await this.sleep(base / 2 + Math.random() * (base / 2));
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
    let res: CloudResponse<{ access_token?: string; expires_in?: number; error?: string; error_description?: string }>;
    for (let attempt = 0; ; attempt++) {
      try {
        res = await this.send('POST', '/oauth2/token', form.toString(), {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        });
      } catch (err) {
        if (attempt < this.cfg.retries) {
          await this.backoff(attempt);
          continue;
        }
        throw err;
      }
      if (RETRYABLE_STATUS.has(res.status) && attempt < this.cfg.retries) {
        await this.backoff(attempt, res);
        continue;
      }
      break;
    }
    if (res.status !== 200 || !res.body.access_token) {
      const who = auth.type === 'password' ? `account "${auth.username}"` : `client "${auth.clientId}"`;
      throw new IdsyncError('CLOUD_AUTH_FAILED', `the cloud directory refused the credential of ${who}: the user name or password is incorrect (${res.body.error ?? `HTTP ${res.status}`})`, {
        hint: 'Set the current credential with `idsync credentials set cloud` (it is validated before it is saved).',
        details: { status: res.status, error: res.body.error },
      });
    }
    this.cached = {
      token: res.body.access_token,
      secretFingerprint: fingerprint,
      expiresAt: Date.now() + (res.body.expires_in ?? 3600) * 1000,
    };
    return this.cached.token;
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
    return { status: res.statusCode, body: parsed as T, etag: typeof etag === 'string' ? etag : undefined };
  }
}

/** The human part of a SCIM error body. */
export function scimDetail(body: unknown): string {
  const b = body as { detail?: unknown; scimType?: unknown } | undefined;
  if (b && typeof b.detail === 'string') return b.scimType ? `${b.detail} (${String(b.scimType)})` : b.detail;
  return 'no detail';
}
