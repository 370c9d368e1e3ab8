/**
 * Where the agent sends its batches:
 *  - http:   POST <sync service>/api/v1/agent/password-hashes with `Authorization: Bearer <agent token>`;
 *  - direct: the local idsync.db through the password pipeline (DC and sync service on one host,
 *            and tests). The running service's delivery loop picks the items up from the outbox.
 * A batch that was not accepted throws, and the agent keeps its cookie: nothing is skipped.
 */
import { request } from 'undici';
import { passwordError } from '../passwords/errors.js';
import { AGENT_BATCH_PATH, handleAgentBatch } from '../passwords/handlers.js';
import type { PasswordPipeline } from '../passwords/pipeline.js';
import type { AgentItem, Forwarder } from './samba.js';

export function httpForwarder(serviceUrl: string, token: () => string, connector?: string): Forwarder {
  const url = new URL(AGENT_BATCH_PATH, serviceUrl).toString();
  return async (items: AgentItem[]) => {
    let res;
    try {
      res = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token()}` },
        body: JSON.stringify({ ...(connector ? { connector } : {}), items }),
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
    } catch (err) {
      throw passwordError('AGENT_FORWARD_FAILED', `cannot reach the sync service at ${url}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
        hint: 'Check --forward and that `idsync serve` runs; changes are kept and sent once it answers.',
        details: { url },
        cause: err,
      });
    }
    const text = await res.body.text();
    if (res.statusCode !== 200) {
      let detail = '';
      try {
        const e = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
        detail = e ? `: ${e.code ?? ''} ${e.message ?? ''}`.trimEnd() : '';
      } catch {
        // not JSON
      }
      throw passwordError('AGENT_FORWARD_FAILED', `the sync service answered HTTP ${res.statusCode}${detail}`, {
        hint: res.statusCode === 401 || res.statusCode === 403 ? 'The agent token is wrong: set the same one with `idsync credentials set agent` on the sync service and in --token-file.' : 'See the sync service\'s events (`idsync events`).',
        details: { status: res.statusCode },
      });
    }
  };
}

export function directForwarder(pipeline: PasswordPipeline, connector?: string): Forwarder {
  return async (items: AgentItem[]) => {
    const res = await handleAgentBatch(pipeline, { ...(connector ? { connector } : {}), items });
    if (res.statusCode !== 200) {
      const e = (res.body.error ?? {}) as { code?: string; message?: string };
      throw passwordError('AGENT_FORWARD_FAILED', `the local password pipeline refused the batch: ${e.code ?? ''} ${e.message ?? ''}`.trimEnd(), {
        details: { status: res.statusCode },
      });
    }
  };
}
