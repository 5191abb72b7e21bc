/**
 * Message header fields (the RFC 5322 ones) → framed fields (spec §50.3, §50.4).
 */
import { SINGLETON_FIELDS, isValidFieldName, type Field } from '../../src/core/frame/index.ts';
import { formatMailboxList } from '../../src/core/address/index.ts';
import { NmtpError } from '../../src/core/errors/index.ts';
import type { RawField } from './header-block.ts';
import { decodeEncodedWords, headerText, newNotes, toFieldValue } from './header-text.ts';
import { mapLegacyAddressList } from './address-list.ts';
import { legacyDateToFramed } from './date.ts';
import { reportNotes, type Warnings } from './warnings.ts';

/**
 * Fields that are not carried (§50.3.4): transport trace and legacy signatures describe the
 * legacy octets, which no longer exist in the framed message (carry the original, §50.7.4,
 * to keep them); Bcc must not travel; MIME framing is re-expressed by the framed format;
 * Legacy-* names are ours (provenance, §50.7) and an incoming one could forge it.
 */
function isDropped(lower: string): boolean {
  return (
    lower === 'received' ||
    lower === 'return-path' ||
    lower === 'bcc' ||
    lower === 'mime-version' ||
    lower === 'dkim-signature' ||
    lower === 'domainkey-signature' ||
    lower === 'authentication-results' ||
    lower === 'received-spf' ||
    lower === 'content-length' ||
    lower === 'content-transfer-encoding' ||
    lower.startsWith('arc-') ||
    lower.startsWith('legacy-') ||
    lower.startsWith('content-')
  );
}

/** The framed line limit is 8 KiB including name, ": " and CRLF (§10.8). */
const MAX_LINE = 8192;
const fits = (name: string, value: string): boolean =>
  Buffer.byteLength(value) + name.length + 4 <= MAX_LINE;

/** Share of the framed header-block limits the message fields may use (§50.3.4). */
const MAX_MESSAGE_FIELDS = 200;
const MAX_MESSAGE_BYTES = 48 * 1024;

/**
 * msg-id lists (§50.3.6): each "<...>" kept, comments and the whitespace between and inside
 * them removed (RFC 5322 §4.5.4 obs-id-left/obs-id-right allow CFWS around the atoms of an
 * id; it is not part of the identifier), joined by one SP.
 */
function msgIds(raw: string): string | undefined {
  const ids: string[] = [];
  for (const m of raw.replace(/\([^()]*\)/g, ' ').matchAll(/<([^<>]*)>/g)) {
    const id = m[1]!.replace(/[\s\p{Cc}]+/gu, '');
    if (id !== '') ids.push(`<${id}>`);
  }
  if (ids.length === 0) return undefined;
  return toFieldValue(ids.join(' ')).value || undefined;
}

/** Canonical framed spelling of the field names we map (case as in §10). */
const CANON: Record<string, string> = {
  from: 'From',
  sender: 'Sender',
  'reply-to': 'Reply-To',
  to: 'To',
  cc: 'Cc',
  subject: 'Subject',
  date: 'Date',
  'message-id': 'Message-Id',
  'in-reply-to': 'In-Reply-To',
  references: 'References',
};

export interface MessageFieldOptions {
  /** Top-level message: From is required and originators must map (§50.4.3). */
  readonly strict: boolean;
  readonly part: number;
}

