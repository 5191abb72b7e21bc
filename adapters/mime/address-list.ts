/**
 * Legacy address-list fields (RFC 5322 §3.4) → NMTP mailboxes (spec §50.4).
 *
 * A small tolerant tokenizer: it finds mailboxes the way RFC 5322 delimits them (top-level
 * commas outside quotes, comments and angle brackets; groups flattened), then hands each
 * addr-spec to the one strict mapping, src/core/address fromLegacyAddress. It never
 * decides that an address is valid itself.
 */
import {
  fromLegacyAddress,
  prepareDisplayName,
  validateDisplayName,
} from '../../src/core/address/index.ts';
import type { Mailbox } from '../../src/core/address/index.ts';
import { NmtpError } from '../../src/core/errors/index.ts';
import { decodeEncodedWords, type WordNotes } from './header-text.ts';

export interface LegacyMailbox {
  /** Display name as written (quotes removed, encoded-words decoded), if any. */
  readonly name?: string;
  /** The addr-spec text, CFWS removed. */
  readonly addrSpec: string;
}

export interface MappedList {
  readonly mailboxes: Mailbox[];
  /** Mailboxes that could not be mapped, with the address error code. */
  readonly failed: { readonly mailbox: LegacyMailbox; readonly code: string }[];
  /** Display names that could not be kept (too long, ...): the mailbox kept without. */
  readonly namesDropped: number;
}

/** Splits at top-level occurrences of `sep`, respecting quotes, comments and <...>. */
function splitTop(s: string, seps: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let angle = false;
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && (quoted || depth > 0)) {
      cur += c + (s[i + 1] ?? '');
      i++;
      continue;
    }
    if (quoted) {
      if (c === '"') quoted = false;
    } else if (depth > 0) {
      if (c === '(') depth++;
      else if (c === ')') depth--;
    } else if (c === '"') quoted = true;
    else if (c === '(') depth++;
    else if (c === '<') angle = true;
    else if (c === '>') angle = false;
    else if (!angle && seps.includes(c)) {
      out.push(cur);
      cur = '';
      continue;
    }
    cur += c;
  }
  out.push(cur);
  return out;
}

/** Removes comments; returns the text without them and the comments' contents. */
function stripComments(s: string): { text: string; comments: string[] } {
  let text = '';
  const comments: string[] = [];
  let depth = 0;
  let quoted = false;
  let comment = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (depth > 0) {
      if (c === '\\') {
        comment += s[i + 1] ?? '';
        i++;
      } else if (c === '(') depth++;
      else if (c === ')') {
        depth--;
        if (depth === 0) {
          comments.push(comment);
          comment = '';
          text += ' ';
        }
      } else comment += c;
      continue;
    }
    if (c === '\\' && quoted) {
      text += c + (s[i + 1] ?? '');
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === '(' && !quoted) {
      depth = 1;
      continue;
    }
    text += c;
  }
  return { text, comments };
}

/**
 * Whitespace outside quoted strings is FWS, which RFC 5322 §4.4 (obs-local-part,
 * obs-domain) allows around "." and "@": it is not part of the address.
 */
function dropFws(s: string): string {
  let out = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && quoted) {
      out += c + (s[i + 1] ?? '');
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (!quoted && /\s/.test(c)) continue;
    out += c;
  }
  return out;
}

/** A phrase: quoted strings unquoted (quoted-pairs resolved), encoded-words decoded. */
function phrase(s: string, notes?: WordNotes): string {
  // Encoded-words inside quotes are not RFC 2047, but common; decoders (Python, libmime)
  // decode them, and so do we (§50.4.1).
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '"') continue;
    if (c === '\\') {
      out += s[i + 1] ?? '';
      i++;
      continue;
    }
    out += c;
  }
  return decodeEncodedWords(out, notes);
}

/** Parses a legacy address-list value (unfolded, encoded-words still in). */
export function parseLegacyAddressList(value: string, notes?: WordNotes): LegacyMailbox[] {
  const out: LegacyMailbox[] = [];
  // Groups ("name: a, b;") are flattened: the group name is not an address (§50.4.1).
  const items: string[] = [];
  for (const piece of splitTop(value, ',;')) {
    const colon = splitTop(piece, ':');
    items.push(colon.length > 1 ? colon.slice(1).join(':') : piece);
  }
  for (const item of items) {
    const { text } = stripComments(item);
    if (text.trim() === '') continue;
    const lt = text.lastIndexOf('<');
    const gt = text.indexOf('>', lt);
    if (lt >= 0 && gt > lt) {
      let addr = dropFws(text.slice(lt + 1, gt));
      // obs-route "@a,@b:user@d": the route is dropped (RFC 5322 §4.4).
      const routeEnd = addr.lastIndexOf(':');
      if (addr.startsWith('@') && routeEnd > 0) addr = addr.slice(routeEnd + 1);
      const name = phrase(text.slice(0, lt).trim(), notes).trim();
      out.push(name === '' ? { addrSpec: addr } : { name, addrSpec: addr });
    } else {
      // A bare addr-spec. A comment beside it ("a@b (Name)") is not a display name
      // (RFC 5322 §3.4: comments are not part of the mailbox); it is dropped.
      out.push({ addrSpec: dropFws(text) });
    }
  }
  return out;
}

/**
 * "<" and ">" cannot appear in an NMTP display name (§20.8); they are replaced
 * by U+FF1C and U+FF1E so the name still reads the same (§50.4.2).
 */
function displayName(raw: string | undefined): { name?: string; dropped: boolean } {
  if (raw === undefined) return { dropped: false };
  const prepared = prepareDisplayName(raw.replace(/</g, '\uff1c').replace(/>/g, '\uff1e'));
  if (prepared === undefined) return { dropped: false };
  try {
    return { name: validateDisplayName(prepared), dropped: false };
  } catch {
    return { dropped: true };
  }
}

/** Maps every mailbox; failures are collected, never thrown (the caller applies policy). */
export function mapLegacyAddressList(value: string, notes?: WordNotes): MappedList {
  const mailboxes: Mailbox[] = [];
  const failed: { mailbox: LegacyMailbox; code: string }[] = [];
  let namesDropped = 0;
  for (const m of parseLegacyAddressList(value, notes)) {
    try {
      const address = fromLegacyAddress(m.addrSpec);
      const dn = displayName(m.name);
      if (dn.dropped) namesDropped++;
      mailboxes.push(dn.name === undefined ? { address } : { displayName: dn.name, address });
    } catch (e) {
      if (!(e instanceof NmtpError)) throw e;
      failed.push({ mailbox: m, code: e.code });
    }
  }
  return { mailboxes, failed, namesDropped };
}
