/**
 * SCIM schema definitions (RFC 7643 §7-8) and attribute-path resolution. The definitions drive
 * everything else: input validation, PATCH, filter normalisation, projection and /Schemas. Names are
 * matched case-insensitively (RFC 7643 §2.1) and always written back in their canonical spelling.
 */
import { badRequest, type ScimType } from './errors.js';

export type AttrType = 'string' | 'boolean' | 'decimal' | 'integer' | 'dateTime' | 'reference' | 'complex' | 'binary';
export type Mutability = 'readOnly' | 'readWrite' | 'immutable' | 'writeOnly';
export type Returned = 'always' | 'never' | 'default' | 'request';

export interface AttributeDef {
  name: string;
  type: AttrType;
  multiValued: boolean;
  description: string;
  required: boolean;
  caseExact: boolean;
  mutability: Mutability;
  returned: Returned;
  uniqueness: 'none' | 'server' | 'global';
  canonicalValues?: string[];
  referenceTypes?: string[];
  subAttributes?: AttributeDef[];
  /** Internal: canonicalValues are enforced (not just advertised). */
  strictValues?: boolean;
  /** Internal: value must look like an e-mail address. */
  format?: 'email';
}

export interface SchemaDef {
  id: string;
  name: string;
  description: string;
  attributes: AttributeDef[];
}

export interface ResourceTypeDef {
  /** "User" | "Group": also meta.resourceType. */
  name: 'User' | 'Group';
  endpoint: '/Users' | '/Groups';
  description: string;
  schema: SchemaDef;
  extensions: SchemaDef[];
}

export const SCHEMA_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const SCHEMA_GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const SCHEMA_ENTERPRISE_USER = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const SCHEMA_ONPREM_USER = 'urn:idsync:params:scim:schemas:extension:onprem:2.0:User';
export const SCHEMA_ONPREM_GROUP = 'urn:idsync:params:scim:schemas:extension:onprem:2.0:Group';
export const LIST_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const SEARCH_REQUEST = 'urn:ietf:params:scim:api:messages:2.0:SearchRequest';
export const BULK_REQUEST = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
export const BULK_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:BulkResponse';

type AttrOpts = Partial<Omit<AttributeDef, 'name' | 'type'>>;

function a(name: string, type: AttrType, opts: AttrOpts = {}): AttributeDef {
  return {
    name,
    type,
    multiValued: false,
    description: '',
    required: false,
    caseExact: false,
    mutability: 'readWrite',
    returned: 'default',
    uniqueness: 'none',
    ...opts,
  };
}

const str = (name: string, description = '', opts: AttrOpts = {}): AttributeDef => a(name, 'string', { description, ...opts });

/** The usual value/display/type/primary shape of multi-valued attributes (RFC 7643 §2.4). */
function multi(name: string, description: string, types: string[], valueOpts: AttrOpts = {}): AttributeDef {
  return a(name, 'complex', {
    multiValued: true,
    description,
    subAttributes: [
      a('value', 'string', { description: `The ${name} value.`, ...valueOpts }),
      str('display', 'A human-readable name, primarily used for display purposes.'),
      str('type', 'A label indicating the function of the value.', { canonicalValues: types }),
      a('primary', 'boolean', { description: 'Indicates the primary or preferred value.' }),
    ],
  });
}

/** id, externalId and meta: common to every resource (RFC 7643 §3.1), not published in /Schemas. */
export const COMMON_ATTRIBUTES: AttributeDef[] = [
  str('id', 'Unique identifier assigned by the service provider.', { caseExact: true, mutability: 'readOnly', returned: 'always', uniqueness: 'server' }),
  str('externalId', 'Identifier assigned by the provisioning client (the on-premises source anchor).', { caseExact: true }),
  a('meta', 'complex', {
    mutability: 'readOnly',
    returned: 'always',
    description: 'Resource metadata.',
    subAttributes: [
      str('resourceType', '', { caseExact: true, mutability: 'readOnly' }),
      a('created', 'dateTime', { mutability: 'readOnly' }),
      a('lastModified', 'dateTime', { mutability: 'readOnly' }),
      a('location', 'reference', { caseExact: true, mutability: 'readOnly', referenceTypes: ['uri'] }),
      str('version', '', { caseExact: true, mutability: 'readOnly' }),
    ],
  }),
];

