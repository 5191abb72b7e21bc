/**
 * MIME part fields → framed Content-* fields (spec §50.5.3, §50.6).
 */
import libmime from 'libmime';
import type { Field } from '../../src/core/frame/index.ts';
import type { RawField } from './header-block.ts';
import { decodeStrict, guessText, resolveCharset } from './charset.ts';
import {
  decodeEncodedWords,
  headerText,
  newNotes,
  toFieldValue,
  type WordNotes,
} from './header-text.ts';

const TOKEN = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$/;

/** Parameters that the framed form re-expresses or that lose meaning (§50.5.3). */
const DROPPED_PARAMS = new Set(['charset', 'boundary', 'name']);

/**
 * A framed Content-Type from the legacy type and its parameters. pvalue "has no ';' and
 * no controls" (§10.3): values that cannot be written are dropped (a warning is the
 * caller's business; they are rare and never structural).
 */
export function contentTypeValue(
  type: string,
  rawContentType: string | undefined,
  extra: readonly (readonly [string, string])[] = [],
): string {
  const params: [string, string][] = [];
  if (rawContentType !== undefined) {
    let parsed: { params: Record<string, string> };
    try {
      parsed = libmime.parseHeaderValue(rawContentType);
    } catch {
      parsed = { params: {} };
    }
    for (const [k, v] of Object.entries(parsed.params)) {
      const lower = k.toLowerCase();
      if (DROPPED_PARAMS.has(lower) || !TOKEN.test(k)) continue;
      const value = toFieldValue(v).value;
      if (value.includes(';')) continue;
      params.push([lower, value]);
    }
  }
  const all = [...extra, ...params];
  const seen = new Set<string>();
  let s = type;
  for (const [k, v] of all) {
    if (seen.has(k)) continue;
    seen.add(k);
    s += `; ${k}=${v}`;
  }
  return s;
}

/**
 * A legacy type/subtype the framed grammar accepts, else `fallback`
 * (application/octet-stream for leaves; multipart/mixed for containers, RFC 2046 §5.1.3:
 * "Any multipart subtypes that an implementation does not recognize must be treated as
 * being of subtype 'mixed'").
 */
export function safeType(type: string, fallback = 'application/octet-stream'): string {
  const [t = '', st = ''] = type.split('/');
  return TOKEN.test(t) && TOKEN.test(st) ? `${t}/${st}` : fallback;
}

export interface PartFieldInput {
  readonly raw: readonly RawField[];
  readonly filename: string | undefined;
  readonly disposition: string | undefined;
  /** Told what decoding a field's encoded-words found (warnings, provenance). */
  readonly report?: (where: string, notes: WordNotes) => void;
}

/**
 * The file name: RFC 2231 parameters as libmime assembles and decodes them; a plain
 * parameter's encoded-words (RFC 2047 inside quotes, which writers use though §5 forbids
 * it) decoded here, with the converter's charset labels (§50.3.2).
 */
function filename(input: PartFieldInput, notes: WordNotes): string | undefined {
  const raw = (name: string): string | undefined =>
    input.raw.find((f) => f.name.toLowerCase() === name)?.value;
  for (const [field, param] of [
    ['content-disposition', 'filename'],
    ['content-type', 'name'],
  ] as const) {
    const value = raw(field);
    if (value === undefined) continue;
    let parsed: { params: Record<string, string>; decodedParams?: string[] };
    try {
      parsed = libmime.parseHeaderValue(value) as typeof parsed;
    } catch {
      continue;
    }
    const v = parsed.params[param];
    if (v === undefined) continue;
    if (parsed.decodedParams?.includes(param) !== true) return decodeEncodedWords(v, notes);
    return extendedParam(value, param, notes) ?? v;
  }
  return input.filename;
}

// One parameter: name "=" (quoted-string / anything up to ";").
const PARAM = /;\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;

