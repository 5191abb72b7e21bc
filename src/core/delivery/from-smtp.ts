/**
 * SMTP reply → per-recipient outcome. Policy (docs/protocol.md §52.2): 2xx is success,
 * 5xx permanent failure, 4xx temporary; anything unknown or ambiguous is temporary, because
 * retrying a message that could have been delivered costs a delay, while failing it wrongly
 * loses mail.
 */
import {
  STATUS_SUCCESS,
  STATUS_TEMPORARY,
  enhancedStatus,
  leadingEnhancedStatus,
  statusClass,
  type EnhancedStatus,
} from './status.ts';
import type { DeliveryAction, RecipientId, RecipientOutcome } from './outcome.ts';

export interface SmtpReply {
  /** Basic reply code, e.g. 550 (a string is accepted as it came off the wire). */
  readonly code: number | string;
  /** Reply text lines without the code, e.g. ["5.1.1 User unknown"]. */
  readonly lines: readonly string[];
}

export interface SmtpContext {
  readonly recipient: RecipientId;
  readonly remoteMta?: string;
  readonly at: Date;
  /**
   * Action for a 2xx answer: "relayed" when the peer took responsibility but will not
   * send success DSNs (it did not offer DSN), "delivered" for final delivery (LMTP).
   * When the peer offers DSN, the sender's NOTIFY/ORCPT travel on and the downstream MTA
   * reports success, so callers then do not report the 2xx at all.
   */
  readonly successAction?: Extract<DeliveryAction, 'delivered' | 'relayed'>;
  readonly willRetryUntil?: Date;
}

/** One-line rendering used as the Diagnostic-Code text: "550 5.1.1 User unknown ...". */
export function smtpDiagnosticText(reply: SmtpReply): string {
  return [String(reply.code).trim(), ...reply.lines.map((l) => l.trim())]
    .filter((s) => s !== '')
    .join(' ');
}

export function fromSmtpReply(reply: SmtpReply, ctx: SmtpContext): RecipientOutcome {
  const code = String(reply.code).trim();
  const basic = /^[2-5]\d\d$/.test(code) ? Number(code[0]) : 0;
  const enhanced = reply.lines.length > 0 ? leadingEnhancedStatus(reply.lines[0]!) : undefined;
  let action: DeliveryAction;
  let status: EnhancedStatus;
  // RFC 3463 §3.1 / RFC 2034 §4: the enhanced class must agree with the basic reply code;
  // when they disagree the reply is ambiguous and we treat it as temporary.
  const agrees = enhanced !== undefined && statusClass(enhanced) === basic;
  if (basic === 2 && (enhanced === undefined || agrees)) {
    action = ctx.successAction ?? 'relayed';
    status = enhanced ?? STATUS_SUCCESS;
  } else if (basic === 5 && (enhanced === undefined || agrees)) {
    action = 'failed';
    status = enhanced ?? enhancedStatus('5.0.0');
  } else {
    // 4xx, 1xx/3xx (not a final answer to RCPT/DATA), garbage, or a class mismatch.
    action = 'delayed';
    status = basic === 4 && agrees ? enhanced : STATUS_TEMPORARY;
  }
  return {
    recipient: ctx.recipient,
    action,
    status,
    ...(ctx.remoteMta === undefined ? {} : { remoteMta: ctx.remoteMta }),
    diagnostic: { type: 'smtp', text: smtpDiagnosticText(reply) },
    lastAttempt: ctx.at,
    ...(action === 'delayed' && ctx.willRetryUntil !== undefined
      ? { willRetryUntil: ctx.willRetryUntil }
      : {}),
  };
}