/** Maps a message's RFC 5322 fields; returns framed fields in original order. */
export function mapMessageFields(
  raw: readonly RawField[],
  w: Warnings,
  opts: MessageFieldOptions,
): { fields: Field[]; messageId?: string } {
  const out: Field[] = [];
  const seen = new Set<string>();
  let messageId: string | undefined;
  let sawFrom = false;
  let blockBytes = 0;
  const push = (name: string, value: string): void => {
    if (!fits(name, value)) {
      w.add('field-too-long', `${name} dropped: longer than a framed line`, opts.part);
      return;
    }
    // Stay inside the framed defaults (256 fields, 64 KiB per header block) with room for
    // Content-* and provenance fields, so receivers with default limits accept the result.
    const bytes = Buffer.byteLength(value) + name.length + 4;
    if (out.length >= MAX_MESSAGE_FIELDS || blockBytes + bytes > MAX_MESSAGE_BYTES) {
      w.add('field-dropped-limit', `${name} dropped: header block full`, opts.part);
      return;
    }
    blockBytes += bytes;
    out.push({ name, value });
  };
  for (const f of raw) {
    const lower = f.name.toLowerCase();
    if (isDropped(lower)) continue;
    const notes = newNotes();
    if (!isValidFieldName(f.name)) {
      w.add('field-name-invalid', `field ${JSON.stringify(f.name)} dropped`, opts.part);
      continue;
    }
    if (SINGLETON_FIELDS.has(lower)) {
      // "Singleton fields (at most once per part)": the first occurrence wins (§50.3.4).
      if (seen.has(lower)) {
        w.add('duplicate-field', `second ${f.name} dropped`, opts.part);
        continue;
      }
      seen.add(lower);
    }
    const name = CANON[lower] ?? f.name;
    switch (lower) {
      case 'from':
      case 'sender':
      case 'reply-to':
      case 'to':
      case 'cc': {
        const mapped = mapLegacyAddressList(f.value, notes);
        if (mapped.namesDropped > 0) {
          w.add(
            'display-name-dropped',
            `${name}: ${mapped.namesDropped} name(s) unusable`,
            opts.part,
          );
        }
        const originator = lower === 'from' || lower === 'sender';
        if (mapped.failed.length > 0) {
          // §50.4.3: an originator that cannot map is refused (at SMTP time, after DATA);
          // elsewhere the mailbox is left out and the text is carried as Legacy-<Name>.
          if (originator && opts.strict) {
            const first = mapped.failed[0]!;
            throw new NmtpError(
              'NMTP_ERR_MIME_ADDRESS_UNMAPPABLE',
              `${name}: ${JSON.stringify(first.mailbox.addrSpec)} (${first.code})`,
              { field: name, reason: first.code },
            );
          }
          w.add('address-unmappable', `${name}: ${mapped.failed.length} mailbox(es)`, opts.part);
          const text = headerText(f.value).value;
          if (text !== '') push(`Legacy-${name}`, text);
        } else if (mapped.mailboxes.length === 0) {
          // §50.4.3: no mailbox at all (an empty value, only empty groups such as
          // "undisclosed-recipients:;"). An empty address list is not framed syntax
          // (§10.5.3), so the field is not written; its text, if any, travels as Legacy-<Name>.
          const text = headerText(f.value).value;
          if (text !== '') push(`Legacy-${name}`, text);
        }
        if (mapped.mailboxes.length > 0) {
          if (lower === 'from') sawFrom = true;
          push(name, formatMailboxList(mapped.mailboxes));
        }
        reportNotes(w, opts.part, name, notes);
        break;
      }
      case 'date': {
        const d = legacyDateToFramed(decodeEncodedWords(f.value));
        if (d !== undefined) push(name, d);
        else {
          // §50.3.5: an unparseable date is kept as text, never guessed.
          w.add(
            'date-invalid',
            `Date ${JSON.stringify(f.value.trim())} kept as Legacy-Date`,
            opts.part,
          );
          const text = toFieldValue(f.value).value;
          if (text !== '') push('Legacy-Date', text);
        }
        break;
      }
      case 'message-id':
      case 'in-reply-to':
      case 'references': {
        const v = msgIds(f.value);
        if (v === undefined) {
          w.add('msg-id-invalid', `${name} has no <id>: dropped`, opts.part);
          break;
        }
        if (lower === 'message-id') messageId = v.split(' ')[0];
        push(name, lower === 'message-id' ? messageId! : v);
        break;
      }
      default: {
        // Unstructured (Subject, X-*, ...): encoded-words decoded, controls replaced (§50.3.2).
        const { value, changed } = headerText(f.value, notes);
        if (changed) w.add('control-replaced', `${name}: control characters replaced`, opts.part);
        reportNotes(w, opts.part, name, notes);
        push(name, value);
      }
    }
  }
  if (opts.strict && !sawFrom) {
    throw new NmtpError('NMTP_ERR_MIME_NO_FROM', 'no From field with a mailbox');
  }
  return messageId === undefined ? { fields: out } : { fields: out, messageId };
}
