/**
 * Planning: the framed part tree → a tree of legacy parts whose headers are written and
 * whose encodings and boundaries are chosen, before any body octet is emitted. Every
 * error is thus raised before the first output octet (a half-sent message cannot happen),
 * and the boundary check can look at the whole subtree.
 */
import {
  type Field,
  type Part,
  contentTypeParam,
  fieldNameEquals,
  getField,
  isContainerPart,
  isMessageNmtp,
  parseContentType,
} from '../../src/core/frame/index.ts';
import { NmtpError } from '../../src/core/errors/index.ts';
import { chooseBoundary, type BoundaryScope } from './boundary.ts';
import { DROPPED_FIELDS, legacyFieldValue } from './fields.ts';
import { foldField } from './fold.ts';
import { formatParameterized, parseDisposition } from './params.ts';
import { isAscii } from './text.ts';
import {
  chooseEncoding,
  inspectBody,
  mustNotEncode,
  type TransferEncoding,
} from './transfer-encoding.ts';
import type { ResolvedOptions } from './options.ts';

/** "application/x-nmtp-legacy-text; charset=<orig>" (docs/protocol.md §10.4). */
export const LEGACY_TEXT = 'application/x-nmtp-legacy-text';

interface PlannedBase {
  /** Header lines, each ending in CRLF (the empty line is not included). */
  readonly header: string;
  /** Any octet ≥ 0x80 in this part's header or (unencoded) body, or below it. */
  readonly eightBit: boolean;
}
export interface PlannedLeaf extends PlannedBase {
  readonly kind: 'leaf';
  readonly encoding: TransferEncoding;
  readonly body: Uint8Array;
}
export interface PlannedMultipart extends PlannedBase {
  readonly kind: 'multipart';
  readonly boundary: string;
  readonly children: readonly PlannedPart[];
}
export interface PlannedMessage extends PlannedBase {
  readonly kind: 'message';
  readonly child: PlannedPart;
}
export type PlannedPart = PlannedLeaf | PlannedMultipart | PlannedMessage;

interface Role {
  /** The whole legacy message's body (must end with a line, §51.5). */
  readonly top: boolean;
  /** Root of a message (top level or inside message/rfc822): gets MIME-Version. */
  readonly messageRoot: boolean;
  /** Header lines written first (trace-derived fields, §51.7). */
  readonly prefix: readonly (readonly [string, string])[];
}

const CONTENT_HANDLED = new Set(['content-type', 'content-disposition', 'content-filename']);

/** The planned subtree as the boundary check sees it (headers, unencoded bodies, boundaries). */
export function* scopeOf(p: PlannedPart): Generator<Uint8Array | string> {
  yield p.header;
  if (p.kind === 'leaf') {
    if (p.encoding === '7bit' || p.encoding === '8bit') yield p.body;
  } else if (p.kind === 'message') {
    yield* scopeOf(p.child);
  } else {
    yield p.boundary;
    for (const c of p.children) yield* scopeOf(c);
  }
}

function setParam(
  params: readonly (readonly [string, string])[],
  name: string,
  value: string | undefined,
): (readonly [string, string])[] {
  const rest = params.filter(([n]) => !fieldNameEquals(n, name));
  return value === undefined ? rest : [...rest, [name, value] as const];
}