/**
 * An RFC 2231 parameter (`name*=charset'lang'%XX…`, or continued `name*0*=`, `name*1*=`, …,
 * `name*1=` plain) decoded with the converter's charset labels (§50.3.2): an alias decodes,
 * an unknown label is read as UTF-8 or windows-1252 and noted. Undefined when the value has
 * no such parameter or it does not parse (libmime's reading is kept then).
 */
function extendedParam(value: string, param: string, notes: WordNotes): string | undefined {
  const segments: { n: number; extended: boolean; text: string }[] = [];
  for (const m of value.matchAll(PARAM)) {
    const name = m[1]!.toLowerCase();
    if (!name.startsWith(`${param}*`)) continue;
    const rest = name.slice(param.length + 1); // "", "*"... after "name*"
    const num = /^(\d*)(\*?)$/.exec(rest);
    if (num === null) continue;
    const n = num[1] === '' ? 0 : Number(num[1]);
    const extended = num[1] === '' || num[2] === '*';
    let text = m[2]!.trim();
    if (text.startsWith('"')) text = text.slice(1, -1).replace(/\\(.)/g, '$1');
    segments.push({ n, extended, text });
  }
  if (segments.length === 0) return undefined;
  segments.sort((a, b) => a.n - b.n);
  const first = segments[0]!;
  const quote = first.extended ? /^([^']*)'[^']*'/.exec(first.text) : null;
  if (quote === null) return undefined;
  const label = quote[1]!;
  const bytes: number[] = [];
  for (const [i, seg] of segments.entries()) {
    const text = i === 0 ? seg.text.slice(quote[0].length) : seg.text;
    for (let k = 0; k < text.length; k++) {
      const c = text.charCodeAt(k);
      if (seg.extended && c === 0x25 && /^[0-9A-Fa-f]{2}$/.test(text.slice(k + 1, k + 3))) {
        bytes.push(parseInt(text.slice(k + 1, k + 3), 16));
        k += 2;
      } else bytes.push(c & 0xff);
    }
  }
  const octets = Uint8Array.from(bytes);
  if (label === '') return new TextDecoder().decode(octets);
  const cs = resolveCharset(label);
  if (cs === undefined) {
    const g = guessText(octets);
    notes.guessed.push({ label, as: g.as });
    return g.text;
  }
  const text = decodeStrict(octets, cs);
  if (text !== undefined) return text;
  if (cs.decoder.kind === 'none') notes.unsupported.push(label);
  else notes.invalid++;
  return undefined;
}

/**
 * Content-Disposition (token only), Content-Filename (the decoded RFC 2231 / RFC 2047
 * filename as its own field: "Free text that used to be a MIME parameter gets its own
 * field"), Content-Id, Content-Language, Content-Description.
 */
export function contentFields(input: PartFieldInput): Field[] {
  const out: Field[] = [];
  const first = (name: string): string | undefined =>
    input.raw.find((f) => f.name.toLowerCase() === name)?.value;
  const disp = input.disposition?.trim().toLowerCase();
  if (disp !== undefined && TOKEN.test(disp))
    out.push({ name: 'Content-Disposition', value: disp });
  const fnNotes = newNotes();
  const fname = input.filename === undefined ? undefined : filename(input, fnNotes);
  input.report?.('Content-Filename', fnNotes);
  if (fname !== undefined) {
    const fn = toFieldValue(fname).value;
    if (fn !== '') out.push({ name: 'Content-Filename', value: fn });
  }
  const cid = first('content-id')?.match(/<[^<>\s]+>/)?.[0];
  if (cid !== undefined) out.push({ name: 'Content-Id', value: toFieldValue(cid).value });
  const lang = first('content-language');
  if (lang !== undefined) {
    const v = toFieldValue(lang).value;
    if (v !== '') out.push({ name: 'Content-Language', value: v });
  }
  const desc = first('content-description');
  if (desc !== undefined) {
    const notes = newNotes();
    const v = headerText(desc, notes).value;
    input.report?.('Content-Description', notes);
    if (v !== '') out.push({ name: 'Content-Description', value: v });
  }
  return out;
}
