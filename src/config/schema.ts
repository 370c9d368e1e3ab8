/**
 * The configuration file's schema (one YAML file, validated at load). Secrets never live here:
 * connector credentials are in the encrypted credential store, keyed by connector name.
 */
import { z } from 'zod';
import { rulesSchema } from '../rules/index.js';

const tlsSchema = z
  .object({
    /** PEM file with the CA certificate(s) that signed the server's certificate. */
    ca: z.string().optional(),
    /** Upgrade a plain ldap:// connection with StartTLS before binding. */
    startTls: z.boolean().default(false),
    /** Name to check the server certificate against when it differs from the URL's host. */
    serverName: z.string().optional(),
    /** Only for labs: accept any certificate. */
    insecureSkipVerify: z.boolean().default(false),
  })
  .strict()
  .default({});

const scopeSchema = z
  .object({
    /** DNs of subtrees whose objects are in scope (default: the whole base DN). */
    include: z.array(z.string()).default([]),
    /** DNs of subtrees excluded even when inside an included one. */
    exclude: z.array(z.string()).default([]),
  })
  .strict()
  .default({});

/**
 * Names a connector cannot have: each names a credential of its own in the credential store (a
 * connector's bind password is stored under the connector's name). A connector named `agent` made
 * its bind password the agent's bearer token.
 */
const RESERVED_CONNECTOR_NAMES: Record<string, string> = {
  cloud: 'the cloud connector',
  agent: "the DC agent's token (`idsync credentials set agent`)",
};

/** A directory URL: no user name or password in it (they would be printed with every error about it). */
function withoutUserinfo(u: string): boolean {
  try {
    const url = new URL(u);
    return url.username === '' && url.password === '';
  } catch {
    return !/^[a-z]+:\/\/[^/]*@/i.test(u);
  }
}
const USERINFO_MESSAGE = 'must not hold a user name or password (they would show in every message about the URL): give the bind DN as bindDn and the password with `idsync credentials set`';

const ldapCommon = {
  name: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'lower-case letters, digits and dashes, starting with a letter'),
  url: z.string().regex(/^ldaps?:\/\//, 'must start with ldap:// or ldaps://').refine(withoutUserinfo, USERINFO_MESSAGE),
  bindDn: z.string().min(1),
  baseDn: z.string().min(1),
  tls: tlsSchema,
  scope: scopeSchema,
  pageSize: z.number().int().min(1).max(5000).default(1000),
  timeoutMs: z.number().int().min(100).default(15000),
  userFilter: z.string().optional(),
  groupFilter: z.string().optional(),
};

/**
 * The one default time between sync cycles: the configuration's `sync.interval`, which `serve`,
 * `service start`, `service install` and `doctor` use unless told otherwise.
 */
export const DEFAULT_SYNC_INTERVAL = '5m';

/**
 * Password hash sync from the DCs themselves over MS-DRSR (docs/password-hash-sync.md#drs): the
 * connector's bind account replicates unicodePwd with DRSGetNCChanges. NTLM only.
 */
export const drsPasswordSourceSchema = z
  .object({
    source: z.literal('drs'),
    /** The DC to replicate from (default: the host of the connector's url). */
    host: z.string().min(1).optional(),
    /** The DRSUAPI TCP port; when absent, the endpoint mapper (epmPort) is asked. */
    rpcPort: z.number().int().min(1).max(65535).optional(),
    /** The endpoint mapper's port. */
    epmPort: z.number().int().min(1).max(65535).default(135),
    /**
     * The account for NTLM, as DOMAIN\\user or user@dns.domain (default: bindDn when it has one of
     * these forms). It needs DS-Replication-Get-Changes and -Get-Changes-All on the domain root.
     */
    account: z.string().min(1).optional(),
    /** How often to ask the DC for changes, e.g. "1s", "500ms", "2m". */
    pollInterval: z.string().regex(/^\d+(ms|s|m)$/, 'a duration such as "1s", "500ms" or "2m"').default('1s'),
    /** Objects per GetNCChanges reply (cMaxObjects). */
    maxObjects: z.number().int().min(10).max(10000).default(1000),
  })
  .strict();

