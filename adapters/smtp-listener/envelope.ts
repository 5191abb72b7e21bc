/**
 * MAIL FROM / RCPT TO as the SMTP-in port wants them, from what smtp-server parsed and the
 * raw command line. Pure.
 *
 * smtp-server's own `address` is not used: it rewrites an A-label domain to Unicode
 * (punycode.toUnicode), so "a@xn--bcher-kva.example" would reach the handler as
 * "a@bücher.example" and look non-ASCII. The path is taken from the raw line instead, cut
 * the way smtp-server cut it (first ":" then the first blank-separated token, `<…>`), so it
 * is the same token smtp-server validated. Parameters come from smtp-server's `args`: keys
 * upper-cased, values already xtext-decoded (RFC 3461 §4: "+" and two upper-case hex
 * digits), bare keywords as `true`; smtp-server has checked SIZE, BODY, SMTPUTF8, RET and
 * NOTIFY values and the ORCPT shape before the adapter sees them.
 */
import type { ErrorCode } from '../../src/core/errors/index.ts';
import type { MailFrom, RcptTo, SmtpReply } from '../../src/gateway/ports.ts';

export type SmtpArgs = Readonly<Record<string, string | true>> | false | undefined;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The command line as text, or `undefined` when it is not UTF-8 (RFC 6531 needs UTF-8). */
export function lineText(raw: Uint8Array): string | undefined {
  try {
    return utf8.decode(raw);
  } catch {
    return undefined;
  }
}

/** The path of a MAIL FROM / RCPT TO line, without angle brackets and source route. */
export function pathOf(line: string): string | undefined {
  const colon = line.indexOf(':');
  if (colon < 0) return undefined;
  const token =
    line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)[0] ?? '';
  const m = /^<([^<>]*)>$/.exec(token);
  if (m === null) return undefined;
  // RFC 5321 §4.1.2 / appendix C: a source route "MUST be accepted" and "SHOULD be ignored";
  // smtp-server strips it the same way.
  return m[1]!.replace(/^@[^\s,:@]+(?:,@[^\s,:@]+)*:/, '');
}

/** RFC 6531 §3.4: without SMTPUTF8 on MAIL, every address of the transaction is ASCII. */
export function isAscii(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(s);
}

const str = (args: SmtpArgs, key: string): string | undefined => {
  const v = args === false || args === undefined ? undefined : args[key];
  return typeof v === 'string' ? v : undefined;
};

export function mailFromOf(address: string, args: SmtpArgs): MailFrom {
  const size = str(args, 'SIZE');
  const body = str(args, 'BODY')?.toUpperCase();
  const ret = str(args, 'RET')?.toUpperCase();
  const envid = str(args, 'ENVID');
  return {
    address,
    ...(size === undefined ? {} : { size: Number(size) }),
    ...(body === '7BIT' || body === '8BITMIME' ? { body } : {}),
    smtputf8: args !== false && args !== undefined && args.SMTPUTF8 === true,
    ...(ret === 'FULL' || ret === 'HDRS' ? { ret } : {}),
    ...(envid === undefined ? {} : { envid }),
  };
}

export function rcptToOf(address: string, args: SmtpArgs): RcptTo {
  const notify = str(args, 'NOTIFY');
  const orcpt = str(args, 'ORCPT');
  // RFC 3461 §4.2: ORCPT=addr-type ";" xtext; the type never holds ";", so the first one
  // separates (the address may hold an xtext-encoded ";").
  const semi = orcpt?.indexOf(';') ?? -1;
  return {
    address,
    ...(notify === undefined ? {} : { notify }),
    ...(orcpt === undefined || semi < 1
      ? {}
      : { orcpt: { type: orcpt.slice(0, semi), address: orcpt.slice(semi + 1) } }),
  };
}

/**
 * A reply's text as the listener sends it after the code: "enhanced text # NMTP_ERR_…".
 * The catalog code goes last behind " # ", as in NMTP replies (§60.6: what follows "#" is
 * for people), so a sender's log line names it.
 */
export function replyText(r: SmtpReply): string {
  const text = r.text === '' ? '' : ` ${r.text}`;
  return `${r.enhanced}${text}${r.err === undefined ? '' : ` # ${r.err}`}`;
}

export const reply = (code: number, enhanced: string, text: string, err?: ErrorCode): SmtpReply =>
  err === undefined ? { code, enhanced, text } : { code, enhanced, text, err };

/** A reply text that already starts with an enhanced code (RFC 3463 class.subject.detail). */
export const ENHANCED_PREFIX = /^[245]\.\d{1,3}\.\d{1,3}(?: |$)/;

/** Splits "enhanced text # CODE" back into its parts (for events). */
export function splitReplyText(
  data: string,
): { enhanced: string; text: string; err?: ErrorCode } | undefined {
  const m = /^([245]\.\d{1,3}\.\d{1,3}) ?(.*?)(?: # (NMTP_ERR_[A-Z0-9_]+))?$/.exec(data);
  if (m === null) return undefined;
  const err = m[3] as ErrorCode | undefined;
  return err === undefined
    ? { enhanced: m[1]!, text: m[2]! }
    : { enhanced: m[1]!, text: m[2]!, err };
}
