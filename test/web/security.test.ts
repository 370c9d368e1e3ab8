/**
 * The consoles' shared safety rules without a browser: session lifetimes on a controlled clock,
 * and the CSRF check (Origin and token) on a real fastify server over HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { addSecurityHeaders, checkStateChange, CSP, SESSION_IDLE_MS, SESSION_MAX_MS, SessionStore, WebError } from '../../src/web/security.js';

describe('SessionStore', () => {
  test('a session ends after 30 idle minutes, and after 8 hours however busy', () => {
    let t = 1_000_000;
    const store = new SessionStore<string>(() => t);
    const idle = store.create('ann');
    t += SESSION_IDLE_MS - 1;
    assert.equal(store.get(idle.id)?.user, 'ann', 'just inside the idle timeout');
    t += SESSION_IDLE_MS + 1;
    assert.equal(store.get(idle.id), undefined, 'idle too long');

    const busy = store.create('bob');
    for (let used = 0; used < SESSION_MAX_MS; used += SESSION_IDLE_MS / 2) {
      t += SESSION_IDLE_MS / 2;
      if (used + SESSION_IDLE_MS / 2 < SESSION_MAX_MS) assert.ok(store.get(busy.id), `alive at ${used} ms`);
    }
    t += 1;
    assert.equal(store.get(busy.id), undefined, 'past the absolute lifetime');
  });

  test('ids and CSRF tokens are long, random and distinct', () => {
    const store = new SessionStore<string>();
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const s = store.create('x');
      assert.ok(s.id.length >= 43 && s.csrf.length >= 43);
      assert.notEqual(s.id, s.csrf);
      seen.add(s.id).add(s.csrf);
    }
    assert.equal(seen.size, 400);
    assert.equal(store.get('not-a-session'), undefined);
    assert.equal(store.get(undefined), undefined);
  });
});

describe('checkStateChange over HTTP', () => {
  let app: FastifyInstance;
  let url: string;
  const session = new SessionStore<string>().create('ann');

  before(async () => {
    app = Fastify({ logger: false });
    addSecurityHeaders(app);
    app.post('/change', async (req, reply) => {
      try {
        checkStateChange(req, false, session);
      } catch (e) {
        if (e instanceof WebError) return reply.code(e.statusCode).send({ code: e.code });
        throw e;
      }
      return { ok: true };
    });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(() => app.close());

  const post = async (headers: Record<string, string>) => {
    const res = await request(`${url}/change`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{}' });
    const body = (await res.body.json()) as { code?: string };
    return { status: res.statusCode, code: body.code, csp: res.headers['content-security-policy'] };
  };

  test('the right Origin and token pass; each missing or wrong part is refused with its code', async () => {
    const ok = await post({ origin: url, 'x-csrf-token': session.csrf });
    assert.equal(ok.status, 200);
    assert.equal(ok.csp, CSP);
    assert.deepEqual(await post({ origin: url }), { status: 403, code: 'CSRF_TOKEN', csp: CSP });
    assert.equal((await post({ origin: url, 'x-csrf-token': session.csrf + 'x' })).code, 'CSRF_TOKEN');
    assert.equal((await post({ origin: url, 'x-csrf-token': '' })).code, 'CSRF_TOKEN');
    assert.equal((await post({ 'x-csrf-token': session.csrf })).code, 'CSRF_ORIGIN');
    assert.equal((await post({ origin: 'null', 'x-csrf-token': session.csrf })).code, 'CSRF_ORIGIN');
    assert.equal((await post({ origin: url.replace('http:', 'https:'), 'x-csrf-token': session.csrf })).code, 'CSRF_ORIGIN');
    assert.equal((await post({ origin: url + '.evil.example', 'x-csrf-token': session.csrf })).code, 'CSRF_ORIGIN');
  });
});
