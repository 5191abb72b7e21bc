/**
 * MIME part fields → framed Content-* fields (spec §50.5.3, §50.6).
 */
import libmime from 'libmime';
import type { Field } from '../../src/core/frame/index.ts';
import type { RawField } from './header-block.ts';
import { headerText, toFieldValue } from './header-text.ts';

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
  if (input.filename !== undefined) {
    const fn = toFieldValue(input.filename).value;
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
    const v = headerText(desc).value;
    if (v !== '') out.push({ name: 'Content-Description', value: v });
  }
  return out;
}