export const USER_SCHEMA: SchemaDef = {
  id: SCHEMA_USER,
  name: 'User',
  description: 'User Account',
  attributes: [
    str('userName', 'Unique identifier for the User, used to sign in.', { required: true, uniqueness: 'server' }),
    a('name', 'complex', {
      description: "The components of the user's name.",
      subAttributes: ['formatted', 'familyName', 'givenName', 'middleName', 'honorificPrefix', 'honorificSuffix'].map((n) => str(n)),
    }),
    str('displayName', 'The name of the User, suitable for display.'),
    str('nickName'),
    a('profileUrl', 'reference', { referenceTypes: ['external'] }),
    str('title'),
    str('userType'),
    str('preferredLanguage'),
    str('locale'),
    str('timezone'),
    a('active', 'boolean', { description: "The User's administrative status." }),
    (() => {
      const emails = multi('emails', 'Email addresses for the user.', ['work', 'home', 'other']);
      emails.subAttributes![0]!.format = 'email';
      return emails;
    })(),
    multi('phoneNumbers', 'Phone numbers for the User.', ['work', 'home', 'mobile', 'fax', 'pager', 'other']),
    multi('ims', 'Instant messaging addresses for the User.', ['aim', 'gtalk', 'icq', 'xmpp', 'msn', 'skype', 'qq', 'yahoo']),
    multi('photos', 'URLs of photos of the User.', ['photo', 'thumbnail']),
    a('addresses', 'complex', {
      multiValued: true,
      description: 'A physical mailing address for this User.',
      subAttributes: [
        ...['formatted', 'streetAddress', 'locality', 'region', 'postalCode', 'country'].map((n) => str(n)),
        str('type', '', { canonicalValues: ['work', 'home', 'other'] }),
        a('primary', 'boolean'),
      ],
    }),
    a('groups', 'complex', {
      multiValued: true,
      mutability: 'readOnly',
      description: 'Groups the user belongs to directly (maintained through Group membership).',
      subAttributes: [
        str('value', '', { mutability: 'readOnly', caseExact: true }),
        a('$ref', 'reference', { mutability: 'readOnly', caseExact: true, referenceTypes: ['Group'] }),
        str('display', '', { mutability: 'readOnly' }),
        str('type', '', { mutability: 'readOnly', canonicalValues: ['direct', 'indirect'] }),
      ],
    }),
    multi('entitlements', 'Entitlements of the User.', []),
    multi('roles', 'Roles of the User.', []),
    (() => {
      const certs = multi('x509Certificates', 'DER-encoded X.509 certificates.', []);
      certs.subAttributes![0]!.type = 'binary';
      return certs;
    })(),
  ],
};

export const ENTERPRISE_USER_SCHEMA: SchemaDef = {
  id: SCHEMA_ENTERPRISE_USER,
  name: 'EnterpriseUser',
  description: 'Enterprise User',
  attributes: [
    str('employeeNumber'),
    str('costCenter'),
    str('organization'),
    str('division'),
    str('department'),
    a('manager', 'complex', {
      subAttributes: [
        str('value', 'The id of the manager.', { caseExact: true }),
        a('$ref', 'reference', { caseExact: true, referenceTypes: ['User'] }),
        str('displayName', '', { mutability: 'readOnly' }),
      ],
    }),
  ],
};

export const ONPREM_USER_SCHEMA: SchemaDef = {
  id: SCHEMA_ONPREM_USER,
  name: 'OnPremisesUser',
  description: 'On-premises identity of a synchronized user (written by idsync).',
  attributes: [
    str('onPremisesSamAccountName', 'sAMAccountName (AD) or uid (LDAP).'),
    str('onPremisesDistinguishedName', 'Distinguished name in the source directory.'),
    str('onPremisesDomainName', 'DNS name of the source domain.'),
    str('onPremisesImmutableId', 'Source anchor (objectGUID / entryUUID).', { caseExact: true }),
  ],
};

export const GROUP_SCHEMA: SchemaDef = {
  id: SCHEMA_GROUP,
  name: 'Group',
  description: 'Group',
  attributes: [
    str('displayName', 'A human-readable name for the Group.', { required: true }),
    a('members', 'complex', {
      multiValued: true,
      description: 'A list of members of the Group.',
      subAttributes: [
        str('value', 'Identifier of the member.', { caseExact: true, mutability: 'immutable', required: true }),
        a('$ref', 'reference', { caseExact: true, mutability: 'immutable', referenceTypes: ['User', 'Group'] }),
        str('type', 'The type of the member.', { mutability: 'immutable', canonicalValues: ['User', 'Group'], strictValues: true }),
        str('display', 'Display name of the member (userName/displayName, kept current by the server).', { mutability: 'readOnly' }),
      ],
    }),
  ],
};

export const ONPREM_GROUP_SCHEMA: SchemaDef = {
  id: SCHEMA_ONPREM_GROUP,
  name: 'OnPremisesGroup',
  description: 'On-premises identity of a synchronized group (written by idsync).',
  attributes: [
    str('onPremisesDistinguishedName', 'Distinguished name in the source directory.'),
    str('onPremisesSamAccountName', 'sAMAccountName (AD) or cn (LDAP).'),
  ],
};

export const USER_TYPE: ResourceTypeDef = {
  name: 'User',
  endpoint: '/Users',
  description: 'User Account',
  schema: USER_SCHEMA,
  extensions: [ENTERPRISE_USER_SCHEMA, ONPREM_USER_SCHEMA],
};

export const GROUP_TYPE: ResourceTypeDef = {
  name: 'Group',
  endpoint: '/Groups',
  description: 'Group',
  schema: GROUP_SCHEMA,
  extensions: [ONPREM_GROUP_SCHEMA],
};

