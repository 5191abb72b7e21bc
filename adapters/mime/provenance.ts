/**
 * Provenance fields (spec §50.7): what the framed message was converted from. They are
 * fields of the root part, so the gateway's signature over the content covers them.
 */
import { formatDate, type Field } from '../../src/core/frame/index.ts';
import { toFieldValue } from './header-text.ts';
import type { ConvertOptions } from './options.ts';

/** Writes a reverse-/forward-path as "<addr>" ("<>" for the null sender), sanitised. */
const path = (addr: string): string => `<${toFieldValue(addr).value.replace(/[<>]/g, '')}>`;

export function provenanceFields(
  opts: ConvertOptions,
  originalMessageId: string | undefined,
  authResults: readonly string[],
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
  return out;
}
