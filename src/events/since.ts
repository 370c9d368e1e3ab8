/**
 * Parsing of `--since`: a duration back from now (`30s`, `30m`, `2h`, `7d`, `1w`) or an ISO 8601
 * date/time (`2026-05-01`, `2026-05-01T08:00`, `2026-05-01T08:00:00Z`, with an offset or not; a time
 * without a zone is local time, as `date` prints it).
 */
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

const DURATION = /^(\d{1,9})\s*([smhdw])$/i;
const ISO = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

export const SINCE_USAGE = 'expected a duration such as 30m, 2h or 7d, or an ISO 8601 time such as 2026-05-01T08:00:00Z';

/** The instant `text` denotes, or undefined when it is neither a duration nor an ISO date/time. */
export function parseSince(text: string, now: Date = new Date()): Date | undefined {
  const t = text.trim();
  const d = DURATION.exec(t);
  if (d) return new Date(now.getTime() - Number(d[1]) * UNIT_MS[d[2]!.toLowerCase()]!);
  if (!ISO.test(t)) return undefined;
  // A date alone is local midnight (Date.parse would read it as UTC midnight).
  const normalised = /^\d{4}-\d{2}-\d{2}$/.test(t) ? `${t}T00:00` : t.replace(' ', 'T');
  const ms = Date.parse(normalised);
  if (Number.isNaN(ms)) return undefined;
  // Reject dates that Date normalises (2026-02-31 → March 3).
  const [y, mo, day] = t.slice(0, 10).split('-').map(Number) as [number, number, number];
  const check = new Date(y, mo - 1, day);
  if (check.getFullYear() !== y || check.getMonth() !== mo - 1 || check.getDate() !== day) return undefined;
  return new Date(ms);
}
