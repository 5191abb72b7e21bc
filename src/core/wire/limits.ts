/**
 * Wire limits of NMTP/1 (docs/protocol.md §60.9). Every limit is checked
 * before the octets it bounds are buffered, so a hostile peer costs at most this much.
 */
export interface WireLimits {
  /** "A line, including its CRLF, MUST NOT exceed 2048 octets." (§60.3) */
  readonly maxLine: number;
  /** "A chunk MUST NOT declare more than 1 MiB (1 048 576 octets)." (§60.5) */
  readonly maxChunk: number;
}

export const DEFAULT_WIRE_LIMITS: WireLimits = {
  maxLine: 2048,
  maxChunk: 1_048_576,
};

/** Session limits (§60.9). Configurable per server; these are the defaults. */
export interface SessionLimits {
  /** Recipients accepted per transaction. */
  readonly maxRecipients: number;
  /** Largest message (announced `size=`), octets. Same default as the frame limit (§10.8). */
  readonly maxMessage: number;
  /** Failed commands before the server closes the session. */
  readonly maxErrors: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  maxRecipients: 100,
  maxMessage: 64 * 1024 * 1024,
  maxErrors: 10,
};
