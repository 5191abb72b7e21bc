/**
 * The human-readable first part of a DSN (RFC 3462 §2: the first body part is the
 * human-readable explanation). Plain text, wrapped at 76 columns, derived only from the outcomes so
 * that it never says something the machine-readable part does not.
 */
import type { RecipientOutcome } from '../../src/core/delivery/index.ts';
import { reportAddress } from '../../src/core/delivery/index.ts';
import { formatRfc5322Date } from './date.ts';

const WIDTH = 76;

/** Greedy word wrap; a word longer than the width stays on its own line. */
export function wrap(text: string, indent: string, width = WIDTH): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line === '') line = indent + word;
    else if (line.length + 1 + word.length > width) {
      out.push(line);
      line = indent + word;
    } else line += ' ' + word;
  }
  if (line !== '') out.push(line);
  return out;
}

const VERDICT: Record<RecipientOutcome['action'], string> = {
  failed: 'delivery failed permanently',
  delayed: 'delivery delayed, still trying',
  delivered: 'delivered',
  relayed: 'relayed to a system that sends no further notifications',
  expanded: 'delivered and forwarded to other recipients',
};

export function humanText(reportingMta: string, outcomes: readonly RecipientOutcome[]): string {
  const has = (a: RecipientOutcome['action']): boolean => outcomes.some((o) => o.action === a);
  const lines: string[] = [`This is the mail system at host ${reportingMta}.`];
  const paragraph = (text: string): void => {
    lines.push('', ...wrap(text, ''));
  };
  if (has('failed')) {
    paragraph(
      'Your message could not be delivered to one or more recipients. The details are below.',
    );
  }
  if (has('delayed')) {
    paragraph(
      'Delivery to one or more recipients is delayed. The mail system will keep trying; you do not need to resend your message.',
    );
  }
  if (has('delivered') || has('relayed') || has('expanded')) {
    paragraph('Your message was delivered or handed on as listed below.');
  }
  for (const o of outcomes) {
    lines.push(
      '',
      ...wrap(`<${reportAddress(o.recipient)}>: ${VERDICT[o.action]} (${o.status})`, ''),
    );
    if (o.diagnostic !== undefined) {
      const who = o.remoteMta === undefined ? 'the remote system' : `host ${o.remoteMta}`;
      lines.push(...wrap(`${who} said: ${o.diagnostic.text}`, '    '));
    }
    if (o.willRetryUntil !== undefined) {
      lines.push(...wrap(`will retry until ${formatRfc5322Date(o.willRetryUntil)}`, '    '));
    }
  }
  return lines.join('\r\n') + '\r\n';
}
