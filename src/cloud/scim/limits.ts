/**
 * Request limits of the SCIM service. Every one is advertised in /ServiceProviderConfig, and a
 * request over a limit is refused up front (413, or 400 with a scimType) instead of being worked
 * through: one client must not be able to hold the event loop that serves /healthz and sign-in.
 */
import { badRequest, ScimError } from './errors.js';

export interface ScimLimits {
  /** Largest page a list returns (ServiceProviderConfig filter.maxResults). */
  maxResults: number;
  /** Operations per Bulk request (bulk.maxOperations). */
  maxOperations: number;
  /** Bytes of any SCIM request body (bulk.maxPayloadSize; also single resources: a group PUT carries its membership). */
  maxPayloadSize: number;
  /** Operations per PATCH request. */
  maxPatchOperations: number;
}

export const DEFAULT_LIMITS: ScimLimits = {
  maxResults: 1000,
  maxOperations: 1000,
  maxPayloadSize: 10 * 1024 * 1024,
  maxPatchOperations: 10_000,
};

/** Characters of one string value (a base64 certificate fits; a 9 MB userName does not). */
export const MAX_VALUE_LENGTH = 65_536;
/** Characters of userName, externalId and displayName: identifiers, indexed and compared. */
export const MAX_IDENTIFIER_LENGTH = 1024;
/** Elements of one multi-valued attribute other than Group.members (which lives in its own table). */
export const MAX_MULTI_VALUES = 1000;
/** Nesting of a JSON body: SCIM resources are a few levels deep; this leaves generous room. */
export const MAX_JSON_DEPTH = 64;
/** Characters of a filter (query or .search body). */
export const MAX_FILTER_LENGTH = 4096;
/** Comparisons in one filter (eq, co, pr, ...). */
export const MAX_FILTER_TERMS = 100;
/**
 * Substring comparisons (co/sw/ew) in one filter. Each scans every row through a JS function, so a
 * 180-term `co` filter took over a second; real clients use one or two.
 */
export const MAX_FILTER_SUBSTRING_TERMS = 10;

/** The limits as published in ServiceProviderConfig (the standard fields plus an idsync extension). */
export function advertisedLimits(l: ScimLimits): Record<string, unknown> {
  return {
    patch: { supported: true, maxOperations: l.maxPatchOperations },
    bulk: { supported: true, maxOperations: l.maxOperations, maxPayloadSize: l.maxPayloadSize },
    filter: { supported: true, maxResults: l.maxResults, maxLength: MAX_FILTER_LENGTH, maxTerms: MAX_FILTER_TERMS, maxSubstringTerms: MAX_FILTER_SUBSTRING_TERMS },
    'urn:idsync:params:scim:api:limits': {
      maxPayloadSize: l.maxPayloadSize,
      maxPatchOperations: l.maxPatchOperations,
      maxBulkOperations: l.maxOperations,
      maxValueLength: MAX_VALUE_LENGTH,
      maxIdentifierLength: MAX_IDENTIFIER_LENGTH,
      maxMultiValues: MAX_MULTI_VALUES,
      maxJsonDepth: MAX_JSON_DEPTH,
      maxFilterLength: MAX_FILTER_LENGTH,
      maxFilterTerms: MAX_FILTER_TERMS,
      maxFilterSubstringTerms: MAX_FILTER_SUBSTRING_TERMS,
    },
  };
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A lone UTF-16 surrogate: not a Unicode character, and JSON consumers choke on it. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** String.prototype.isWellFormed (V8 11.1+, every Node this runs on): a scan without a regular expression. */
const isWellFormed = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed;

export function hasLoneSurrogate(s: string): boolean {
  return isWellFormed ? !isWellFormed.call(s) : LONE_SURROGATE.test(s);
}

/** Refuses a string that is not well-formed Unicode; `where` names it in the error. */
export function checkWellFormed(s: string, where: string): void {
  if (hasLoneSurrogate(s)) throw badRequest('invalidValue', `${where} contains a lone UTF-16 surrogate (\\uD800-\\uDFFF), which is not a Unicode character`);
}

/**
 * Checks a parsed body: nesting deeper than MAX_JSON_DEPTH (the validators walk bodies
 * recursively, so a 100k-deep body would overflow the stack: a 500), lone surrogates in keys and
 * strings, and prototype-poisoning keys. V8's JSON.parse itself is iterative, so parsing first is
 * safe and costs no extra pass. The walk recurses, but never deeper than MAX_JSON_DEPTH (it stops
 * there), and allocates nothing per value: it runs over every string of every Bulk request.
 */
export function checkBody(body: unknown): void {
  checkValue(body, 0);
}

function checkValue(v: unknown, depth: number): void {
  if (typeof v === 'string') {
    checkWellFormed(v, 'a string in the request body');
    return;
  }
  if (typeof v !== 'object' || v === null) return;
  if (depth >= MAX_JSON_DEPTH) throw badRequest('invalidSyntax', `the request body nests deeper than ${MAX_JSON_DEPTH} levels`);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) checkValue(v[i], depth + 1);
    return;
  }
  const o = v as Record<string, unknown>;
  for (const k in o) {
    if (!Object.hasOwn(o, k)) continue;
    checkWellFormed(k, 'an attribute name in the request body');
    const x = o[k];
    // Prototype poisoning, refused as fastify's JSON parser (secure-json-parse) refuses it.
    if (k === '__proto__' || (k === 'constructor' && isPlainObject(x) && Object.hasOwn(x, 'prototype'))) {
      throw badRequest('invalidSyntax', `the request body is not valid JSON: it has a forbidden "${k === '__proto__' ? k : 'constructor.prototype'}" key`);
    }
    checkValue(x, depth + 1);
  }
}

/** 413 for a request with more operations than allowed (RFC 7644 §3.7.3 uses 413 for Bulk). */
export function tooManyOperations(what: string, max: number, got: number): ScimError {
  return new ScimError(413, undefined, `${what} has ${got} operations; the maximum is ${max} (see ServiceProviderConfig)`);
}
