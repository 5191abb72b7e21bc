/**
 * The one catalog of stable error codes (NMTP_ERR_*), and the error type that carries
 * them. Subsystems keep their codes in their own table file beside this one (so that they
 * can be edited independently); this module merges them into one catalog and a test checks
 * that no code is defined twice and that the catalog documented in docs/errors.md matches.
 */
import type { ErrorScope, ErrorSpec } from './define.ts';
import { GENERAL_ERRORS } from './general.ts';
import { FRAME_ERRORS } from './frame.ts';
import { ADDRESS_ERRORS } from './address.ts';
import { SIGNATURE_ERRORS } from './signature.ts';
import { LEGACY_ERRORS } from './legacy.ts';
import { MIME_ERRORS } from './mime.ts';
import { DSN_ERRORS } from './dsn.ts';
import { TRANSPORT_ERRORS } from './transport.ts';
import { QUEUE_ERRORS } from './queue.ts';
import { GATEWAY_ERRORS } from './gateway.ts';

export type { ErrorScope, ErrorSpec } from './define.ts';

export const ERROR_TABLES = {
  general: GENERAL_ERRORS,
  frame: FRAME_ERRORS,
  address: ADDRESS_ERRORS,
  signature: SIGNATURE_ERRORS,
  mime: MIME_ERRORS,
  legacy: LEGACY_ERRORS,
  dsn: DSN_ERRORS,
  transport: TRANSPORT_ERRORS,
  queue: QUEUE_ERRORS,
  gateway: GATEWAY_ERRORS,
} as const;

export const CATALOG = {
  ...GENERAL_ERRORS,
  ...FRAME_ERRORS,
  ...ADDRESS_ERRORS,
  ...SIGNATURE_ERRORS,
  ...MIME_ERRORS,
  ...LEGACY_ERRORS,
  ...DSN_ERRORS,
  ...TRANSPORT_ERRORS,
  ...QUEUE_ERRORS,
  ...GATEWAY_ERRORS,
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof CATALOG;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(CATALOG, code);
}

export interface NmtpErrorDetails {
  /** Byte offset in the input where the problem was detected, when there is one. */
  readonly offset?: number;
  /** Anything structured that helps a person; never secrets. */
  readonly [key: string]: unknown;
}

export class NmtpError extends Error {
  readonly code: ErrorCode;
  readonly temporary: boolean;
  readonly scope: ErrorScope;
  readonly details: NmtpErrorDetails;

  constructor(code: ErrorCode, message?: string, details: NmtpErrorDetails = {}, cause?: unknown) {
    const spec: ErrorSpec = CATALOG[code];
    const where = details.offset === undefined ? '' : ` (at offset ${details.offset})`;
    super(`${code}: ${message ?? spec.summary}${where}`, cause === undefined ? {} : { cause });
    this.name = 'NmtpError';
    this.code = code;
    this.temporary = spec.temporary;
    this.scope = spec.scope;
    this.details = details;
  }

  /** Plain data for logs, vectors and the wire. */
  toJSON(): { code: ErrorCode; message: string; temporary: boolean; scope: ErrorScope } & {
    details: NmtpErrorDetails;
  } {
    return {
      code: this.code,
      message: this.message,
      temporary: this.temporary,
      scope: this.scope,
      details: this.details,
    };
  }
}

export function nmtpError(
  code: ErrorCode,
  message?: string,
  details?: NmtpErrorDetails,
): NmtpError {
  return new NmtpError(code, message, details);
}
