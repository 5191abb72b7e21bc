/**
 * The SMTP/LMTP listener adapter: smtp-server behind the gateway's SmtpInHandler port.
 * See listener.ts for what it enforces, guard.ts for strict command lines, data.ts for DATA.
 */
export {
  startSmtpListener,
  type SmtpListener,
  type SmtpListenerEvent,
  type SmtpListenerOptions,
} from './listener.ts';
export { replyText } from './envelope.ts';
