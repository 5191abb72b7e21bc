/**
 * The receiving side's pluggable decisions (docs/protocol.md §60.10.3): what
 * the transfer server asks its decider, and what the decider may answer. A gateway, a
 * mailbox server or a test implements these; the reducer only relays them on the wire.
 */

/** What the receiver wants to see of the message (§60.10.4). */
export type View = 'full' | 'headers' | 'digest' | 'signers' | 'text';
export const VIEWS: readonly View[] = ['full', 'headers', 'digest', 'signers', 'text'];

/**
 * The answer to one RCPT. The question carries `redirectFailed: true` when the RCPT said
 * `redirect=failed` (§60.10.2); a decider then answers accept, reject or unavailable — a
 * redirect is answered 450 by the reducer, never 351.
 */
export type RecipientDecision =
  | { readonly kind: 'accept' }
  | { readonly kind: 'reject'; readonly enhanced?: string; readonly text?: string }
  /** Deliver this recipient at host:port, to an endpoint that proves the key. */
  | {
      readonly kind: 'redirect';
      /** A host name or IP address (an IPv6 literal without brackets; the reply adds them). */
      readonly host: string;
      readonly port: number;
      /** `SHA256:<base64url>` of the recipient key (§40.8). */
      readonly fingerprint: string;
    }
  | { readonly kind: 'unavailable'; readonly enhanced?: string; readonly text?: string };

/** The answer to DATA: the view wanted, or (DATA on a cookie) why not. */
export type ViewChoice =
  | {
      readonly kind: 'view';
      readonly view: View;
      /**
       * DATA on a cookie: what the DATA that created the cookie announced. "Every DATA on
       * a cookie MUST announce the size, digest and signers of the DATA that created it"
       * (§60.10.6); the server refuses another announcement. Absent: not compared (a
       * cookie stored before the receiver kept it).
       */
      readonly announced?: {
        readonly size: number;
        readonly digest: string;
        readonly signers: readonly string[];
      };
      /**
       * DATA on a cookie: the view the receiver holds of that message (its kind and the
       * SHA-256 of its octets, base64url): the view now sent must reproduce it (§60.10.6).
       */
      readonly held?: { readonly view: View; readonly sha256: string };
    }
  | { readonly kind: 'unknown-cookie' }
  | { readonly kind: 'not-wanted' };

interface Rejected {
  readonly kind: 'rejected';
  readonly rcpt: string;
  readonly enhanced?: string;
  readonly text?: string;
}

interface Deferred {
  readonly kind: 'deferred';
  readonly rcpt: string;
  /** Poll no more often than every `min` seconds and at least every `max` seconds. */
  readonly min: number;
  readonly max: number;
  /** Unix seconds after which the cookie is forgotten (the sender stops polling). */
  readonly expires: number;
}

/** One recipient's answer after the data (§60.10.5). */
export type FinalAnswer =
  | { readonly kind: 'accepted'; readonly rcpt: string; readonly id: string }
  | Rejected
  | (Deferred & { readonly cookie: string });

/** A cookie's state, for STATUS and GIVEUP (§60.10.6). */
export type CookieState =
  /** Unknown, expired, or issued to another client domain: the three look the same. */
  | { readonly kind: 'unknown' }
  | { readonly kind: 'accepted'; readonly rcpt: string; readonly id: string }
  | Rejected
  | Deferred
  /** "Send me more": the sender answers with DATA … cookie=<cookie>. */
  | { readonly kind: 'want-view'; readonly rcpt: string; readonly view: View }
  | { readonly kind: 'given-up'; readonly rcpt: string };
