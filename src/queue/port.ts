/**
 * The queue port: what every queue backend offers, so that a service (the submission
 * backend, the gateway's smtp-in, the `nmtp-gateway queue` commands) never knows which
 * backend it talks to. Two backends implement it:
 *
 *   - embedded (src/queue/queue.ts, the default): files in one directory, made durable by
 *     a journal with group commit (src/queue/journal.ts);
 *   - BullMQ on Redis (adapters/bullmq/): several gateway processes share one queue.
 *
 * Both run the same delivery pass (src/queue/work.ts) with the same pure schedule
 * (src/queue/schedule.ts); a backend only stores, wakes up and limits concurrency. One
 * contract test suite (test/queue/contract.ts) runs against both.
 *
 * "Accepted means stored": every method that changes the queue resolves only once the
 * change is durable (journal fdatasync'd; Redis with AOF `appendfsync always`).
 */
import type { MessageSource } from '../client/source.ts';
import type { DeliverFn } from './queue.ts';
import type { RetryPolicy } from './schedule.ts';
import type { QueuedSubmission, RecipientState } from './types.ts';

/** A JSON value: what a backend stores verbatim for its users (the gateway's envelope). */
export type Json =
  null | boolean | number | string | readonly Json[] | { readonly [k: string]: Json | undefined };

/**
 * Which deliverer carries a queue entry's recipients, and so what its message file holds:
 *   - 'nmtp': a framed NMTP message, delivered by the transfer client (the default);
 *   - 'smtp': a legacy RFC 5322 message (CRLF), delivered by SMTP to the smarthost
 *     (recipients routed to the legacy side, and the DSNs the gateway writes).
 */
export type EntryKind = 'nmtp' | 'smtp';

export interface NewEntry {
  /** "1*64( ALPHA / DIGIT / "-" / "_" )" (§60.4): stable, so a redelivery is recognisable. */
  readonly id: string;
  /** Who submitted it: the authenticated user, or for the gateway the legacy return path. */
  readonly user: string;
  /** Canonical recipient addresses (the deliverer's form: NMTP canonical, or legacy). */
  readonly recipients: readonly string[];
  readonly kind?: EntryKind;
  /** The user's data, kept with the entry and returned unchanged (e.g. the SMTP envelope). */
  readonly meta?: Json;
  /** Per-recipient data, in the order of `recipients` (e.g. NOTIFY and ORCPT). */
  readonly recipientMeta?: readonly (Json | undefined)[];
}

/** An SMTP delivery job (kind 'smtp'): one SMTP transaction to the smarthost. */
export interface SmtpDeliverRequest {
  readonly id: string;
  /** Reverse-path ('' for the null sender) and the entry's meta (ENVID, RET …). */
  readonly mailFrom: string;
  readonly recipients: readonly string[];
  readonly meta?: Json;
  readonly recipientMeta: readonly (Json | undefined)[];
  /** The legacy message, streamed from the queue's file. */
  readonly message: MessageSource;
}

/** The SMTP answer per recipient; none for a recipient when the transaction failed first. */
export interface SmtpDeliverOutcome {
  readonly recipients: readonly {
    readonly rcpt: string;
    readonly code: number;
    readonly enhanced?: string;
    readonly text: string;
    /** A 2xx: whether the peer offered DSN (RFC 3461), so NOTIFY=SUCCESS reached it. */
    readonly dsn?: boolean;
    /** The server that answered, as Postfix's relay=: "host:port" or "name[addr]:port". */
    readonly relay?: string;
  }[];
  /** Why some recipients have no answer (connection refused, 421 …): a temporary failure. */
  readonly failure?: string;
}

export type SmtpDeliverFn = (r: SmtpDeliverRequest) => Promise<SmtpDeliverOutcome>;

/** Where the SMTP deliverer sends 'smtp' entries: one smarthost, or each domain's MX hosts. */
export type SmtpRoute = 'smarthost' | 'mx';

/**
 * Told after every durable change of an entry, and once per entry when a backend starts
 * (recovery: a change whose observer had not finished before a crash is observed again).
 * It may return a changed entry (its `meta`/recipient `meta` only), which is stored; it must
 * be idempotent, since it can see the same state twice. The gateway's DSN service is one.
 */
export type QueueObserver = (s: QueuedSubmission) => Promise<QueuedSubmission | undefined>;

export interface QueueBackendOptions {
  readonly deliver: DeliverFn;
  readonly smtpDeliver?: SmtpDeliverFn;
  readonly observer?: QueueObserver;
  readonly retry?: Partial<RetryPolicy>;
  /** Unix milliseconds now; default Date.now. */
  readonly now?: () => number;
  /** Entries worked on at the same time in this process (the active window; default 8). */
  readonly concurrency?: number;
  /**
   * Delivery jobs to one destination at the same time in this process (default 20,
   * Postfix's default_destination_concurrency_limit): an NMTP job's recipient domain; for
   * 'smtp' jobs the smarthost, or each recipient domain with `smtpRoute: 'mx'`.
   * src/queue/limit.ts.
   */
  readonly perDestination?: number;
  /**
   * Where 'smtp' entries go, as the SMTP deliverer sends them: 'smarthost' (the default)
   * one transaction per pass for all due recipients; 'mx' one per recipient domain.
   */
  readonly smtpRoute?: SmtpRoute;
  /** Seconds the state of a finished entry is kept for STATUS and `queue show` (default 7 days). */
  readonly keepDone?: number;
  readonly onError?: (e: unknown) => void;
}

export type StateCounts = Record<RecipientState, number>;

export interface QueueBackend {
  /** 'embedded' or 'bullmq': for logs, metrics and `queue list`. */
  readonly backend: string;
  /** Stores the message and the entry durably; resolves when both survive a crash. */
  add(n: NewEntry & { readonly message: Uint8Array }): Promise<QueuedSubmission>;
  /** As add(), for a message already in a file (moved or copied; the caller's file is gone after). */
  addFile(n: NewEntry & { readonly file: string }): Promise<QueuedSubmission>;
  get(id: string): Promise<QueuedSubmission | undefined>;
  /** Every entry, oldest first (bounded by what the queue holds). */
  list(): Promise<QueuedSubmission[]>;
  /**
   * The message of an entry while the queue holds it: until every recipient is final, and
   * then until the observer (if any) has seen the final state — so a DSN can return it.
   */
  message(id: string): Promise<MessageSource | undefined>;
  /**
   * Stores a change of the entry's `meta` and its recipients' `meta` (nothing else of what
   * `f` returns is taken), durably, under the entry's lock; the observer then sees the
   * entry. The stored entry, or undefined for an unknown id. (smtp-in marks the recipients
   * it answered in the LMTP session, so no DSN repeats the answer.)
   */
  annotate(
    id: string,
    f: (s: QueuedSubmission) => QueuedSubmission | undefined,
  ): Promise<QueuedSubmission | undefined>;
  /** Makes every pending or deferred recipient due now (postqueue -i); false if unknown. */
  retry(id: string): Promise<boolean>;
  /** Removes the entry and its message (postsuper -d); false if unknown. */
  delete(id: string): Promise<boolean>;
  /** Recipients by state over every entry kept (metrics, `queue list`). */
  counts(): Promise<StateCounts>;
  /** True while the backend can store (readyz): its directory or Redis answers. */
  ready(): Promise<boolean>;
  /** Stops taking new work, waits for work in progress, releases what it holds. */
  close(): Promise<void>;
}
