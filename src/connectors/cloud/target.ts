/**
 * The cloud directory as an export target (TargetConnector, connectors/types.ts): the one place
 * that knows SCIM's wire format for writes — Bulk requests, resource endpoints, PatchOp for a
 * disable, filters for the look-ups that adopt an object. engine/export.ts plans and decides;
 * this module speaks.
 */
import type { ObjectType, TargetConnector, TargetOutcome, TargetWrite } from '../types.js';
import { IdsyncError } from '../../core/errors.js';
import { scimDetail, type CloudClient } from './client.js';

const BULK_REQUEST = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

const endpoint = (t: ObjectType) => (t === 'user' ? '/Users' : '/Groups');

function outcome(status: number, body: unknown, id?: string): TargetOutcome {
  if ((status === 200 || status === 201) && id) return { kind: 'ok', targetId: id };
  const detail = scimDetail(body);
  if (status === 409) return { kind: 'conflict', status, detail };
  if (status === 404) return { kind: 'not-found', status, detail };
  if (status >= 500) return { kind: 'server-error', status, detail };
  return { kind: 'rejected', status, detail };
}

export class ScimTarget implements TargetConnector {
  readonly name = 'cloud';

  constructor(private readonly cloud: CloudClient) {}

  async writeBatch(writes: TargetWrite[]): Promise<TargetOutcome[] | undefined> {
    // The body is built as text around each resource's JSON (made once, for its hash, by the engine).
    let ops = '';
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i]!;
      const data = w.json;
      if (i > 0) ops += ',';
      ops += w.targetId
        ? `{"method":"PUT","path":${JSON.stringify(`${endpoint(w.objectType)}/${w.targetId}`)},"data":${data}}`
        : `{"method":"POST","path":"${endpoint(w.objectType)}","bulkId":"w${i}","data":${data}}`;
    }
    // No failOnErrors: every operation is tried, results come per object.
    const res = await this.cloud.scim<{ Operations?: { status: string; location?: string; response?: unknown }[] }>('POST', '/Bulk', `{"schemas":["${BULK_REQUEST}"],"Operations":[${ops}]}`);
    if (res.status === 404 || res.status === 405 || res.status === 501) return undefined; // no (usable) Bulk endpoint
    if (res.status !== 200 || !Array.isArray(res.body.Operations) || res.body.Operations.length !== writes.length) {
      throw new IdsyncError(res.status >= 500 ? 'CLOUD_SERVER_ERROR' : 'EXPORT_FAILED', `the cloud directory answered a bulk request with HTTP ${res.status}: ${scimDetail(res.body)}`, {
        hint: 'The next cycle retries; check the cloud directory if this persists.',
      });
    }
    return res.body.Operations.map((op, i) => {
      const w = writes[i]!;
      const id = w.targetId ?? op.location?.split('/').pop() ?? String((op.response as { id?: unknown } | undefined)?.id ?? '');
      return outcome(Number(op.status), op.response, id);
    });
  }

  async write(w: TargetWrite): Promise<TargetOutcome> {
    const body = w.json;
    if (w.targetId) {
      const res = await this.cloud.scim('PUT', `${endpoint(w.objectType)}/${encodeURIComponent(w.targetId)}`, body);
      return outcome(res.status, res.body, w.targetId);
    }
    const res = await this.cloud.scim('POST', endpoint(w.objectType), body);
    return outcome(res.status, res.body, String((res.body as { id?: unknown }).id ?? ''));
  }

  async remove(objectType: ObjectType, targetId: string, how: 'delete' | 'disable'): Promise<TargetOutcome> {
    const path = `${endpoint(objectType)}/${encodeURIComponent(targetId)}`;
    const res =
      how === 'disable'
        ? await this.cloud.scim('PATCH', path, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'active', value: false }] })
        : await this.cloud.scim('DELETE', path);
    // Already gone is done.
    if (res.status === 204 || res.status === 200 || res.status === 404) return { kind: 'ok', targetId };
    return outcome(res.status, res.body);
  }

  async find(objectType: ObjectType, attribute: 'externalId' | 'userName' | 'mail', value: string): Promise<{ targetId: string; externalId?: string } | undefined> {
    const filter = `${attribute === 'mail' ? 'emails.value' : attribute} eq ${scimString(value)}`;
    const res = await this.cloud.scim<{ Resources?: { id: string; externalId?: string }[] }>('GET', `${endpoint(objectType)}?filter=${encodeURIComponent(filter)}&attributes=id,externalId`);
    const hit = res.body.Resources?.[0];
    return hit ? { targetId: hit.id, ...(hit.externalId ? { externalId: hit.externalId } : {}) } : undefined;
  }
}

/** A SCIM filter string literal. */
function scimString(v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
