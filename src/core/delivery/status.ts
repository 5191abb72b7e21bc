/**
 * RFC 3463 enhanced mail system status codes ("5.1.1"), validated once so that every
 * outcome, SMTP reply mapping and DSN carries a syntactically valid code.
 */
import { NmtpError } from '../errors/index.ts';

/** A status code string already checked against the RFC 3463 syntax. */
export type EnhancedStatus = string & { readonly __enhancedStatus: unique symbol };

/** 2 = success, 4 = persistent transient failure, 5 = permanent failure. */
export type StatusClass = 2 | 4 | 5;

// RFC 3463 §2: "status-code = class "." subject "." detail", "class = "2"/"4"/"5"",
// "subject = 1*3digit", "detail = 1*3digit".
const STATUS = /^([245])\.(\d{1,3})\.(\d{1,3})$/;

/** Checks the syntax; throws NMTP_ERR_DSN_BAD_STATUS. Leading zeros are kept as given. */
export function enhancedStatus(text: string): EnhancedStatus {
  if (!STATUS.test(text)) {
    throw new NmtpError(
      'NMTP_ERR_DSN_BAD_STATUS',
      `not an enhanced status code: ${JSON.stringify(text.slice(0, 40))}`,
    );
  }
  return text as EnhancedStatus;
}

export function isEnhancedStatus(text: string): text is EnhancedStatus {
  return STATUS.test(text);
}

export function statusClass(status: EnhancedStatus): StatusClass {
  return Number(status[0]) as StatusClass;
}

/**
 * Finds an enhanced code at the start of an SMTP reply text ("5.1.1 User unknown"), as
 * RFC 2034 §4 places it right after the reply code and one space, so once the reply code
 * is stripped it is the first token.
 */
export function leadingEnhancedStatus(text: string): EnhancedStatus | undefined {
  const m = /^([245]\.\d{1,3}\.\d{1,3})(?=\s|$)/.exec(text.trimStart());
  return m ? (m[1] as EnhancedStatus) : undefined;
}

/** Generic codes used when a more precise one is unknown (RFC 3463 §3.1 "X.0.0"). */
export const STATUS_SUCCESS = '2.0.0' as EnhancedStatus;
export const STATUS_TEMPORARY = '4.0.0' as EnhancedStatus;
export const STATUS_PERMANENT = '5.0.0' as EnhancedStatus;
/** RFC 3463 §3.5 "X.4.7 Delivery time expired". */
export const STATUS_EXPIRED = '5.4.7' as EnhancedStatus;
