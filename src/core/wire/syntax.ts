/**
 * NMTP/1 command and reply lines: the data model, the per-verb table, and the parsers and
 * printers for one line (docs/protocol.md §60.3–§60.6). Lines here are
 * strings without their CRLF; the incremental codec (codec.ts) finds lines and chunks in
 * the byte stream and hands each line to these functions.
 *
 * Everything has exactly one printed form, so print(parse(line)) === line for every line
 * the parser accepts and parse(print(value)) deep-equals value: vectors compare bytes.
 */
import { NmtpError } from '../errors/index.ts';

/** The services a verb belongs to (§60.2). */
export type Service = 'transfer' | 'submission';

export type Verb =
  | 'HELLO'
  | 'RCPT'
  | 'DATA'
  | 'STATUS'
  | 'GIVEUP'
  | 'RSET'
  | 'NOOP'
  | 'QUIT'
  | 'AUTH'
  | 'SEND'
  | 'SIGN'
  | 'CERTIFY'
  | 'PROVE';

/** A parsed command: positional arguments, then named parameters in table order. */
export interface Command {
  readonly verb: Verb;
  readonly args: readonly string[];
  readonly params: Readonly<Record<string, string>>;
}

export interface Reply {
  /** Three digits, 200–599 (§60.6). */
  readonly code: number;
  /** RFC 3463 enhanced status code `class.subject.detail`. */
  readonly enhanced: string;
  /** Named parameters in the order written (insertion order of the record). */
  readonly params: Readonly<Record<string, string>>;
  /** Free text for people; '' when absent. Never parsed by software. */
  readonly text: string;
}

interface VerbSpec {
  readonly services: readonly Service[];
  /**
   * Number of positional arguments, given the words after the verb (AUTH's depends on its
   * mechanism). Arguments are taken by count, not by shape: an address may contain "=".
   */
  readonly arity: (rest: readonly string[]) => number | undefined;
  /** Parameters in the one order they must be written; `true` = required. */
  readonly params: readonly (readonly [name: string, required: boolean])[];
  /** "Every command has a size limit" (§60.4 table): octets of the line including CRLF. */
  readonly maxLine: number;
}

const exactly = (n: number) => (): number => n;

/** The verb table of §60.4. One row per verb; the codec and the reducers both read it. */
export const VERBS: Readonly<Record<Verb, VerbSpec>> = {
  HELLO: {
    services: ['transfer'],
    arity: exactly(1),
    params: [
      ['sel', true],
      ['proof', true],
    ],
    maxLine: 512,
  },
  // `redirect=failed`: "the sender followed a 351 this server gave for this recipient and
  // could not deliver there" (§60.10.2); transfer only, the reducer refuses it elsewhere.
  RCPT: {
    services: ['transfer', 'submission'],
    arity: exactly(1),
    params: [['redirect', false]],
    maxLine: 1024,
  },
  DATA: {
    services: ['transfer'],
    arity: exactly(0),
    params: [
      ['size', true],
      ['digest', true],
      ['signers', false],
      ['cookie', false],
      // "send=full: the client sends the full view right behind this command, without
      // waiting for the 354" (§60.10.4, eager data).
      ['send', false],
    ],
    maxLine: 2048,
  },
  STATUS: { services: ['transfer', 'submission'], arity: exactly(1), params: [], maxLine: 256 },
  GIVEUP: { services: ['transfer'], arity: exactly(1), params: [], maxLine: 256 },
  RSET: { services: ['transfer', 'submission'], arity: exactly(0), params: [], maxLine: 16 },
  NOOP: { services: ['transfer', 'submission'], arity: exactly(0), params: [], maxLine: 16 },
  QUIT: { services: ['transfer', 'submission'], arity: exactly(0), params: [], maxLine: 16 },
  AUTH: {
    services: ['submission'],
    // AUTH PLAIN <credentials> | AUTH KEY <user> <public-key> <signature>
    arity: (rest) => (rest[0] === 'PLAIN' ? 2 : rest[0] === 'KEY' ? 4 : undefined),
    params: [],
    maxLine: 1024,
  },
  SEND: { services: ['submission'], arity: exactly(0), params: [['size', true]], maxLine: 64 },
  SIGN: { services: ['submission'], arity: exactly(0), params: [['size', true]], maxLine: 64 },
  CERTIFY: {
    services: ['submission'],
    arity: exactly(0),
    params: [
      ['key', true],
      ['days', false],
    ],
    maxLine: 128,
  },
  // PROVE <address> nonce=<b64url>: a redirect target proves the recipient's key (§60.10.8).
  PROVE: { services: ['transfer'], arity: exactly(1), params: [['nonce', true]], maxLine: 1024 },
};

export function isVerb(word: string): word is Verb {
  return Object.hasOwn(VERBS, word);
}

// --- tokens -------------------------------------------------------------------------------

