/**
 * The one error-policy module: given any thrown value, decide its code, scope and whether
 * it is temporary. Everything that turns an error into a reply, a DSN or a retry asks here.
 * Modelled on Postfix smtp_trouble.c and maddy's exterrors.
 */
import { NmtpError, type ErrorCode, type ErrorScope } from './index.ts';

export interface Verdict {
  readonly code: ErrorCode;
  readonly scope: ErrorScope;
  readonly temporary: boolean;
  readonly message: string;
}

export function classify(err: unknown): Verdict {
  if (err instanceof NmtpError) {
    return { code: err.code, scope: err.scope, temporary: err.temporary, message: err.message };
  }
  // Anything we did not anticipate is temporary: a wrong defer delays mail, a wrong
  // permanent failure loses it.
  const message = err instanceof Error ? err.message : String(err);
  return { code: 'NMTP_ERR_INTERNAL', scope: 'local', temporary: true, message };
}
