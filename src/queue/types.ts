/**
 * What the outgoing queue keeps per submission (one JSON state file beside one message
 * file, src/queue/store.ts): who submitted it, when, and each recipient's delivery state.
 * The per-recipient states are exactly the wire states of submission STATUS (§60.11.5).
 */
import type { RecipientStatus } from '../core/session/index.ts';
import type { Endpoint } from '../client/transfer.ts';
import type { EntryKind, Json } from './port.ts';

/**
 * Where a cookie was issued. `fingerprint` is set when that endpoint was a redirect
 * target: it holds the recipient's key and must prove it again on every later session
 * (STATUS, GIVEUP, DATA on the cookie; §60.10.8), since nothing else authenticates it.
 */
export interface CookieEndpoint extends Endpoint {
  readonly fingerprint?: string;
}

export type RecipientState = RecipientStatus['state'];

/** The reply (or local failure) that last changed a recipient, for people and logs. */
export interface LastResult {
  /** Unix seconds. */
  readonly at: number;
  readonly code?: number;
  readonly enhanced?: string;
  readonly err?: string;
  readonly text?: string;
  /** An SMTP peer's 2xx: whether it offered DSN, so a success DSN can be expected. */
  readonly dsn?: boolean;
  /** An SMTP answer: the server that gave it ("host:port" or "name[addr]:port"). */
  readonly relay?: string;
}

export interface QueuedRecipient {
  /** Canonical address (§20.6.1). */
  readonly rcpt: string;
  readonly state: RecipientState;
  /** Delivery attempts made so far (each a transfer session that concerned this recipient). */
  readonly attempts: number;
  /** STATUS polls made on the current cookie. */
  readonly polls: number;
  /** Unix seconds: when the next attempt (pending) or poll (deferred) is due. */
  readonly nextAt: number;
  /** Deferred: the receiver's cookie, where it was issued, and the window it gave (§60.10.5). */
  readonly cookie?: string;
  readonly endpoint?: CookieEndpoint;
  readonly min?: number;
  readonly max?: number;
  readonly cookieExpires?: number;
  /** Accepted: the receiver's id. */
  readonly id?: string;
  readonly last?: LastResult;
  /** The queue user's per-recipient data (src/queue/port.ts), stored as given. */
  readonly meta?: Json;
}

export interface QueuedSubmission {
  readonly version: 1;
  /** The submission id returned to the client ("1*64( ALPHA / DIGIT / "-" / "_" )", §60.4). */
  readonly id: string;
  /** The authenticated user (canonical); STATUS answers only this user (§60.11.5). */
  readonly user: string;
  /** Unix seconds: queued, and the end of the queue's patience (created + maximum age). */
  readonly created: number;
  readonly expires: number;
  readonly size: number;
  readonly recipients: readonly QueuedRecipient[];
  /** What the message file holds and who delivers it (src/queue/port.ts); absent = 'nmtp'. */
  readonly kind?: EntryKind;
  /** The queue user's data (the gateway's SMTP envelope), stored as given. */
  readonly meta?: Json;
  /** Unix seconds: when the last recipient reached a final state (the message is gone). */
  readonly done?: number;
}

export const FINAL_STATES: ReadonlySet<RecipientState> = new Set([
  'accepted',
  'rejected',
  'given-up',
]);

export const isFinal = (r: QueuedRecipient): boolean => FINAL_STATES.has(r.state);
