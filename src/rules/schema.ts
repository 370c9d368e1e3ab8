/**
 * The `rules:` section of the configuration file: scoping filters, inbound and outbound attribute
 * flows written in CEL, connector precedence, join rules and cloud soft match. Validated by zod
 * (shape) and then by compileRules() (expressions, connector and attribute names).
 * docs/rules.md documents every key.
 */
import { z } from 'zod';

const objectType = z.enum(['user', 'group']);
const connectorName = z.string().min(1);
/** One CEL expression; bounded so a configuration cannot hold a huge program. */
const expression = z.string().min(1, 'an expression cannot be empty').max(4096, 'at most 4096 characters');
const mvAttribute = z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/, 'a metaverse attribute name: letters, digits and _, starting with a letter');

export const scopeRuleSchema = z
  .object({
    /** The source connector this filter applies to. */
    connector: connectorName,
    /** user or group; both when absent. */
    objectType: objectType.optional(),
    /** CEL condition over the source object; the object is in scope only when it is true. */
    where: expression.optional(),
    /** DNs of groups: the object is in scope only when it is a direct member of at least one. */
    memberOf: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict();

export const inboundRuleSchema = z
  .object({
    /** Only objects of this connector; every connector when absent. */
    connector: connectorName.optional(),
    objectType: objectType.optional(),
    /** The metaverse attribute set by `expression`. */
    target: mvAttribute,
    /** CEL over the source object; string, bool or null (null or "" = no value). */
    expression,
  })
  .strict();

export const precedenceSchema = z
  .object({
    /** Connector order for every attribute; default: the order of `connectors`. */
    default: z.array(connectorName).optional(),
    /** Connector order for single metaverse attributes. */
    attributes: z.record(z.string(), z.array(connectorName)).default({}),
  })
  .strict();

export const joinRuleSchema = z
  .object({
    objectType,
    /** Metaverse attribute compared case-insensitively across connectors. */
    attribute: mvAttribute,
  })
  .strict();

export const outboundRuleSchema = z
  .object({
    objectType,
    /** SCIM attribute path: title, name.givenName, or urn:...:User:costCenter. */
    target: z.string().min(1).max(300),
    /** CEL over `mv`; null or "" removes the attribute. */
    expression,
  })
  .strict();

export const cloudSoftMatchSchema = z
  .object({
    enabled: z.boolean().default(false),
    attributes: z.array(z.enum(['userName', 'emails'])).min(1).default(['userName']),
  })
  .strict();

export const rulesSchema = z
  .object({
    scope: z.array(scopeRuleSchema).default([]),
    inbound: z.array(inboundRuleSchema).default([]),
    precedence: precedenceSchema.optional(),
    join: z.array(joinRuleSchema).default([]),
    outbound: z.array(outboundRuleSchema).default([]),
    cloudSoftMatch: cloudSoftMatchSchema.optional(),
  })
  .strict();

/** The `rules:` section after parsing (defaults applied). */
export type RulesConfig = z.infer<typeof rulesSchema>;
/** The `rules:` section as written (what rulesSchema accepts). */
export type RulesInput = z.input<typeof rulesSchema>;
export type ScopeRule = z.infer<typeof scopeRuleSchema>;
export type InboundRule = z.infer<typeof inboundRuleSchema>;
export type OutboundRule = z.infer<typeof outboundRuleSchema>;
export type JoinRule = z.infer<typeof joinRuleSchema>;
