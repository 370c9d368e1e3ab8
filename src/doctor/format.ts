/** Human output of the doctor: one line per finding, problems with event ID, cause and fix. */
import type { Finding } from './types.js';

/** "3 min", "2.5 h", "4 days". */
export function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.round(s / 360) / 10} h`;
  return `${Math.round(s / 8640) / 10} days`;
}

const MARK = { ok: '✓', warning: '!', error: '✗' } as const;

export function formatFindings(findings: Finding[]): string {
  const lines: string[] = [];
  for (const f of findings) {
    lines.push(`${MARK[f.status]} ${f.check.padEnd(18)} ${f.message}`);
    if (f.status === 'ok') continue;
    if (f.eventId !== undefined) lines.push(`    event: ${f.eventId}`);
    if (f.cause) lines.push(`    cause: ${f.cause}`);
    if (f.fix) lines.push(`    fix:   ${f.fix}`);
  }
  const errors = findings.filter((f) => f.status === 'error').length;
  const warnings = findings.filter((f) => f.status === 'warning').length;
  lines.push('');
  lines.push(errors + warnings === 0 ? `all ${findings.length} checks passed` : `${errors} error(s), ${warnings} warning(s) in ${findings.length} checks`);
  return lines.join('\n');
}
