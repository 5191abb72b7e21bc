/**
 * Shape of one entry in the error catalog. Every failure the project reports carries a
 * stable code from the catalog; the code never changes meaning once published, so logs,
 * metrics, vectors and a second implementation can rely on it.
 */
export type ErrorScope =
  /** The whole session/connection is unusable (framing lost, peer misbehaving). */
  | 'session'
  /** This message cannot be handled; other messages in the session are unaffected. */
  | 'message'
  /** Only this recipient is affected. */
  | 'recipient'
  /** A local problem (configuration, programming error, resource). */
  | 'local';

export interface ErrorSpec {
  /** Temporary errors may succeed on retry; permanent ones never will. */
  readonly temporary: boolean;
  readonly scope: ErrorScope;
  /** One line, for people. The code, not this text, is the contract. */
  readonly summary: string;
}

/** Identity helper that keeps literal keys so that codes are a checked union type. */
export function defineErrors<const T extends Record<`NMTP_ERR_${string}`, ErrorSpec>>(table: T): T {
  return table;
}
