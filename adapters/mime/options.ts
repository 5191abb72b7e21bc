/**
 * Options and results of the legacy → framed conversion (docs/protocol.md §50).
 */
import type { FramedMessage } from '../../src/core/frame/index.ts';

/** Bounds checked while streaming, before the data they guard is kept (§50.8). */
export interface ConvertLimits {
  /** Raw legacy octets accepted (§50.8); legacyToFramedFile defaults it to 256 MiB. */
  readonly maxMessageBytes: number;
  /** MIME parts in total, nested messages included. */
  readonly maxParts: number;
  /** Nesting of multipart and message/rfc822 containers (root = depth 0). */
  readonly maxDepth: number;
  /** Octets of one part's raw header block. */
  readonly maxHeaderBytes: number;
}

/** Defaults sized to the framed format's own defaults (64 MiB, depth 32, 10 000 parts). */
export const DEFAULT_CONVERT_LIMITS: ConvertLimits = Object.freeze({
  maxMessageBytes: 64 * 1024 * 1024,
  maxParts: 1000,
  maxDepth: 30,
  maxHeaderBytes: 64 * 1024,
});

/** The SMTP envelope and session facts the converter records as provenance (§50.7). */
export interface LegacyEnvelope {
  /** MAIL FROM reverse-path without angle brackets; "" for the null sender. */
  readonly mailFrom: string;
  /** RCPT TO forward-paths, without angle brackets. */
  readonly rcptTo: readonly string[];
  readonly clientIp?: string;
  readonly helo?: string;
}

/** DNS lookup as mailauth calls it: (name, rrtype) → answers like node:dns/promises. */
export type DnsResolver = (name: string, rrtype: string) => Promise<unknown>;

export interface AuthOptions {
  /** Injected DNS resolver (tests answer from a fixed table; production passes node:dns). */
  readonly resolver: DnsResolver;
}

export interface ConvertOptions {
  /** Domain of the converting gateway (A-label), recorded in Legacy-Gateway. */
  readonly gateway: string;
  /** Conversion time in ms since the epoch: passed in so the result is reproducible. */
  readonly now: number;
  readonly envelope?: LegacyEnvelope;
  /** When given, SPF/DKIM/DMARC are evaluated with mailauth and recorded (§50.7.3). */
  readonly auth?: AuthOptions;
  /** Carry the original octets as a part so a receiver can re-check DKIM (§50.7.4). */
  readonly carryOriginal?: boolean;
  readonly limits?: Partial<ConvertLimits>;
}

/** Something the converter repaired or dropped; the conversion still succeeded. */
export interface ConvertWarning {
  /** Stable kebab-case identifier, listed in §50.10 of the spec. */
  readonly code: string;
  /** Preorder index of the legacy MIME part (0 = root), when the warning is about one. */
  readonly part?: number;
  readonly detail: string;
}

export interface ConvertResult {
  readonly message: FramedMessage;
  readonly warnings: readonly ConvertWarning[];
}
