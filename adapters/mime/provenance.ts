/**
 * Provenance fields (spec §50.7): what the framed message was converted from. They are
 * fields of the root part, so the gateway's signature over the content covers them.
 */
import { formatDate, type Field } from '../../src/core/frame/index.ts';
import { toFieldValue } from './header-text.ts';
import type { ConvertOptions } from './options.ts';
import type { CharsetGuess } from './warnings.ts';

/** At most this many Legacy-Warning fields (the root header block has a field limit). */
const MAX_WARNING_FIELDS = 16;

/** Writes a reverse-/forward-path as "<addr>" ("<>" for the null sender), sanitised. */
const path = (addr: string): string => `<${toFieldValue(addr).value.replace(/[<>]/g, '')}>`;

export function provenanceFields(
  opts: ConvertOptions,
  originalMessageId: string | undefined,
  authResults: readonly string[],
  guesses: readonly CharsetGuess[] = [],
): Field[] {
  const out: Field[] = [
    { name: 'Legacy-Gateway', value: toFieldValue(opts.gateway).value },
    // The conversion time is passed in (§50.7.1), never read from a clock here.
    { name: 'Legacy-Converted', value: formatDate(opts.now) },
  ];
  if (originalMessageId !== undefined)
    out.push({ name: 'Legacy-Message-Id', value: originalMessageId });
  const env = opts.envelope;
  if (env !== undefined) {
    out.push({ name: 'Legacy-Envelope-From', value: path(env.mailFrom) });
    for (const r of env.rcptTo) out.push({ name: 'Legacy-Envelope-To', value: path(r) });
    const client: string[] = [];
    if (env.clientIp !== undefined) client.push(`ip=${toFieldValue(env.clientIp).value}`);
    if (env.helo !== undefined)
      client.push(`helo=${toFieldValue(env.helo).value.replace(/[;\s]/g, '')}`);
    if (client.length > 0) out.push({ name: 'Legacy-Client', value: client.join('; ') });
  }
  for (const a of authResults) out.push({ name: 'Legacy-Auth', value: a });
  // §50.7.5: text read from octets whose charset label is unknown says so in the message,
  // so a reader knows the characters were inferred, not declared.
  const seen = new Set<string>();
  for (const g of guesses) {
    const label = g.label.replace(/[^A-Za-z0-9!#$&^_.+:-]/g, '').slice(0, 64) || 'unknown';
    const value = `charset-unknown; part=${g.part}; in=${g.where}; charset=${label}; read-as=${g.as}`;
    if (seen.has(value)) continue;
    seen.add(value);
    if (seen.size > MAX_WARNING_FIELDS) break;
    out.push({ name: 'Legacy-Warning', value });
  }
  return out;
}