/** "token = 1*tchar; tchar = any UTF-8 character except SP, controls (C0, DEL, C1)" (§60.3). */
// eslint-disable-next-line no-control-regex
const TOKEN_RE = /^[^\u0000-\u0020\u007f-\u009f]+$/u;
/** "param-name = %x61-7A *( %x61-7A / DIGIT / "-" )" */
const PARAM_NAME_RE = /^[a-z][a-z0-9-]*$/;
/** "text = *( SP / tchar )": no controls at all. */
// eslint-disable-next-line no-control-regex
const TEXT_RE = /^[^\u0000-\u001f\u007f-\u009f]*$/u;
/** "enhanced = class "." subject "." detail" (RFC 3463 §2, class 2/4/5). */
const ENHANCED_RE = /^[245]\.(?:0|[1-9][0-9]{0,2})\.(?:0|[1-9][0-9]{0,2})$/;
const CODE_RE = /^[2-5][0-9][0-9]$/;
/** Decimal without sign or leading zeros; at most 15 digits (< 2^53). */
export const DECIMAL_RE = /^(?:0|[1-9][0-9]{0,14})$/;

function syntax(why: string, offset: number): NmtpError {
  return new NmtpError('NMTP_ERR_WIRE_SYNTAX', why, { offset });
}

/** Splits `name=value`; undefined when the token is not a parameter. */
function splitParam(token: string): readonly [string, string] | undefined {
  const eq = token.indexOf('=');
  if (eq <= 0) return undefined;
  const name = token.slice(0, eq);
  const value = token.slice(eq + 1);
  if (!PARAM_NAME_RE.test(name) || value.length === 0) return undefined;
  return [name, value];
}

/** Single spaces only: "Words are separated by exactly one SP; no leading or trailing SP." */
function words(line: string, offset: number): string[] {
  if (line.length === 0) throw syntax('empty line', offset);
  const w = line.split(' ');
  if (w.some((x) => x.length === 0))
    throw syntax('empty word (double, leading or trailing SP)', offset);
  return w;
}

// --- commands -----------------------------------------------------------------------------

/** Commands this parser produced: well-formed by construction (`isWellFormedCommand`). */
const PARSED = new WeakSet<Command>();

/**
 * Parses one command line (without CRLF). `octets` is the line's length including CRLF, for
 * the per-verb size limit; `offset` is where the line starts in the stream (for errors).
 */
export function parseCommandLine(line: string, octets: number, offset: number): Command {
  // "A command line holding a control character anywhere — verb, argument or parameter —
  // is NMTP_ERR_WIRE_SYNTAX" (§60.3): one code, checked before the verb is looked up.
  if (!TEXT_RE.test(line)) throw syntax('control character in a command', offset);
  const w = words(line, offset);
  const verb = w[0]!;
  if (!isVerb(verb)) {
    throw new NmtpError(
      'NMTP_ERR_WIRE_UNKNOWN_COMMAND',
      `unknown verb ${JSON.stringify(verb.slice(0, 16))}`,
      { offset },
    );
  }
  const spec = VERBS[verb];
  if (octets > spec.maxLine) {
    throw new NmtpError(
      'NMTP_ERR_WIRE_COMMAND_TOO_LONG',
      `${verb} line of ${octets} octets > ${spec.maxLine}`,
      { offset },
    );
  }
  for (const t of w) if (!TOKEN_RE.test(t)) throw syntax('control character in a command', offset);
  // "A verb takes a fixed number of arguments, then its parameters" (§60.4).
  const k = spec.arity(w.slice(1));
  if (k === undefined || w.length < 1 + k) throw syntax(`wrong arguments for ${verb}`, offset);
  const args = w.slice(1, 1 + k);
  const n = 1 + k;
  const params: Record<string, string> = {};
  let order = 0;
  for (const token of w.slice(n)) {
    const p = splitParam(token);
    if (p === undefined)
      throw syntax(`expected name=value, got an argument after parameters`, offset);
    const [name, value] = p;
    // "Parameters MUST appear in the order of the table, each at most once" (§60.4).
    const at = spec.params.findIndex(([pn]) => pn === name);
    if (at < 0) throw syntax(`${verb} has no parameter ${name}`, offset);
    if (at < order || Object.hasOwn(params, name))
      throw syntax(`parameter ${name} out of order or repeated`, offset);
    order = at + 1;
    params[name] = value;
  }
  for (const [name, required] of spec.params) {
    if (required && !Object.hasOwn(params, name)) throw syntax(`${verb} requires ${name}=`, offset);
  }
  // Frozen, so it stays what was parsed: the reducers then skip the round trip.
  const c: Command = Object.freeze({
    verb,
    args: Object.freeze(args),
    params: Object.freeze(params),
  });
  PARSED.add(c);
  return c;
}

/** Prints a command line without CRLF. Throws NMTP_ERR_WIRE_SYNTAX for values that could not be parsed back. */
export function printCommandLine(c: Command): string {
  const spec = VERBS[c.verb];
  const out: string[] = [c.verb, ...c.args];
  for (const [name] of spec.params) {
    const v = c.params[name];
    if (v !== undefined) out.push(`${name}=${v}`);
  }
  const line = out.join(' ');
  // The printer never emits a line its own parser would refuse or read back differently.
  // `printsBack` shows that token by token for every well-formed command (the reducers
  // build a new one per command, so remembering parsed or printed ones would not help);
  // any other takes the round trip, which also gives it the parser's own error.
  if (printsBack(c, spec, out, line)) return line;
  const parsed = parseCommandLine(line, utf8Length(line) + 2, 0);
  if (
    parsed.args.length !== c.args.length ||
    Object.keys(c.params).length !== Object.keys(parsed.params).length
  ) {
    throw syntax('command does not print unambiguously', 0);
  }
  return line;
}

