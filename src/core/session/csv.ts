/**
 * CSV-style client authorisation (docs/protocol.md §60.8.2): a domain lists
 * the addresses its transfer clients connect from in one TXT record at
 * `_nmtpclient.<domain>`:
 *
 *     v=NMTPCSV1; ip=192.0.2.0/24,198.51.100.7,2001:db8::/32
 *
 * The lookup happens outside core (the reducer asks for it); this module evaluates the
 * answer against the connecting address.
 */
import type { TxtAnswer } from '../keys/index.ts';

export type CsvResult = 'pass' | 'fail' | 'none' | 'temperror' | 'permerror';

export function csvName(domain: string): string {
  return `_nmtpclient.${domain}`;
}

/** Parses dotted-quad IPv4 or RFC 4291 §2.2 IPv6 text (no zone) into octets. */
export function parseIp(text: string): Uint8Array | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) {
    const parts = text.split('.').map(Number);
    // No leading zeros (RFC 6943 §3.1.1: they are read as octal by some parsers).
    if (text.split('.').some((p) => p.length > 1 && p.startsWith('0'))) return undefined;
    return parts.every((n) => n <= 255) ? new Uint8Array(parts) : undefined;
  }
  if (!/^[0-9a-fA-F:]+$/.test(text) && !/^[0-9a-fA-F:]+:\d+\.\d+\.\d+\.\d+$/.test(text)) {
    return undefined;
  }
  let head = text;
  let tail4: Uint8Array | undefined;
  const dot = text.lastIndexOf(':');
  if (text.includes('.')) {
    tail4 = parseIp(text.slice(dot + 1));
    if (tail4 === undefined || tail4.length !== 4) return undefined;
    head = text.slice(0, dot + 1) + '0:0'; // placeholder groups, replaced below
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const left = groups(halves[0]!);
  const right = halves.length === 2 ? groups(halves[1]!) : [];
  const total = left.length + right.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const all = [...left, ...Array<string>(8 - total).fill('0'), ...right];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = all[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    const n = parseInt(g, 16);
    out[2 * i] = n >> 8;
    out[2 * i + 1] = n & 0xff;
  }
  if (tail4) out.set(tail4, 12);
  return out;
}

function inPrefix(ip: Uint8Array, net: Uint8Array, bits: number): boolean {
  if (ip.length !== net.length) return false;
  for (let i = 0; i < bits; i++) {
    const mask = 0x80 >> (i % 8);
    if ((ip[i >> 3]! & mask) !== (net[i >> 3]! & mask)) return false;
  }
  return true;
}

/**
 * "csv-record = %s"v=NMTPCSV1" "; " %s"ip=" prefix *( "," prefix )"; prefix = address
 * ["/" length]. Returns the prefixes, or undefined when the record is malformed.
 */
export function parseCsvRecord(text: string): { net: Uint8Array; bits: number }[] | undefined {
  const m = /^v=NMTPCSV1; ip=([^ ;]+)$/.exec(text);
  if (m === null) return undefined;
  const out: { net: Uint8Array; bits: number }[] = [];
  for (const item of m[1]!.split(',')) {
    const [addr, len, ...extra] = item.split('/');
    if (extra.length > 0 || addr === undefined) return undefined;
    const net = parseIp(addr);
    if (net === undefined) return undefined;
    const max = net.length * 8;
    if (len !== undefined && !/^(0|[1-9][0-9]{0,2})$/.test(len)) return undefined;
    const bits = len === undefined ? max : Number(len);
    if (bits > max) return undefined;
    out.push({ net, bits });
  }
  return out;
}

/**
 * Evaluates a TXT answer for `_nmtpclient.<domain>` against the client address (§60.8.2):
 * no record → none; DNS failure → temperror; more than one NMTPCSV1 record or a
 * malformed one → permerror; address inside a listed prefix → pass; else fail.
 */
export function evaluateCsv(answer: TxtAnswer, clientIp: string): CsvResult {
  if (answer.status === 'temperror') return 'temperror';
  if (answer.status === 'nxdomain') return 'none';
  const ours = answer.records.map((r) => r.join('')).filter((t) => /^v=NMTPCSV1(;|$)/.test(t));
  if (ours.length === 0) return 'none';
  if (ours.length > 1) return 'permerror';
  const prefixes = parseCsvRecord(ours[0]!);
  const ip = parseIp(clientIp);
  if (prefixes === undefined) return 'permerror';
  if (ip === undefined) return 'fail';
  // An IPv4-mapped IPv6 client (::ffff:a.b.c.d) is compared as IPv4.
  const v4mapped =
    ip.length === 16 && ip.subarray(0, 12).every((b, i) => b === (i >= 10 ? 0xff : 0))
      ? ip.subarray(12)
      : undefined;
  return prefixes.some(
    (p) => inPrefix(ip, p.net, p.bits) || (v4mapped && inPrefix(v4mapped, p.net, p.bits)),
  )
    ? 'pass'
    : 'fail';
}
