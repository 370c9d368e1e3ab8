/**
 * What both web consoles (the sync console under `idsync serve`, the cloud portal under
 * `idsync cloud serve`) share to be safe by construction:
 *
 * - sessions: a random id in an HttpOnly, SameSite=Strict cookie (Secure under TLS), held in memory
 *   (a restart signs everyone out), idle timeout 30 min, absolute 8 h;
 * - CSRF: every state change (POST) needs the session's token in `x-csrf-token` (compared in
 *   constant time) AND an Origin header naming this server; the sign-in itself needs the Origin;
 * - headers: a strict Content-Security-Policy (no inline script or style, nothing third-party),
 *   no framing, no sniffing, no referrer, no caching of API answers;
 * - secrets: attributes whose name may hold a secret never reach a page (`withoutSecrets`);
 * - static assets: a fixed list read once from webui/, served from memory (no path from the URL
 *   ever reaches the file system).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Attribute names that may hold a secret never reach a page, whatever a source put in them. */
export const SECRET_ATTR = /pass|pwd|hash|secret|token|ntlm|unicodepwd|supplementalcredentials|sambant|sambalm|key/i;

/** The attributes without those whose name says they may hold a secret. */
export function withoutSecrets<T>(attrs: Record<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of Object.entries(attrs)) if (!SECRET_ATTR.test(k)) out[k] = v;
  return out;
}

/** The front end (plain ES modules, no build step): the same path from src/ and from dist/. */
export const WEBUI_DIR = fileURLToPath(new URL('../../webui/', import.meta.url));

export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

export const SESSION_IDLE_MS = 30 * 60 * 1000;
export const SESSION_MAX_MS = 8 * 3600 * 1000;

export interface Session<U> {
  id: string;
  csrf: string;
  user: U;
  createdAt: number;
  lastSeen: number;
}

/** Sessions in memory: ids are 256-bit random, never logged. */
export class SessionStore<U> {
  private readonly sessions = new Map<string, Session<U>>();

  constructor(private readonly now: () => number = Date.now) {}

  create(user: U): Session<U> {
    const t = this.now();
    // Expired sessions go when new ones come: the map stays as large as the live sessions.
    for (const [id, s] of this.sessions) if (t - s.lastSeen > SESSION_IDLE_MS || t - s.createdAt > SESSION_MAX_MS) this.sessions.delete(id);
    const s: Session<U> = { id: randomBytes(32).toString('base64url'), csrf: randomBytes(32).toString('base64url'), user, createdAt: t, lastSeen: t };
    this.sessions.set(s.id, s);
    return s;
  }

  get(id: string | undefined): Session<U> | undefined {
    if (!id) return undefined;
    const s = this.sessions.get(id);
    if (!s) return undefined;
    const t = this.now();
    if (t - s.lastSeen > SESSION_IDLE_MS || t - s.createdAt > SESSION_MAX_MS) {
      this.sessions.delete(id);
      return undefined;
    }
    s.lastSeen = t;
    return s;
  }

  delete(id: string): void {
    this.sessions.delete(id);
  }

  /** Ends every session of a user (e.g. after its password changed). */
  deleteWhere(pred: (u: U) => boolean): void {
    for (const [id, s] of this.sessions) if (pred(s.user)) this.sessions.delete(id);
  }
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function readCookie(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    if (part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

export interface CookieOptions {
  name: string;
  /** Path the cookie is sent to (the console's own prefix). */
  path: string;
  secure: boolean;
}

export function setSessionCookie(reply: FastifyReply, c: CookieOptions, value: string): void {
  reply.header('set-cookie', `${c.name}=${value}; Path=${c.path}; HttpOnly; SameSite=Strict${c.secure ? '; Secure' : ''}`);
}

export function clearSessionCookie(reply: FastifyReply, c: CookieOptions): void {
  reply.header('set-cookie', `${c.name}=; Path=${c.path}; HttpOnly; SameSite=Strict; Max-Age=0${c.secure ? '; Secure' : ''}`);
}

/** The Origin header names this very server (scheme, host and port as the browser reached it). */
export function sameOrigin(req: FastifyRequest, secure: boolean): boolean {
  const origin = req.headers.origin;
  const host = req.headers.host;
  if (typeof origin !== 'string' || typeof host !== 'string') return false;
  return origin === `${secure ? 'https' : 'http'}://${host}`;
}

export class WebError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function sendError(reply: FastifyReply, e: WebError): FastifyReply {
  return reply.code(e.statusCode).header('cache-control', 'no-store').send({ error: { code: e.code, message: e.message } });
}

/**
 * For a state change: the Origin must be ours and, with a session, the CSRF token must match.
 * Throws WebError 403 otherwise.
 */
export function checkStateChange<U>(req: FastifyRequest, secure: boolean, session: Session<U> | undefined): void {
  if (!sameOrigin(req, secure)) throw new WebError(403, 'CSRF_ORIGIN', 'this request did not come from this console (Origin header missing or foreign)');
  if (!session) return;
  const token = req.headers['x-csrf-token'];
  if (typeof token !== 'string' || !safeEqual(token, session.csrf)) throw new WebError(403, 'CSRF_TOKEN', 'the CSRF token is missing or wrong: reload the page');
}

/** Security headers on every answer under the console's prefix. */
export function addSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('content-security-policy', CSP);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('cross-origin-opener-policy', 'same-origin');
    reply.header('cross-origin-resource-policy', 'same-origin');
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
};

/**
 * Serves `files` (names under webui/) at `<prefix>/<name>`; `index` at `<prefix>/` and for every
 * page route (the front end routes on the hash).
 */
export function serveAssets(app: FastifyInstance, files: readonly string[], index: string): void {
  const loaded = new Map<string, { type: string; body: Buffer }>();
  for (const f of [...files, index]) {
    const ext = f.slice(f.lastIndexOf('.'));
    loaded.set(f, { type: TYPES[ext] ?? 'application/octet-stream', body: readFileSync(WEBUI_DIR + f) });
  }
  for (const f of files) {
    const a = loaded.get(f)!;
    app.get(`/${f}`, async (_req, reply) => reply.header('content-type', a.type).header('cache-control', 'no-cache').send(a.body));
  }
  const page = loaded.get(index)!;
  app.get('/', async (_req, reply) => reply.header('content-type', page.type).send(page.body));
}
