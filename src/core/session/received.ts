/**
 * The `Received` trace field (docs/protocol.md §60.8.4): what a receiving server records
 * on each recipient's copy of a message — who it was for, when it arrived, and the
 * client identification with the reputation hook's verdict (§60.8.3). Pure: printing and
 * parsing only; the mailbox inserts it (appendTraceField / traceInsertion).
 */
import { NmtpError } from '../errors/index.ts';
import { checkFieldValue, formatDate, parseDate } from '../frame/index.ts';
import type { CsvResult } from './csv.ts';
import type { ProofResult } from './transfer-server.ts';

export const RECEIVED_FIELD = 'Received';

export interface ReceivedRecord {
  /** The recipient this copy is for (canonical address). */
  readonly rcpt: string;
  /** Unix seconds when the message was received. */
  readonly at: number;
  /** The client's domain, address and identification results (§60.8). */
  readonly domain: string;
  readonly ip: string;
  readonly proof: ProofResult;
  readonly csv: CsvResult;
  readonly verdict?: 'good' | 'neutral' | 'bad';
  readonly note?: string;
}

const PROOFS: readonly string[] = ['pass', 'fail', 'temperror'];
const CSVS: readonly string[] = ['pass', 'fail', 'none', 'temperror', 'permerror'];
const VERDICTS: readonly string[] = ['good', 'neutral', 'bad'];
/** "note= … at most 200 characters" (§60.8.4): a hook's note is for people, not a payload. */
export const NOTE_MAX = 200;
/** Values other than the note are single words: no SP, no control character. */
const WORD_RE = /^[^\s\p{Cc}]+$/u;
const AT_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

/**
 * A reputation note as the field can carry it: control characters become SP, the text is
 * NFC, trimmed, and cut to NOTE_MAX code points; empty means "no note".
 */
export function cleanNote(note: string): string {
  // eslint-disable-next-line no-control-regex
  const flat = note.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').normalize('NFC');
  return [...flat.trim()].slice(0, NOTE_MAX).join('').trim();
}

/** The field value, parameters in the order of §60.8.4. */
export function formatReceived(r: ReceivedRecord): string {
  // "ip= … `unknown` when the receiver has no address for the client" (§60.8.4).
  const ip = r.ip === '' ? 'unknown' : r.ip;
  for (const [name, v] of [
    ['for', r.rcpt],
    ['domain', r.domain],
    ['ip', ip],
  ] as const) {
    if (!WORD_RE.test(v)) throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', `Received ${name}=`);
  }
  let value =
    `for=${r.rcpt}; at=${formatDate(r.at * 1000)}; domain=${r.domain}; ip=${ip}` +
    `; proof=${r.proof}; csv=${r.csv}`;
  if (r.verdict !== undefined) value += `; verdict=${r.verdict}`;
  const note = r.note === undefined ? '' : cleanNote(r.note);
  if (note.length > 0) value += `; note=${note}`;
  const bad = checkFieldValue(value);
  if (bad !== undefined) throw new NmtpError(bad, 'Received field value');
  return value;
}

const malformed = (why: string): NmtpError =>
  new NmtpError('NMTP_ERR_FRAME_FIELD_SYNTAX', `Received: ${why}`);

/**
 * Parses a field value. Every parameter but `note` is one word (no SP), so each ends at
 * the next "; "; `note`, always last, runs to the end of the value (§60.8.4).
 */
export function parseReceived(value: string): ReceivedRecord {
  const out: Record<string, string> = {};
  let rest = value;
  for (const name of ['for', 'at', 'domain', 'ip', 'proof', 'csv', 'verdict', 'note']) {
    if (!rest.startsWith(`${name}=`)) {
      if (name === 'verdict' || name === 'note') continue;
      throw malformed(`expected ${name}=`);
    }
    rest = rest.slice(name.length + 1);
    const end = name === 'note' ? -1 : rest.indexOf('; ');
    const v = end < 0 ? rest : rest.slice(0, end);
    rest = end < 0 ? '' : rest.slice(end + 2);
    if (name !== 'note' && !WORD_RE.test(v)) throw malformed(`bad ${name}=`);
    out[name] = v;
  }
  if (rest.length > 0) throw malformed('unexpected text after the parameters');
  // "at= … in UTC ("Z"), whole seconds" (§60.8.4): one spelling per instant.
  if (!AT_RE.test(out.at ?? '')) throw malformed('at= is not YYYY-MM-DDThh:mm:ssZ');
  const at = parseDate(out.at!).epochMs;
  if (!PROOFS.includes(out.proof ?? '')) throw malformed('bad proof=');
  if (!CSVS.includes(out.csv ?? '')) throw malformed('bad csv=');
  if (out.verdict !== undefined && !VERDICTS.includes(out.verdict)) throw malformed('bad verdict=');
  if (out.note !== undefined && (out.note.length === 0 || out.note !== cleanNote(out.note))) {
    throw malformed('bad note=');
  }
  return {
    rcpt: out.for!,
    at: at / 1000,
    domain: out.domain!,
    ip: out.ip!,
    proof: out.proof as ProofResult,
    csv: out.csv as CsvResult,
    ...(out.verdict === undefined ? {} : { verdict: out.verdict as ReceivedRecord['verdict'] }),
    ...(out.note === undefined ? {} : { note: out.note }),
  };
}