export function planPart(part: Part, opts: ResolvedOptions, role: Role): PlannedPart {
  const fields: readonly Field[] = part.fields;
  const ct = parseContentType(getField(fields, 'Content-Type') ?? 'text/plain');
  const filename = getField(fields, 'Content-Filename');
  const dispositionValue = getField(fields, 'Content-Disposition');

  let mediaType = `${ct.type}/${ct.subtype}`;
  let params = ct.params;
  let encoding: TransferEncoding | undefined;
  let eightBit = false;
  let node:
    | Omit<PlannedLeaf, 'header' | 'eightBit'>
    | Omit<PlannedMultipart, 'header' | 'eightBit' | 'boundary'>
    | Omit<PlannedMessage, 'header' | 'eightBit'>;

  if (isContainerPart(part) && isMessageNmtp(ct)) {
    const child = planPart(part.children[0]!, opts, {
      top: role.top,
      messageRoot: true,
      prefix: [],
    });
    eightBit = child.eightBit;
    // RFC 6532 §3.7: message/global is "a message with internationalized header fields";
    // only a peer offering SMTPUTF8 receives UTF-8 headers, so only then is it used.
    const utf8Headers = [...scopeOf(child)].some((x) => typeof x === 'string' && !isAscii(x));
    mediaType = utf8Headers ? 'message/global' : 'message/rfc822';
    params = [];
    node = { kind: 'message', child };
  } else if (isContainerPart(part)) {
    const children = part.children.map((c) =>
      planPart(c, opts, { top: false, messageRoot: false, prefix: [] }),
    );
    eightBit = children.some((c) => c.eightBit);
    node = { kind: 'multipart', children };
  } else {
    let textual = ct.type.toLowerCase() === 'text';
    if (mediaType.toLowerCase() === LEGACY_TEXT) {
      // "A legacy-text part is restored as its original text type (the type parameter,
      // text/plain when absent or not text/*) with its original charset." (§51.4.3)
      const original = contentTypeParam(ct, 'type');
      mediaType =
        original !== undefined && /^text\/[A-Za-z0-9][\w!#$&^.+-]*$/.test(original)
          ? original
          : 'text/plain';
      params = setParam(params, 'type', undefined);
      textual = true;
    } else if (textual) {
      // NMTP text is UTF-8 (docs/protocol.md §10.4), whatever a charset parameter said.
      params = setParam(params, 'charset', 'utf-8');
    }
    const facts = inspectBody(part.body, textual, opts.eightBitMime);
    if (mustNotEncode(ct.type, ct.subtype)) {
      // RFC 2046 §5.2.1: message/rfc822 admits only 7bit, 8bit or binary.
      const ok =
        facts.lineClean &&
        (!facts.eightBit || opts.eightBitMime) &&
        (!role.top || facts.endsWithLine);
      if (!ok) {
        throw new NmtpError('NMTP_ERR_LEGACY_NEEDS_8BITMIME', `${mediaType} part cannot be sent`);
      }
    }
    encoding = chooseEncoding(facts, part.body.length, {
      textual,
      eightBitMime: opts.eightBitMime,
      top: role.top,
    });
    eightBit = encoding === '8bit';
    node = { kind: 'leaf', encoding, body: part.body };
  }

  // Content-Filename → name= (Content-Type) and filename= (Content-Disposition) (§51.4.3).
  if (filename !== undefined) params = setParam(params, 'name', filename);
  let disposition: string | undefined;
  if (dispositionValue !== undefined) {
    const d = parseDisposition(dispositionValue);
    disposition = formatParameterized(d.type, setParam(d.params, 'filename', filename));
  }

  const build = (boundary: string | undefined): string => {
    const p = boundary === undefined ? params : setParam(params, 'boundary', boundary);
    const lines: (readonly [string, string])[] = [...role.prefix];
    const later: (readonly [string, string])[] = [];
    for (const f of fields) {
      const lower = f.name.toLowerCase();
      if (DROPPED_FIELDS.has(lower) || CONTENT_HANDLED.has(lower)) continue;
      const v = legacyFieldValue(f.name, f.value, opts.smtputf8);
      (lower.startsWith('content-') ? later : lines).push([f.name, v]);
    }
    if (role.messageRoot) lines.push(['MIME-Version', '1.0']);
    lines.push(['Content-Type', formatParameterized(mediaType, p)]);
    if (disposition !== undefined) lines.push(['Content-Disposition', disposition]);
    if (encoding !== undefined) lines.push(['Content-Transfer-Encoding', encoding]);
    else if (eightBit) lines.push(['Content-Transfer-Encoding', '8bit']);
    return [...lines, ...later].map(([n, v]) => foldField(n, v)).join('');
  };

  if (node.kind === 'multipart') {
    const children = node.children;
    // The boundary appears in this part's own header, so the header is built per candidate.
    let header = '';
    const boundary = chooseBoundary(opts.random, (candidate): BoundaryScope => {
      header = build(candidate);
      return children.flatMap((c) => [...scopeOf(c)]);
    });
    return {
      kind: 'multipart',
      children,
      boundary,
      header,
      eightBit: eightBit || !isAscii(header),
    };
  }
  const header = build(undefined);
  return { ...node, header, eightBit: eightBit || !isAscii(header) } as PlannedPart;
}
