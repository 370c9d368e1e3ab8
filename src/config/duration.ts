/** Durations as the configuration and the command line write them. */
import { IdsyncError } from '../core/errors.js';

/** "90s", "5m", "1h", "1h30m" or a bare number of seconds → milliseconds. */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  const re = /(\d+)(ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    const n = Number(m[1]);
    total += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000;
    matched = re.lastIndex;
  }
  if (matched === 0 || matched !== t.length) {
    throw new IdsyncError('CONFIG_INVALID', `"${text}" is not a duration`, { hint: 'Use e.g. 30s, 5m, 1h or 1h30m.' });
  }
  return total;
}
