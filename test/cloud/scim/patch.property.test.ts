/**
 * Property tests of the PATCH engine (fast-check, seeded): random add/remove/replace sequences on a
 * multi-valued attribute agree with a naive one-operation-at-a-time reference model; applying a
 * request at once agrees with applying its operations one by one (the engine batches runs of
 * operations for speed); and arbitrary operations never throw anything but a ScimError.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ScimError } from '../../../src/cloud/scim/errors.js';
import { applyPatch, parsePatchRequest, type PatchOperation } from '../../../src/cloud/scim/patch.js';
import { GROUP_TYPE, USER_TYPE } from '../../../src/cloud/scim/schema.js';
import { PATCH_OP } from './helpers.js';

const SEED = Number(process.env.IDSYNC_PROPERTY_SEED ?? 20261206);
const RUNS = Number(process.env.IDSYNC_PROPERTY_RUNS ?? 300);

type Email = { value: string; type?: string; primary?: boolean };

// Few distinct addresses and types, so that operations collide (duplicates, case-insensitive matches).
const address = fc.constantFrom('a@x.example', 'A@x.example', 'b@x.example', 'c@y.example', 'd@y.example');
const type = fc.constantFrom('work', 'home', 'other');
const email = fc.record({ value: address, type, primary: fc.boolean() }, { requiredKeys: ['value'] }).map((e) => {
  // Canonical order (value, type, primary), as the validator writes it.
  const out: Email = { value: e.value };
  if (e.type !== undefined) out.type = e.type;
  if (e.primary !== undefined) out.primary = e.primary;
  return out;
});
/** At most one primary per operation (the validator refuses two in one value). */
const emailList = fc.array(email, { minLength: 1, maxLength: 4 }).map((l) => {
  let seen = false;
  return l.map((e) => {
    if (e.primary && seen) return { ...e, primary: false };
    if (e.primary) seen = true;
    return e;
  });
});

const emailOp: fc.Arbitrary<PatchOperation> = fc.oneof(
  { weight: 5, arbitrary: emailList.map((value): PatchOperation => ({ op: 'add', path: 'emails', value })) },
  { weight: 2, arbitrary: fc.array(address, { minLength: 1, maxLength: 2 }).map((v): PatchOperation => ({ op: 'remove', path: 'emails', value: v.map((value) => ({ value })) })) },
  { weight: 2, arbitrary: type.map((t): PatchOperation => ({ op: 'remove', path: 'emails', value: [{ type: t }] })) },
  { weight: 2, arbitrary: type.map((t): PatchOperation => ({ op: 'remove', path: `emails[type eq "${t.toUpperCase()}"]` })) },
  { weight: 1, arbitrary: fc.constant<PatchOperation>({ op: 'remove', path: 'emails' }) },
  { weight: 1, arbitrary: emailList.map((value): PatchOperation => ({ op: 'replace', path: 'emails', value })) },
);

/** The reference: RFC 7644 §3.5.2 as documented in docs/cloud-directory.md, one operation at a time, no indexes. */
function reference(start: Email[], ops: PatchOperation[]): Email[] {
  let list = start.map((e) => ({ ...e }));
  const lc = (s: string | undefined) => s?.toLowerCase();
  for (const op of ops) {
    if (op.op === 'add') {
      for (const el of op.value as Email[]) {
        if (list.some((c) => JSON.stringify(c) === JSON.stringify(el))) continue;
        if (el.primary) list = list.map((c) => (c.primary ? { ...c, primary: false } : c));
        list.push(el);
      }
    } else if (op.op === 'replace') {
      list = (op.value as Email[]).map((e) => ({ ...e }));
    } else if (op.path === 'emails' && op.value === undefined) {
      list = [];
    } else if (op.path!.startsWith('emails[')) {
      const t = /"(\w+)"/.exec(op.path!)![1]!;
      list = list.filter((c) => lc(c.type) !== lc(t));
    } else {
      const items = op.value as { value?: string; type?: string }[];
      list = list.filter((c) => !items.some((i) => (i.value !== undefined ? lc(i.value) === lc(c.value) : lc(i.type) === lc(c.type))));
    }
  }
  return list;
}

