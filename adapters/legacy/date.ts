/**
 * Date: RFC 3339 (NMTP, docs/protocol.md §10.5.4) → RFC 5322 §3.3 date-time.
 */
import { parseDate } from '../../src/core/frame/index.ts';

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const MONTHS = [
  'Jan',
  'Feb',
  'Mar',
  'Apr',
  'May',
  'Jun',
  'Jul',
  'Aug',
  'Sep',
  'Oct',
  'Nov',
  'Dec',
] as const;

/**
 * "The Date is written in the writer's own offset as an RFC 5322 date-time; an unknown
 * offset (-00:00) becomes -0000; fractions of a second are dropped." (§51.4.2) RFC 5322 §3.3
 * gives -0000 the same meaning as RFC 3339's -00:00 (local offset unknown).
 */
export function toLegacyDate(value: string): string {
  const { epochMs, offsetMinutes } = parseDate(value);
  const off = offsetMinutes ?? 0;
  // Whole seconds: RFC 5322 has no fractions; floor keeps the printed second of the input.
  const local = new Date(Math.floor((epochMs + off * 60_000) / 1000) * 1000);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const sign = offsetMinutes === null || offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(off);
  return (
    `${DAYS[local.getUTCDay()]!}, ${local.getUTCDate()} ${MONTHS[local.getUTCMonth()]!} ` +
    `${p(local.getUTCFullYear(), 4)} ${p(local.getUTCHours())}:${p(local.getUTCMinutes())}:` +
    `${p(local.getUTCSeconds())} ${sign}${p(Math.floor(abs / 60))}${p(abs % 60)}`
  );
}