/**
 * True when `parseCommandLine(line)` accepts `line` (= `words` joined by SP, as
 * printCommandLine makes it) with exactly `c.args` and one parameter per key of `c.params`
 * — what the round trip checks —, decided token by token without parsing. False is not a
 * verdict: the caller then takes the round trip. Proved equal to it by a property test
 * (test/core/wire/print-command.test.ts).
 */
function printsBack(c: Command, spec: VerbSpec, words: readonly string[], line: string): boolean {
  // Every word non-empty, without SP or controls: `words` splits the line back into
  // exactly these words and each passes the parser's TOKEN_RE.
  const nArgs = c.args.length;
  for (let i = 1; i <= nArgs; i++) {
    const a = words[i];
    if (typeof a !== 'string' || !TOKEN_RE.test(a)) return false;
  }
  // The parser takes this many words as arguments; the rest must be the parameters.
  if (spec.arity(words.slice(1)) !== nArgs) return false;
  // Each parameter word is `name=value` with a name of the table (which matches
  // PARAM_NAME_RE and holds no "="), in table order, at most once, so the parser splits it
  // at the name and accepts it if the value is a non-empty token.
  let printed = 0;
  for (const [name, required] of spec.params) {
    const v = c.params[name];
    if (v === undefined) {
      if (required) return false;
      continue;
    }
    const w = words[1 + nArgs + printed++]!;
    if (w.length <= name.length + 1 || !TOKEN_RE.test(w)) return false;
  }
  // No key left out of the line (one the verb does not have, or an undefined value).
  if (Object.keys(c.params).length !== printed) return false;
  // "Every command has a size limit" (§60.4), counted with the CRLF; a line of at most
  // maxLine / 3 UTF-16 units cannot exceed it in UTF-8.
  return line.length * 3 + 2 <= spec.maxLine || utf8Length(line) + 2 <= spec.maxLine;
}

// --- replies ------------------------------------------------------------------------------

/**
 * Parses one reply line: `code SP enhanced *( SP param ) [ SP "#" [ SP text ] ]` (§60.6).
 * "The text starts after the first word that is exactly "#"; everything after "# " is
 * text, even if it looks like a parameter."
 */
export function parseReplyLine(line: string, offset: number): Reply {
  if (!TEXT_RE.test(line)) throw syntax('control character in a reply', offset);
  const hash = line.indexOf(' #');
  let head = line;
  let text = '';
  if (hash >= 0 && (line.length === hash + 2 || line[hash + 2] === ' ')) {
    head = line.slice(0, hash);
    text = line.length === hash + 2 ? '' : line.slice(hash + 3);
    if (text.length === 0) throw syntax('"#" without text', offset);
  }
  const w = words(head, offset);
  const [code, enhanced, ...rest] = w;
  if (code === undefined || !CODE_RE.test(code))
    throw syntax('reply does not start with a 3-digit code', offset);
  if (enhanced === undefined || !ENHANCED_RE.test(enhanced))
    throw syntax('missing or malformed enhanced status code', offset);
  // "The class of the enhanced code MUST equal the first digit of the reply code, except
  // that 3yz replies carry class 2" (§60.6).
  const expected = code[0] === '3' ? '2' : code[0];
  if (enhanced[0] !== expected)
    throw syntax('enhanced code class does not match the reply code', offset);
  const params: Record<string, string> = {};
  for (const token of rest) {
    const p = splitParam(token);
    if (p === undefined || !TOKEN_RE.test(token)) throw syntax(`bad reply parameter`, offset);
    if (Object.hasOwn(params, p[0])) throw syntax(`repeated reply parameter ${p[0]}`, offset);
    params[p[0]] = p[1];
  }
  return { code: Number(code), enhanced, params, text };
}

export function printReplyLine(r: Reply): string {
  const out = [String(r.code), r.enhanced];
  for (const [k, v] of Object.entries(r.params)) out.push(`${k}=${v}`);
  let line = out.join(' ');
  if (r.text.length > 0) line += ` # ${r.text}`;
  parseReplyLine(line, 0); // never print what cannot be parsed back
  return line;
}

export function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/**
 * True when a Command value is one the parser could have produced. Reducers check this so
 * that a host handing them a hand-built command cannot make them read missing arguments.
 */
export function isWellFormedCommand(c: Command): boolean {
  if (PARSED.has(c)) return true;
  try {
    const line = printCommandLine(c);
    const back = parseCommandLine(line, utf8Length(line) + 2, 0);
    return back.args.every((a, i) => a === c.args[i]) && back.args.length === c.args.length;
  } catch {
    return false;
  }
}
