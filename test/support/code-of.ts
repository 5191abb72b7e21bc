import assert from 'node:assert/strict';
import { NmtpError } from '../../src/core/errors/index.ts';

/** The NMTP_ERR_* code `fn` throws, or 'no error'; anything else thrown fails the test. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof NmtpError, `expected NmtpError, got ${String(e)}`);
    return e.code;
  }
  return 'no error';
}