export const RESOURCE_TYPES: ResourceTypeDef[] = [USER_TYPE, GROUP_TYPE];
export const ALL_SCHEMAS: SchemaDef[] = [USER_SCHEMA, ENTERPRISE_USER_SCHEMA, ONPREM_USER_SCHEMA, GROUP_SCHEMA, ONPREM_GROUP_SCHEMA];

// ---------------------------------------------------------------------------------------------
// Case-insensitive lookup

const byNameCache = new WeakMap<AttributeDef[], Map<string, AttributeDef>>();

/** Finds an attribute in a list by name, case-insensitively. */
export function findAttr(list: AttributeDef[] | undefined, name: string): AttributeDef | undefined {
  if (!list) return undefined;
  let m = byNameCache.get(list);
  if (!m) {
    m = new Map(list.map((d) => [d.name.toLowerCase(), d]));
    byNameCache.set(list, m);
  }
  return m.get(name.toLowerCase());
}

const coreWithCommon = new WeakMap<ResourceTypeDef, AttributeDef[]>();

/** Core schema attributes plus the common ones (id, externalId, meta). */
export function coreAttributes(rt: ResourceTypeDef): AttributeDef[] {
  let l = coreWithCommon.get(rt);
  if (!l) {
    l = [...COMMON_ATTRIBUTES, ...rt.schema.attributes];
    coreWithCommon.set(rt, l);
  }
  return l;
}

/** The extension schema whose URN equals `urn` (case-insensitively). */
export function findExtension(rt: ResourceTypeDef, urn: string): SchemaDef | undefined {
  const lc = urn.toLowerCase();
  return rt.extensions.find((s) => s.id.toLowerCase() === lc);
}

/** A resolved attribute reference: `ext` is the extension URN for extension attributes, else null. */
export interface AttrRef {
  ext: string | null;
  attr: AttributeDef;
  sub?: AttributeDef;
}

/**
 * Splits a leading schema URN off an attribute path. Returns the schema (core or extension) and the
 * rest; `rest` is '' when the path is the URN itself (a whole extension).
 */
export function splitUrn(rt: ResourceTypeDef, path: string, scimType: ScimType): { ext: SchemaDef | null; rest: string } {
  if (!/^urn:/i.test(path)) return { ext: null, rest: path };
  const lc = path.toLowerCase();
  // Longest URN first, so a schema whose URN prefixes another's cannot capture it.
  const candidates = [rt.schema, ...rt.extensions].sort((x, y) => y.id.length - x.id.length);
  for (const s of candidates) {
    const id = s.id.toLowerCase();
    if (lc === id) return { ext: s === rt.schema ? null : s, rest: '' };
    if (lc.startsWith(id + ':')) return { ext: s === rt.schema ? null : s, rest: path.slice(id.length + 1) };
  }
  throw badRequest(scimType, `unknown schema in attribute path "${path}"`);
}

/**
 * Resolves "[urn:]attr[.sub]" against a resource type. Throws 400 with `scimType` for unknown names.
 */
export function resolveAttrPath(rt: ResourceTypeDef, path: string, scimType: ScimType): AttrRef {
  const { ext, rest } = splitUrn(rt, path, scimType);
  if (rest === '') throw badRequest(scimType, `attribute path "${path}" names a schema, not an attribute`);
  const dot = rest.indexOf('.');
  const name = dot < 0 ? rest : rest.slice(0, dot);
  const subName = dot < 0 ? undefined : rest.slice(dot + 1);
  const attr = findAttr(ext ? ext.attributes : coreAttributes(rt), name);
  if (!attr) throw badRequest(scimType, `unknown attribute "${path}" for resource type ${rt.name}`);
  if (subName === undefined) return { ext: ext?.id ?? null, attr };
  const sub = findAttr(attr.subAttributes, subName);
  if (!sub) throw badRequest(scimType, `unknown attribute "${path}" for resource type ${rt.name}`);
  return { ext: ext?.id ?? null, attr, sub };
}

/** Canonical display form of a reference, for error messages. */
export function refName(ref: AttrRef): string {
  const base = ref.sub ? `${ref.attr.name}.${ref.sub.name}` : ref.attr.name;
  return ref.ext ? `${ref.ext}:${base}` : base;
}

/** Strips internal fields for publication in /Schemas. */
export function publishAttribute(d: AttributeDef): Record<string, unknown> {
  const out: Record<string, unknown> = {
    name: d.name,
    type: d.type,
    multiValued: d.multiValued,
    description: d.description,
    required: d.required,
    caseExact: d.caseExact,
    mutability: d.mutability,
    returned: d.returned,
    uniqueness: d.uniqueness,
  };
  if (d.canonicalValues && d.canonicalValues.length) out.canonicalValues = d.canonicalValues;
  if (d.referenceTypes) out.referenceTypes = d.referenceTypes;
  if (d.subAttributes) out.subAttributes = d.subAttributes.map(publishAttribute);
  return out;
}
