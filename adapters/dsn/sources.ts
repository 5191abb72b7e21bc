/**
 * Where a DSN's Date, Message-Id and MIME boundary come from. Injected so tests (and the
 * golden files) are deterministic; production uses the clock and crypto randomness.
 */
import { randomBytes } from 'node:crypto';

export interface DsnSources {
  now(): Date;
  /** A complete msg-id including the angle brackets, e.g. "<abc@gw.example.net>". */
  messageId(domain: string): string;
  /** A fresh boundary; called again if the previous one occurs in the content. */
  boundary(): string;
}

export function defaultDsnSources(): DsnSources {
  return {
    now: () => new Date(),
    messageId: (domain) => `<dsn.${randomBytes(12).toString('hex')}@${domain}>`,
    boundary: () => `=_nmtp-dsn_${randomBytes(12).toString('hex')}`,
  };
}
