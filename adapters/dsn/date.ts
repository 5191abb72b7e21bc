/**
 * RFC 5322 date-time for DSN fields (Date, Arrival-Date, Last-Attempt-Date,
 * Will-Retry-Until): RFC 3464 §2.2.5 "arrival-date-field = "Arrival-Date" ":" date-time",
 * with date-time as in RFC 5322 §3.3.
 */

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number): string => String(n).padStart(2, '0');

/** Always UTC ("+0000"): the gateway's reports do not leak its local time zone. */
export function formatRfc5322Date(d: Date): string {
  return (
    `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`
  );
}

// RFC 5322 §4.3 obsolete zones; anything else alphabetic is "-0000" (unknown) per §4.3.
const ZONES: Record<string, number> = {
  UT: 0,
  GMT: 0,
  Z: 0,
  EST: -5 * 60,
  EDT: -4 * 60,
  CST: -6 * 60,
  CDT: -5 * 60,
  MST: -7 * 60,
  MDT: -6 * 60,
  PST: -8 * 60,
  PDT: -7 * 60,
};

const DATE =
  /^\s*(?:[A-Za-z]{3},?\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{2,4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([+-]\d{4}|[A-Za-z]{1,5})?/;

/**
 * Tolerant parser: day name optional, seconds optional, two-digit years (RFC 5322 §4.3:
 * 00-49 → 20xx, 50-99 → 19xx), obsolete zone names, trailing comments such as "(PST)".
 * Returns undefined when the text is not a date (the caller records a warning).
 */
export function parseRfc5322Date(text: string): Date | undefined {
  const m = DATE.exec(text);
  if (!m) return undefined;
  const month = MONTHS.findIndex((x) => x.toLowerCase() === m[2]!.toLowerCase());
  if (month < 0) return undefined;
  let year = Number(m[3]);
  if (m[3]!.length === 2) year += year < 50 ? 2000 : 1900;
  else if (m[3]!.length === 3) year += 1900;
  const zone = m[7];
  let offset = 0;
  if (zone !== undefined && /^[+-]\d{4}$/.test(zone)) {
    const sign = zone[0] === '-' ? -1 : 1;
    offset = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5)));
  } else if (zone !== undefined) {
    offset = ZONES[zone.toUpperCase()] ?? 0;
  }
  const [h, min, s] = [Number(m[4]), Number(m[5]), Number(m[6] ?? 0)];
  if (h > 23 || min > 59 || s > 60 || Number(m[1]) > 31) return undefined;
  const utc = Date.UTC(year, month, Number(m[1]), h, min, s) - offset * 60_000;
  return Number.isNaN(utc) ? undefined : new Date(utc);
}
