/**
 * The rule for control characters in attribute values read from a source (documented in
 * docs/sync-rules.md, "Values idsync cleans"): NUL and the other C0 controls and DEL are removed
 * before anything is staged — they break SCIM consumers, terminals and logs, and no directory
 * attribute idsync exports means anything by them. Tab, line feed and carriage return are kept
 * (multi-line addresses and descriptions use them). Each removal is counted for event 6006.
 */

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g;
// eslint-disable-next-line no-control-regex
const HAS_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/** A value without the control characters the rule removes. */
export function stripControlCharacters(value: string): string {
  return HAS_CONTROL.test(value) ? value.replace(CONTROL, '') : value;
}

function hasControl(list: string[]): boolean {
  for (let i = 0; i < list.length; i++) if (HAS_CONTROL.test(list[i]!)) return true;
  return false;
}

/**
 * Applies the rule to every value of an object's attributes, in place: a value left empty is
 * dropped, and an attribute left without values too. Returns how many values changed and the
 * first attribute that did (undefined when none).
 */
export function cleanAttributeValues(attributes: Record<string, string[]>): { values: number; first?: string } {
  let values = 0;
  let first: string | undefined;
  for (const key in attributes) {
    const list = attributes[key]!;
    if (!hasControl(list)) continue;
    const cleaned: string[] = [];
    for (const v of list) {
      if (!HAS_CONTROL.test(v)) {
        cleaned.push(v);
        continue;
      }
      values++;
      first ??= key;
      const c = v.replace(CONTROL, '');
      if (c !== '') cleaned.push(c);
    }
    if (cleaned.length > 0) attributes[key] = cleaned;
    else delete attributes[key];
  }
  return first === undefined ? { values } : { values, first };
}