const memberId = fc.constantFrom('u1', 'u2', 'u3', 'g1', 'U1');
const memberOp: fc.Arbitrary<PatchOperation> = fc.oneof(
  fc.array(memberId, { minLength: 1, maxLength: 3 }).map((ids): PatchOperation => ({ op: 'add', path: 'members', value: ids.map((value) => ({ value })) })),
  fc.array(memberId, { minLength: 1, maxLength: 3 }).map((ids): PatchOperation => ({ op: 'remove', path: 'members', value: ids.map((value) => ({ value })) })),
  memberId.map((id): PatchOperation => ({ op: 'remove', path: `members[value eq "${id}"]` })),
  memberId.map((id): PatchOperation => ({ op: 'remove', path: `members[value eq "${id}" or display pr]` })),
  fc.array(memberId, { maxLength: 3 }).map((ids): PatchOperation => ({ op: 'replace', path: 'members', value: ids.map((value) => ({ value })) })),
  memberId.map((id): PatchOperation => ({ op: 'add', value: { members: [{ value: id }] } })),
);

describe('PATCH engine properties', () => {
  test('emails: applyPatch agrees with a naive reference', () => {
    fc.assert(
      fc.property(fc.array(email, { maxLength: 3 }).map((l) => l.map((e) => ({ ...e, primary: false }))), fc.array(emailOp, { minLength: 1, maxLength: 12 }), (start, ops) => {
        const dedup = start.filter((e, i) => start.findIndex((x) => JSON.stringify(x) === JSON.stringify(e)) === i);
        const doc = dedup.length ? { userName: 'p', emails: dedup } : { userName: 'p' };
        const got = (applyPatch(USER_TYPE, doc, ops).emails as Email[] | undefined) ?? [];
        assert.deepEqual(got, reference(dedup, ops));
      }),
      { seed: SEED, numRuns: RUNS * 3 },
    );
  });

  test('applying a request at once equals applying its operations one by one', () => {
    const cases = fc.oneof(
      fc.tuple(fc.constant('user' as const), fc.array(emailOp, { minLength: 1, maxLength: 15 })),
      fc.tuple(fc.constant('group' as const), fc.array(memberOp, { minLength: 1, maxLength: 15 })),
    );
    fc.assert(
      fc.property(cases, ([kind, ops]) => {
        const rt = kind === 'user' ? USER_TYPE : GROUP_TYPE;
        const doc = kind === 'user' ? { userName: 'p', emails: [{ value: 'a@x.example', type: 'work' }] } : { displayName: 'g', members: [{ value: 'u1' }] };
        const attempt = (f: () => unknown): unknown => {
          try {
            return f();
          } catch (err) {
            assert.ok(err instanceof ScimError, String(err));
            return `error ${err.status} ${err.scimType}`;
          }
        };
        const atOnce = attempt(() => applyPatch(rt, doc, ops));
        const oneByOne = attempt(() => ops.reduce((d, op) => applyPatch(rt, d, [op]), doc as Record<string, unknown>));
        assert.deepEqual(atOnce, oneByOne);
      }),
      { seed: SEED, numRuns: RUNS * 3 },
    );
  });

  test('arbitrary operations are applied or refused with a ScimError, never another error', () => {
    const paths = fc.oneof(
      fc.constantFrom('emails', 'members', 'title', 'name', 'name.givenName', 'emails[type eq "work"]', 'emails[type eq "work"].value', 'emails.value', 'active', 'groups', 'id', 'meta'),
      fc.constantFrom('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager', 'x[', 'emails[', '[]', '.', ''),
      fc.string({ maxLength: 20 }),
    );
    const rawOp = fc.record(
      { op: fc.oneof(fc.constantFrom('add', 'remove', 'replace', 'Add', 'REPLACE'), fc.anything()), path: fc.oneof(paths, fc.anything()), value: fc.anything({ maxDepth: 3 }) },
      { requiredKeys: ['op'] },
    );
    const body = fc.oneof(
      fc.record({ schemas: fc.constant([PATCH_OP]), Operations: fc.array(rawOp, { maxLength: 5 }) }),
      fc.anything({ maxDepth: 3 }),
    );
    fc.assert(
      fc.property(body, fc.boolean(), (b, group) => {
        try {
          const ops = parsePatchRequest(b);
          const rt = group ? GROUP_TYPE : USER_TYPE;
          applyPatch(rt, group ? { displayName: 'g' } : { userName: 'p', emails: [{ value: 'a@x.example', type: 'work' }] }, ops);
        } catch (err) {
          assert.ok(err instanceof ScimError, `not a ScimError: ${String(err)}`);
          assert.ok(err.status === 400 || err.status === 413, String(err.status));
        }
      }),
      { seed: SEED, numRuns: RUNS * 10 },
    );
  });
});
