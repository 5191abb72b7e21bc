/**
 * What the gateway keeps with each queue entry (the port's `meta` and `recipientMeta`,
 * stored verbatim by either backend): the SMTP envelope the message arrived with, the facts
 * the backscatter rule needs, and what has been reported to the legacy sender already.
 * Everything here is plain JSON: a restart, another process or another host reads it back.
 */
import type { Json } from '../queue/port.ts';

/** Which gateway service made the entry. */
export type EntryOrigin =
  /** A message received by smtp-in (its recipients routed to NMTP or back to SMTP). */
  | 'smtp-in'
  /** A DSN the gateway wrote to a legacy sender (never itself reported on). */
  | 'dsn'
  /**
   * A message an NMTP sender handed to the gateway's receiver for a legacy recipient
   * (src/gateway/reverse/): its outcomes become cookie states, never DSNs (§52.6).
   */
  | 'nmtp-in';

export interface EntryMeta {
  readonly origin: EntryOrigin;
  /** MAIL FROM reverse-path ('' = null sender). */
  readonly mailFrom: string;
  /** RFC 3461 ENVID and RET from MAIL FROM. */
  readonly envid?: string;
  readonly ret?: 'FULL' | 'HDRS';
  /** The client asked for SMTPUTF8 / BODY=8BITMIME. */
  readonly smtputf8?: boolean;
  readonly eightBit?: boolean;
  /** Unix seconds the message arrived (Arrival-Date). */
  readonly arrival: number;
  /** The SMTP client: IP, HELO, reverse name, for Received-From-MTA and logs. */
  readonly client?: { readonly ip: string; readonly helo: string; readonly name?: string };
  /** The legacy Message-ID, for logs and DSNs. */
  readonly messageId?: string;
  /** Why a DSN may (or may not) go to mailFrom: the backscatter rule's inputs (§52.5). */
  readonly trust?: {
    readonly authenticated: boolean;
    readonly trustedRelay: boolean;
    readonly spf?: string;
    readonly dkimPassDomains?: readonly string[];
  };
  /**
   * The legacy header block of the original (latin1 of its octets), kept so a DSN can
   * return the headers (RET=HDRS) whatever happened to the message file.
   */
  readonly headers?: string;
  /**
   * Unix seconds: until then smtp-in may answer recipients in the LMTP session with the
   * receiver's own answer, and no DSN is written; it clears this once it has marked the
   * recipients it answered (`answered`).
   */
  readonly answerUntil?: number;
  /** A "delayed" DSN has been queued for this entry (sent once, RFC 3464 §2.3.3). */
  readonly delayReported?: boolean;
}

export interface RecipientMeta {
  /** The forward-path exactly as the client gave it in RCPT TO. */
  readonly legacy: string;
  /** RFC 3461 NOTIFY as given ("NEVER" or a comma list); absent = FAILURE,DELAY. */
  readonly notify?: string;
  /** RFC 3461 ORCPT: address type and decoded address. */
  readonly orcpt?: { readonly type: string; readonly address: string };
  /** The final answer was given in the SMTP session (LMTP): no DSN about it, ever. */
  readonly answered?: boolean;
  /** The final outcome has been reported (a DSN queued, or decided that none is due). */
  readonly reported?: boolean;
}

export const asJson = (x: EntryMeta | RecipientMeta): Json => x as unknown as Json;
export const entryMeta = (j: Json | undefined): EntryMeta | undefined =>
  typeof j === 'object' && j !== null && !Array.isArray(j) && 'origin' in j
    ? (j as unknown as EntryMeta)
    : undefined;
export const recipientMeta = (j: Json | undefined): RecipientMeta | undefined =>
  typeof j === 'object' && j !== null && !Array.isArray(j) && 'legacy' in j
    ? (j as unknown as RecipientMeta)
    : undefined;
