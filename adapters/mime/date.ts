/**
 * RFC 5322 §3.3 date-time → framed Date (RFC 3339), spec §50.3.5. Obsolete forms (RFC 5322 §4.3:
 * two-digit years, alphabetic zones, missing seconds, comments) are accepted because
 * real mail is full of them.
 */
import { formatDate } from '../../src/core/frame/index.ts';

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
/** RFC 5322 §4.3 obs-zone; military zones other than Z "SHOULD all be considered
 * equivalent to '-0000'" (their sign was historically reversed). */
const ZONES: Record<string, number> = {
  ut: 0,
  gmt: 0,
  z: 0,
  est: -300,
  edt: -240,
  cst: -360,
  cdt: -300,
  mst: -420,
  mdt: -360,
  pst: -480,
  pdt: -420,
};

const DATE =
  /^\s*(?:[a-z]{3},?\s*)?(\d{1,2})\s+([a-z]{3})[a-z]*\s+(\d{2,4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([+-]\d{4}|[a-z]{1,5})?\s*$/i;

/** The framed Date value, or undefined when the text is not an RFC 5322 date. */
export function legacyDateToFramed(value: string): string | undefined {
  const text = value.replace(/\([^()]*\)/g, ' ');
  const m = DATE.exec(text);
  if (m === null) return undefined;
  const day = Number(m[1]);
  const month = MONTHS.indexOf(m[2]!.toLowerCase());
  let year = Number(m[3]);
  // RFC 5322 §4.3: two-digit years: 00-49 → 2000-2049, 50-99 → 1950-1999; three → +1900.
  if (m[3]!.length === 2) year += year < 50 ? 2000 : 1900;
  else if (m[3]!.length === 3) year += 1900;
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  if (month < 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return undefined;
  let offset: number | null;
  const zone = m[7];
  if (zone === undefined) offset = null;
  else if (/^[+-]\d{4}$/.test(zone)) {
    const mins = Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3));
    if (Number(zone.slice(3)) > 59 || Number(zone.slice(1, 3)) > 23) return undefined;
    // RFC 5322 §3.3: "-0000" means the time is in UTC but the zone is unknown.
    offset = zone === '-0000' ? null : zone.startsWith('-') ? -mins : mins;
  } else {
    offset = ZONES[zone.toLowerCase()] ?? null;
  }
  const utc = Date.UTC(year, month, day, hour, minute, Math.min(second, 59));
  const check = new Date(Date.UTC(year, month, day));
  if (check.getUTCDate() !== day) return undefined; // 31 Feb and the like
  try {
    return formatDate(utc - (offset ?? 0) * 60_000, offset);
  } catch {
    return undefined;
  }
}
