/**
 * Legacy MIME tree → framed part tree (spec §50.5, §50.6).
 */
import type { Field, Part } from '../../src/core/frame/index.ts';
import type { RawField } from './header-block.ts';
import { mapMessageFields } from './message-fields.ts';
import { contentFields, contentTypeValue, safeType } from './part-fields.ts';
import { transcodeToUtf8 } from './charset.ts';
import { isKnownCte } from './cte.ts';
import { splitMessage, type LegacyNode, type SplitContext } from './split.ts';
import { toFieldValue } from './header-text.ts';
import { reportNotes, type Warnings } from './warnings.ts';
import type { SpoolSink } from './body-store.ts';

export interface ConvertedRoot {
  readonly part: Part;
  readonly messageId?: string;
}

const EMPTY = new Uint8Array(0);

/** A multipart without any body part, carried as its octets (§50.6.1). */
export const REMAINDER_TYPE = 'application/x-nmtp-legacy-multipart';

/** message/rfc822 and its RFC 6532 UTF-8 sibling become message/nmtp (§50.6.2). */
const isEmbeddedMessage = (t: string): boolean => t === 'message/rfc822' || t === 'message/global';

/**
 * Converts a message root (the top level, or a nested message/rfc822): its RFC 5322 fields
 * and its content. `strict` applies the originator policy of §50.4.3 (top level only).
 */
export async function convertMessageRoot(
  node: LegacyNode,
  ctx: SplitContext,
  w: Warnings,
  strict: boolean,
): Promise<ConvertedRoot> {
  const block = node.block;
  noteBlock(block, node, w);
  const { fields, messageId } = mapMessageFields(block.fields, w, { strict, part: node.index });
  const content = await convertNode(node, block.fields, ctx, w);
  const part: Part = { ...content, fields: [...fields, ...content.fields] };
  return messageId === undefined ? { part } : { part, messageId };
}

function noteBlock(
  block: { dropped: number; notUtf8: boolean; bodyAt: number | undefined },
  node: LegacyNode,
  w: Warnings,
): void {
  if (block.dropped > 0) {
    // §50.3.1: "A header line that is neither a field nor a continuation is dropped."
    w.add('header-line-dropped', `${block.dropped} line(s) dropped`, node.index);
  }
  if (block.bodyAt !== undefined) {
    w.add('header-end-missing', 'no empty line after the header: body starts earlier', node.index);
  }
  if (block.notUtf8) {
    w.add('header-not-utf8', 'raw 8-bit header octets read as windows-1252', node.index);
  }
}

/** Converts one node's content (Content-* fields and body or children). */
async function convertNode(
  node: LegacyNode,
  raw: readonly RawField[],
  ctx: SplitContext,
  w: Warnings,
): Promise<Part> {
  const rawType = raw.find((f) => f.name.toLowerCase() === 'content-type')?.value;
  const common = contentFields({
    raw,
    filename: node.filename,
    disposition: node.disposition,
    report: (where, notes) => reportNotes(w, node.index, where, notes),
  });
  if (node.encoding !== '' && !isKnownCte(node.encoding)) {
    w.add(
      'cte-unknown',
      `Content-Transfer-Encoding ${JSON.stringify(node.encoding)} taken as 8bit`,
      node.index,
    );
  }
  if (node.cteDamaged)
    w.add('cte-invalid', `invalid ${node.encoding} decoded leniently`, node.index);

  if (node.multipart && node.children.length === 0) {
    // §50.6.1: "A multipart that has no body part ... becomes a leaf of type
    // application/x-nmtp-legacy-multipart whose body is the multipart's body octets
    // unchanged": nothing is discarded, and octets nobody declared as text are not
    // presented as text.
    w.add('multipart-no-parts', 'no body part: multipart body kept as octets', node.index);
    const type = safeType(node.contentType, 'multipart/mixed');
    return {
      fields: [{ name: 'Content-Type', value: `${REMAINDER_TYPE}; type=${type}` }, ...common],
      body: node.preamble?.take() ?? EMPTY,
    };
  }
  if (node.multipart) {
    const children: Part[] = [];
    for (const child of node.children) {
      const block = child.block;
      noteBlock(block, child, w);
      children.push(await convertNode(child, block.fields, ctx, w));
    }
    const type = safeType(node.contentType, 'multipart/mixed');
    return {
      fields: [{ name: 'Content-Type', value: contentTypeValue(type, rawType) }, ...common],
      children,
    };
  }

  if (isEmbeddedMessage(node.contentType)) {
    const body = node.body?.take() ?? EMPTY;
    // §50.6.2: the nested message is split and converted like the top level, one deeper.
    const inner = await splitMessage(body, ctx, node.depth + 1, node.delimited);
    const converted = await convertMessageRoot(inner, ctx, w, false);
    return {
      fields: [{ name: 'Content-Type', value: 'message/nmtp' }, ...common],
      children: [converted.part],
    };
  }

  if (node.contentType.startsWith('text/')) {
    return textLeaf(node, node.body?.take() ?? EMPTY, rawType, common, w);
  }

  const type = safeType(node.contentType);
  const fields: Field[] = [
    { name: 'Content-Type', value: contentTypeValue(type, rawType) },
    ...common,
  ];
  return { fields, body: opaqueBody(node, ctx) };
}

/**
 * An opaque leaf's body. A spilled body (spool store, §50.8) is not read back: the part gets
 * a fresh empty placeholder and ctx.spooled maps it to the file ranges.
 */
function opaqueBody(node: LegacyNode, ctx: SplitContext): Uint8Array {
  const sink = node.body;
  if (sink === undefined) return EMPTY;
  if (ctx.spooled === undefined || !('takeRef' in sink)) return sink.take();
  const ref = (sink as SpoolSink).takeRef();
  if (ref instanceof Uint8Array) return ref;
  const placeholder = new Uint8Array(0);
  ctx.spooled.set(placeholder, ref);
  return placeholder;
}

/** A text/* leaf: transcoded to UTF-8, or kept as legacy text (§50.5.2). */
function textLeaf(
  node: LegacyNode,
  body: Uint8Array,
  rawType: string | undefined,
  common: Field[],
  w: Warnings,
): Part {
  const t = transcodeToUtf8(body, node.charset);
  if (t.ok) {
    if (t.guessed !== undefined) {
      // §50.5.2: an unknown label is read by what the octets are, and says so.
      w.charsetGuessed(node.index, 'body', node.charset ?? '', t.guessed);
    }
    // "Text is always UTF-8": the charset parameter is dropped, the octets are UTF-8.
    const type = safeType(node.contentType);
    return {
      fields: [{ name: 'Content-Type', value: contentTypeValue(type, rawType) }, ...common],
      body: t.utf8,
    };
  }
  // §50.5.2: "labelled Content-Type: application/x-nmtp-legacy-text; charset=<orig>;
  // type=<original type/subtype>" — type= always written, text/plain included (§10.4).
  const cs = charsetParam(node.charset);
  w.add(
    'text-unconvertible',
    `${node.contentType} in ${cs}: ${t.reason}, kept as octets`,
    node.index,
  );
  const value = `application/x-nmtp-legacy-text; charset=${cs}; type=${safeType(node.contentType)}`;
  return { fields: [{ name: 'Content-Type', value }, ...common], body };
}

/** The original charset label as a pvalue (§10.5.2: no ";", no controls, no edge SP). */
function charsetParam(label: string | undefined): string {
  const v = toFieldValue(label ?? '')
    .value.replace(/;/g, '')
    .trim();
  return v === '' ? 'unknown-8bit' : v;
}
