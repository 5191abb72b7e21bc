/**
 * The gateway's ports: the interfaces its services talk to. Adapters implement them
 * (adapters/smtp-listener: the SMTP/LMTP listener; adapters/bullmq and src/queue: the queue;
 * src/client: NMTP delivery; adapters/smtp-sender: SMTP delivery), and only the composition
 * root (src/cli/gateway.ts) chooses which. Services never import an adapter.
 *
 *   SMTP client ──▶ [SmtpListener adapter] ──SmtpInHandler──▶ smtp-in ──▶ QueueBackend
 *                                                               │
 *                                                               └──Router (per recipient)
 */
import type { ErrorCode } from '../core/errors/index.ts';

/** An SMTP reply the listener sends: code, RFC 3463 enhanced code, text (one line). */
export interface SmtpReply {
  readonly code: number;
  readonly enhanced: string;
  readonly text: string;
  /** The catalog code behind a refusal: written at the end of the text and logged. */
  readonly err?: ErrorCode;
}

/** A reply's fields as log events carry them (src/gateway/observe/events.ts). */
export function replyFields(r: SmtpReply): {
  code: number;
  enhanced: string;
  text: string;
  err?: ErrorCode;
} {
  return {
    code: r.code,
    enhanced: r.enhanced,
    text: r.text,
    ...(r.err === undefined ? {} : { err: r.err }),
  };
}

/** What the listener knows of a connection when it asks the handler. */
export interface SmtpSession {
  /** The listener's session id (logs). */
  readonly id: string;
  readonly protocol: 'smtp' | 'lmtp';
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The client's HELO/EHLO/LHLO argument. */
  readonly helo: string;
  /** Reverse DNS name the listener looked up, if any. */
  readonly clientHostname?: string;
  readonly tls: boolean;
  /** The authenticated user (SMTP AUTH), if any. */
  readonly user?: string;
}

/** MAIL FROM and its parameters (RFC 1870, 6152, 6531, 3461), as the client sent them. */
export interface MailFrom {
  /** Reverse-path without angle brackets; '' for the null sender. */
  readonly address: string;
  readonly size?: number;
  readonly body?: '7BIT' | '8BITMIME';
  readonly smtputf8: boolean;
  /** RFC 3461 RET. */
  readonly ret?: 'FULL' | 'HDRS';
  /** RFC 3461 ENVID, xtext-decoded. */
  readonly envid?: string;
}

/** RCPT TO and its RFC 3461 parameters. */
export interface RcptTo {
  /** Forward-path without angle brackets, as sent. */
  readonly address: string;
  /** NOTIFY as sent ("NEVER" or a comma list of SUCCESS, FAILURE, DELAY). */
  readonly notify?: string;
  /** ORCPT: address type and xtext-decoded address. */
  readonly orcpt?: { readonly type: string; readonly address: string };
}

/** A recipient the handler accepted at RCPT (what DATA is then told). */
export interface AcceptedRcpt extends RcptTo {
  /** The handler's own note about it (route, canonical address), handed back at DATA. */
  readonly note: unknown;
}

/** The SMTP-in service as the listener adapter sees it: one call per SMTP event. */
export interface SmtpInHandler {
  /** After the greeting would be sent: refuse a client outright (421/554) or go on. */
  connect(s: Omit<SmtpSession, 'helo' | 'tls' | 'user'>): Promise<SmtpReply | undefined>;
  mailFrom(s: SmtpSession, m: MailFrom): Promise<SmtpReply | undefined>;
  /** `undefined` = accepted (250 2.1.5), with `note` stored for DATA; else the refusal. */
  rcptTo(
    s: SmtpSession,
    m: MailFrom,
    r: RcptTo,
    accepted: readonly AcceptedRcpt[],
  ): Promise<{ readonly reply: SmtpReply } | { readonly note: unknown }>;
  /**
   * The message: the octets between DATA's 354 and the final ".", dot-unstuffed, exactly as
   * received (CRLF line ends; a bare CR or LF is in there if the client sent one — the
   * handler checks). SMTP: one reply for the whole message. LMTP: one per accepted recipient,
   * in order (RFC 2033 §4.2).
   */
  data(
    s: SmtpSession,
    m: MailFrom,
    rcpts: readonly AcceptedRcpt[],
    message: AsyncIterable<Uint8Array>,
  ): Promise<SmtpReply | readonly SmtpReply[]>;
}

/** Per-recipient routing (src/gateway/route.ts). */
export type RouteDecision =
  | {
      readonly transport: 'nmtp' | 'smtp';
      /** The address in canonical form (NMTP canonical for nmtp; as given for smtp). */
      readonly address: string;
      /** What decided: an address override, a domain override, a DNS SRV answer, the default. */
      readonly via: 'address' | 'domain' | 'static-srv' | 'dns-srv' | 'dns-none' | 'default';
      /** For people: one line saying why (`nmtp-gateway route` prints it). */
      readonly why: string;
    }
  | {
      /** No decision now (DNS failed): SMTP answers 451 4.4.3, try later. */
      readonly transport: 'temperror';
      readonly address: string;
      readonly why: string;
    }
  | {
      /** The address itself is unusable: 550/553 with its NMTP_ERR_ADDR_* code. */
      readonly transport: 'invalid';
      readonly address: string;
      readonly err: ErrorCode;
      readonly why: string;
    };

export interface Router {
  route(address: string): Promise<RouteDecision>;
}

/** The clock the gateway's services read: unix milliseconds. */
export type Clock = () => number;
