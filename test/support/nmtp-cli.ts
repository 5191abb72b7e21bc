/**
 * The reference `nmtp` command as a black box (bin/nmtp is what `npx nmtp` runs), for the
 * interop tests that drive our side as a user would.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const NMTP_CLI = fileURLToPath(new URL('../../bin/nmtp', import.meta.url));

/** Runs `nmtp args…` in `cwd` (stdin `input`); its stdout, or throws on a non-zero exit. */
export function nmtpSync(cwd: string, args: readonly string[], input?: Buffer): Buffer {
  return execFileSync(process.execPath, [NMTP_CLI, ...args], {
    cwd,
    ...(input === undefined ? {} : { input }),
  });
}

/**
 * A framed message from sam@example.org, signed for `rcpts` with `org.key` (selector s1) in
 * `cwd` (`nmtp convert --to framed` + `nmtp sign`).
 */
export function signedMessage(cwd: string, rcpts: readonly string[], subject: string): Buffer {
  const legacy = `From: sam@example.org\r\nTo: ${rcpts.join(', ')}\r\nSubject: ${subject}\r\n\r\nHello!\r\n`;
  const framed = nmtpSync(cwd, ['convert', '--to', 'framed'], Buffer.from(legacy));
  const sign = ['sign', '--key', 'org.key', '--domain', 'example.org', '--selector', 's1'];
  return nmtpSync(cwd, [...sign, ...rcpts.flatMap((r) => ['--rcpt', r])], framed);
}
