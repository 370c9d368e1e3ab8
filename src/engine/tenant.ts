/**
 * One tenant, one exporting installation. Every idsync installation has an ID of its own (made on
 * first use, kept in its database) and sends it with every cloud request; the cloud records which
 * installation writes to it (src/cloud/sync-installations). Before an export writes anything, the
 * engine asks the cloud which other installations have written there: if one has and this
 * installation was not told to take over from it, the export is refused with both ways out —
 * staging mode for a standby server (the incumbent's answer) or an explicit `cloud.takeOverFrom`.
 */
import { randomUUID } from 'node:crypto';
import type { CloudClient } from '../connectors/cloud/client.js';
import { IdsyncError } from '../core/errors.js';
import type { Database } from '../store/database.js';
import type { EngineContext } from './context.js';
import { EngineState } from './import.js';

const KEY = 'installation_id';

/** This installation's ID (created and saved on first use). */
export function installationId(db: Database): string {
  const state = new EngineState(db);
  let id = state.get(KEY);
  if (!id) {
    id = randomUUID();
    state.set(KEY, id);
  }
  return id;
}

export interface OtherInstallation {
  installation: string;
  principal: string;
  lastWrite: string;
  writes: number;
}

/** Installations other than this one that wrote to the tenant; [] when the cloud does not track them. */
export async function otherInstallations(ctx: EngineContext, cloud: CloudClient): Promise<OtherInstallation[]> {
  const me = installationId(ctx.db);
  const res = await cloud.api<{ installations?: OtherInstallation[] }>('GET', '/api/v1/syncInstallations');
  if (res.status === 404) return []; // a cloud directory without the endpoint: nothing to check against
  if (res.status !== 200 || !Array.isArray(res.body.installations)) {
    throw new IdsyncError('CLOUD_REJECTED', `the cloud directory did not say which installations export to it (HTTP ${res.status})`, {
      hint: 'Check the cloud directory\'s log; the next cycle asks again.',
      details: { status: res.status },
    });
  }
  return res.body.installations.filter((i) => i.installation !== me);
}

/**
 * Refuses (CLOUD_TENANT_SHARED) when another installation exports to the tenant and this one was
 * not told to take over from it. Called before an export that writes.
 */
export async function assertTenantIsOurs(ctx: EngineContext, cloud: CloudClient): Promise<void> {
  const allowed = new Set(ctx.loaded.config.cloud.takeOverFrom ?? []);
  const others = (await otherInstallations(ctx, cloud)).filter((o) => !allowed.has(o.installation));
  if (others.length === 0) return;
  const me = installationId(ctx.db);
  const list = others.map((o) => `${o.installation} (signed in as ${o.principal}, last write ${o.lastWrite})`).join('; ');
  throw new IdsyncError(
    'CLOUD_TENANT_SHARED',
    `another idsync installation already exports to the cloud directory at ${ctx.loaded.config.cloud.url}: ${list}. This installation (${me}) wrote nothing`,
    {
      hint:
        'Two servers exporting to one tenant overwrite each other. For a standby server set `sync: { stagingMode: true }` in its configuration ' +
        '(it imports and syncs, exports nothing, and is ready to take over). To move the export to this server, first put the other in staging ' +
        `mode or stop it, then set \`cloud: { takeOverFrom: [${others.map((o) => JSON.stringify(o.installation)).join(', ')}] }\` here. See docs/service.md#a-second-server.`,
      details: { installation: me, others: others.map((o) => o.installation) },
    },
  );
}
