/**
 * Active Directory (and Samba AD) source. Anchor = base64 of the raw objectGUID bytes (the
 * incumbent's ImmutableId); `objectguid` carries the canonical GUID string, `objectsid` the SID
 * string. Large groups: AD returns `member;range=0-1499` and we fetch the remaining ranges.
 */
import { createDirectoryConnection } from '../../ldap/directory-connector.js';
import type { SecretResolver, SourceConnector, SourceObject } from '../types.js';
import { adCurrentWatermark, adDeltaImport } from './delta.js';
import { AD_KIND, adEntryToCompleteObject, isComputerOrKrbtgt, type AdCfg } from './entry.js';

export * from './entry.js';

export function createAdConnector(cfg: AdCfg, secret: SecretResolver): SourceConnector {
  const dir = createDirectoryConnection(cfg, secret, AD_KIND);
  return {
    name: cfg.name,
    kind: 'ad',
    test: () => dir.test(),
    fullImport: () =>
      dir.fullImport(async (client, page, objectType) => {
        const out: SourceObject[] = [];
        for (const raw of page) {
          if (objectType === 'user' && isComputerOrKrbtgt(raw)) continue;
          out.push(await adEntryToCompleteObject(client, raw, objectType, cfg));
        }
        return out;
      }),
    currentWatermark: () => adCurrentWatermark(cfg, dir),
    deltaImport: (watermark: string) => adDeltaImport(cfg, dir, watermark),
    deltaSeesDeletions: true, // tombstones
    close: () => dir.close(),
  };
}