export const adConnectorSchema = z.object({ type: z.literal('ad'), ...ldapCommon, passwords: drsPasswordSourceSchema.optional() }).strict();
export const ldapConnectorSchema = z
  .object({
    type: z.literal('ldap'),
    ...ldapCommon,
    /** Delta import: where the accesslog overlay logs (deletions are seen only with it; see docs/delta-import.md). */
    delta: z
      .object({
        accesslogBase: z.string().optional(),
        /**
         * Without accesslogBase a delta cannot see deletions: a full import runs this often to find
         * them (default daily), e.g. "12h", "1d", "30m".
         */
        fullImportInterval: z.string().regex(/^\d+(s|m|h|d)$/, 'a duration such as "12h", "1d" or "30m"').optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
export const ldifConnectorSchema = z
  .object({
    type: z.literal('ldif'),
    name: ldapCommon.name,
    /** Path of the LDIF file, relative to the configuration file. */
    path: z.string().min(1),
    /** Attribute holding each entry's immutable ID. */
    anchorAttribute: z.string().default('entryUUID'),
    scope: scopeSchema,
  })
  .strict();

export const sourceConnectorSchema = z.discriminatedUnion('type', [
  adConnectorSchema,
  ldapConnectorSchema,
  ldifConnectorSchema,
]);

const DURATION = /^\d+(s|m|h)$/;

/** Milliseconds of a configuration duration ("30s", "15m", "1h"; checked by the schema). */
export function configDurationMs(text: string): number {
  const m = /^(\d+)(s|m|h)$/.exec(text);
  if (!m) throw new Error(`not a duration: ${text}`);
  return Number(m[1]) * (m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : 3_600_000);
}

export const cloudSchema = z
  .object({
    /** Base URL of the cloud directory, e.g. https://cloud.example.com */
    url: z
      .string()
      .url()
      .refine((u) => /^https?:\/\//i.test(u), 'must start with http:// or https://')
      .refine(withoutUserinfo, 'must not hold a user name or password (they would show in every message about the URL): the secret is set with `idsync credentials set cloud`'),
    /** How the sync service authenticates: an account's user name, or an OAuth client id. */
    auth: z
      .discriminatedUnion('type', [
        z.object({ type: z.literal('password'), username: z.string().min(1) }).strict(),
        z.object({ type: z.literal('client_credentials'), clientId: z.string().min(1) }).strict(),
      ])
      .default({ type: 'client_credentials', clientId: 'idsync' }),
    /** PEM CA for an https:// cloud URL with a private CA. */
    ca: z.string().optional(),
    timeoutMs: z.number().int().min(100).default(30000),
    /** Concurrent requests to the cloud directory. */
    concurrency: z.number().int().min(1).max(64).default(8),
    retries: z.number().int().min(0).max(20).default(5),
    /** Objects per SCIM Bulk request (RFC 7644 §3.7); 1 turns Bulk off. Falls back by itself when the cloud has no Bulk. */
    bulkSize: z.number().int().min(1).max(1000).default(200),
    /**
     * A credential the cloud refused is not presented again until it changes; the unchanged one is
     * tried once more after this long (so a fix on the cloud's side recovers too), e.g. "15m".
     */
    refusedCredentialRecheck: z.string().regex(DURATION, 'a duration such as "30s", "15m" or "1h"').default('15m'),
    /**
     * Installation IDs of other idsync servers this one takes over the export from (explicitly: an
     * export is refused while another installation exports to the tenant; see docs/service.md).
     */
    takeOverFrom: z.array(z.string().min(1)).optional(),
  })
  .strict();

/** `sync.deletionThreshold` as text: "10%", or "500 or 10%" (a plain count is a YAML number). */
export const DELETION_THRESHOLD = /^(?:(\d{1,9}) or )?(\d{1,3}(?:\.\d+)?)%$/;
export const DEFAULT_DELETION_THRESHOLD = '500 or 10%';

export const syncSchema = z
  .object({
    /**
     * Stop an export that would delete more cloud objects than this: a count (500, the incumbent's),
     * a percentage of the exported objects ("10%"), or both — "500 or 10%", the default — where the
     * smaller one applies, so a truncated or empty source file cannot empty a small directory either.
     */
    deletionThreshold: z
      .union([
        z.number().int().min(0),
        z.string().regex(DELETION_THRESHOLD, 'a count such as 500, a percentage such as "10%", or both: "500 or 10%"'),
      ])
      .default(DEFAULT_DELETION_THRESHOLD),
    /** What a user removed from the source (or the scope) becomes in the cloud: deleted, or disabled (active: false). */
    deletionAction: z.enum(['delete', 'disable']).default('delete'),
    /** Staging mode: import and sync, never export (a warm standby, or a preview of a new configuration). */
    stagingMode: z.boolean().default(false),
    /** How long run history is kept. */
    runRetentionDays: z.number().int().min(1).max(3650).default(7),
    /** How often `idsync serve` runs a (delta) cycle, e.g. "2m", "30s", "1h". */
    interval: z
      .string()
      .regex(/^\d+(s|m|h)$/, 'a duration such as "30s", "2m" or "1h"')
      .refine((d) => !/^0+[smh]$/.test(d), 'must be more than 0 (a cycle would follow a cycle with no pause)')
      .default(DEFAULT_SYNC_INTERVAL),
  })
  .strict()
  .default({});

/**
 * Where the sync service keeps its state (docs/store.md): SQLite in the data directory (the default),
 * or PostgreSQL. The database password is never in this file: it comes from $IDSYNC_STORE_PASSWORD
 * or from `passwordFile` (owner-only, e.g. a systemd credential), because the credential store
 * itself lives in the database it would unlock.
 */
export const storeSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('sqlite') }).strict(),
    z
      .object({
        type: z.literal('postgres'),
        /** postgres://USER@HOST:5432/DATABASE (no password: see passwordFile / $IDSYNC_STORE_PASSWORD). */
        url: z
          .string()
          .regex(/^postgres(ql)?:\/\//, 'a postgres://USER@HOST:5432/DATABASE URL')
          .refine((u) => {
            try {
              return new URL(u).password === '';
            } catch {
              return false;
            }
          }, 'a valid postgres:// URL without a password: give the password in $IDSYNC_STORE_PASSWORD or store.passwordFile'),
        /** A file holding the password on its first line, readable by its owner only (relative to the config file). */
        passwordFile: z.string().optional(),
        /** TLS to the server; the files are PEM, relative to the configuration file. */
        tls: z
          .object({
            caFile: z.string().optional(),
            certFile: z.string().optional(),
            keyFile: z.string().optional(),
            servername: z.string().optional(),
            /** Verify the server's certificate and name (default true). */
            verify: z.boolean().default(true),
          })
          .strict()
          .optional(),
      })
      .strict(),
  ])
  .default({ type: 'sqlite' });

/**
 * Several `idsync serve` nodes on one PostgreSQL store (docs/ha.md): one leads under a lease, the
 * others stand by. Ignored with the SQLite store (one node, no lease).
 */
export const haSchema = z
  .object({
    /** This node's name in status and events (default: the host name). */
    node: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, ".", "_" and "-", at most 64').optional(),
    /** How long a leader's lease lasts without renewal: a standby takes over within leaseTtl + renewInterval. */
    leaseTtl: z.string().regex(/^\d+(ms|s)$/, 'a duration such as "5s" or "2500ms"').default('5s'),
    /** How often the leader renews and a standby tries to take over (at most a third of leaseTtl). */
    renewInterval: z.string().regex(/^\d+(ms|s)$/, 'a duration such as "1s" or "500ms"').default('1s'),
  })
  .strict()
  .default({});

export const configSchema = z
  .object({
    /** Where idsync keeps its state (SQLite database, keys, pid files). Relative to the config file. */
    dataDir: z.string().default('./idsync-data'),
    /** The database: SQLite in dataDir (default) or PostgreSQL (docs/store.md). */
    store: storeSchema,
    connectors: z.array(sourceConnectorSchema).min(1, 'configure at least one source connector'),
    cloud: cloudSchema,
    sync: syncSchema,
    /** High availability on the PostgreSQL store: node name and lease timing (docs/ha.md). */
    ha: haSchema,
    /** Where events go besides the event log in the database (docs/events.md). */
    events: z
      .object({
        /** Append every event as one JSON line to this file (relative to the configuration file). */
        jsonFile: z.string().optional(),
        /** journald (under systemd), syslog (through logger(1)), off, or auto: journald when run by systemd. */
        systemLog: z.enum(['auto', 'journald', 'syslog', 'off']).default('auto'),
      })
      .strict()
      .default({}),
    /** Password hash synchronization on or off (docs/password-hash-sync.md). */
    passwordHashSync: z.object({ enabled: z.boolean().default(true) }).strict().default({}),
    /** The sync console (docs/console.md). */
    console: z
      .object({
        /**
         * Metaverse attributes the console's search answers from its attribute index (names are
         * case-insensitive); any other attribute is searched by a bounded walk. Default: the naming
         * attributes (src/console/attr-index.ts). Applied when `idsync serve` starts.
         */
        indexedAttributes: z.array(z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'an attribute name (letters, digits, "-" or "_")')).max(64).optional(),
      })
      .strict()
      .default({}),
    /** Declarative sync rules (docs/rules.md): scoping, flows, precedence, joins. */
    rules: rulesSchema.optional(),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.connectors.forEach((c, i) => {
      const reserved = RESERVED_CONNECTOR_NAMES[c.name];
      if (reserved) ctx.addIssue({ code: 'custom', path: ['connectors', i, 'name'], message: `"${c.name}" is reserved for ${reserved}` });
      if (seen.has(c.name)) {
        ctx.addIssue({ code: 'custom', path: ['connectors', i, 'name'], message: `duplicate connector name "${c.name}"` });
      }
      seen.add(c.name);
    });
  });

export type Config = z.infer<typeof configSchema>;
export type SourceConnectorConfig = z.infer<typeof sourceConnectorSchema>;
export type LdapConnectorConfig = z.infer<typeof ldapConnectorSchema> | z.infer<typeof adConnectorSchema>;
export type AdConnectorConfig = z.infer<typeof adConnectorSchema>;
export type DrsPasswordSourceConfig = z.infer<typeof drsPasswordSourceSchema>;
export type LdifConnectorConfig = z.infer<typeof ldifConnectorSchema>;
export type CloudConfig = z.infer<typeof cloudSchema>;
export type StoreConfig = z.infer<typeof storeSchema>;
