/**
 * Per-recipient delivery outcomes shared by NMTP answers, SMTP replies and DSNs
 * (docs/protocol.md §52). Pure: times are parameters.
 */
export {
  enhancedStatus,
  isEnhancedStatus,
  statusClass,
  leadingEnhancedStatus,
  STATUS_SUCCESS,
  STATUS_TEMPORARY,
  STATUS_PERMANENT,
  STATUS_EXPIRED,
} from './status.ts';
export type { EnhancedStatus, StatusClass } from './status.ts';
export {
  DELIVERY_ACTIONS,
  isDeliveryAction,
  expectedClass,
  checkOutcome,
  reportAddress,
} from './outcome.ts';
export type {
  DeliveryAction,
  TypedAddress,
  RecipientId,
  Diagnostic,
  CookieInfo,
  RecipientOutcome,
} from './outcome.ts';
export { parseNotify, conditionOf, wantsDsn, reportable, DEFAULT_NOTIFY } from './notify.ts';
export type { Notify, NotifyCondition, NotifiedOutcome } from './notify.ts';
export { fromSmtpReply, smtpDiagnosticText } from './from-smtp.ts';
export type { SmtpReply, SmtpContext } from './from-smtp.ts';
export { fromNmtpAnswer, cookieExpired } from './from-nmtp.ts';
export type { NmtpAnswer, NmtpContext } from './from-nmtp.ts';
export { cookieVerdict } from './cookie.ts';
export type { CookieVerdict } from './cookie.ts';
export { dsnPermitted } from './backscatter.ts';
export type { SenderTrust, DsnPermission } from './backscatter.ts';
