/**
 * Decoder limits (docs/protocol.md §10.8). "Limits (configurable; checked BEFORE
 * allocating; defaults): line 8 KiB incl. CRLF, 256 fields per header block, 64 KiB per
 * header block, depth 32, 10 000 parts, total 64 MiB."
 */
import { NmtpError } from '../errors/index.ts';

export interface FrameLimits {
  /** Longest header line, counting its CRLF. */
  readonly maxLineBytes: number;
  /** Most fields in one header block (the trace block or one part's header). */
  readonly maxFields: number;
  /** Largest header block, counting every field line and the empty line that ends it. */
  readonly maxHeaderBytes: number;
  /** Deepest nesting: the root part has depth 0, its children depth 1, and so on. */
  readonly maxDepth: number;
  /** Most parts in one message, the root included. */
  readonly maxParts: number;
  /** Largest framed message, from the version line through the root part's sentinel. */
  readonly maxTotalBytes: number;
}

export const DEFAULT_LIMITS: FrameLimits = Object.freeze({
  maxLineBytes: 8 * 1024,
  maxFields: 256,
  maxHeaderBytes: 64 * 1024,
  maxDepth: 32,
  maxParts: 10_000,
  maxTotalBytes: 64 * 1024 * 1024,
});

/** Defaults overridden by `partial`; every value must be a positive safe integer. */
export function resolveLimits(partial?: Partial<FrameLimits>): FrameLimits {
  // The defaults are valid and frozen: no copy, no checks (called per field on hot paths).
  if (partial === undefined) return DEFAULT_LIMITS;
  const limits: Record<string, number> = { ...DEFAULT_LIMITS };
  // An explicit undefined means "default", as an omitted key does.
  for (const [k, v] of Object.entries(partial ?? {})) {
    // A misspelt limit would otherwise be silently ignored.
    if (!Object.hasOwn(DEFAULT_LIMITS, k)) {
      throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', `unknown limit ${k}`);
    }
    if (v !== undefined) limits[k] = v;
  }
  for (const [name, v] of Object.entries(limits)) {
    // maxDepth may be 0 (a single, flat part); everything else must allow at least one unit.
    const min = name === 'maxDepth' ? 0 : 1;
    if (!Number.isSafeInteger(v) || v < min) {
      throw new NmtpError(
        'NMTP_ERR_INVALID_ARGUMENT',
        `limit ${name} must be an integer >= ${min}`,
      );
    }
  }
  return limits as unknown as FrameLimits;
}
