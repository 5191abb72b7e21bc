/**
 * The DATA phase of one transaction: smtp-server's message stream (dot-unstuffed, ended by
 * CRLF "." CRLF) checked octet by octet on its way to the handler, and the client's pace.
 *
 * The handler is called at once with a stream of the octets (it converts while they
 * arrive), so "never accepted" cannot mean "never called". It means: the moment a check
 * fails, the handler's stream is destroyed with the error (its `for await` throws, it never
 * sees the end of the message nor the offending octets), the rest of the message is read
 * and dropped, and the listener's reply replaces whatever the handler returns:
 *
 *   - a bare LF / bare CR / NUL (src/gateway/line-ends.ts): 521 5.5.2 and close, as
 *     Postfix's smtpd_forbid_bare_newline does — a client sending them is either broken or
 *     smuggling, and the catalog's scope for NMTP_ERR_GW_BARE_LINE_END is the session;
 *   - past smtp.limits.messageSize (smtp-server's `sizeExceeded`, RFC 1870): 552 5.3.4;
 *   - slower than minDataRate after the first commandTimeout seconds, or longer than
 *     dataTimeout: 421 4.4.2 and close.
 *
 * The header size limit (octets up to the first empty line) is the handler's (smtp-in
 * buffers the message and measures it); the listener does not count it a second time.
 */
import { PassThrough } from 'node:stream';
import type { SMTPServerDataStream } from 'smtp-server';
import { NmtpError, type ErrorCode } from '../../src/core/errors/index.ts';
import { LineEndScanner, type LineEndFault } from '../../src/gateway/line-ends.ts';
import type { SmtpReply } from '../../src/gateway/ports.ts';
import { reply } from './envelope.ts';

export interface DataLimits {
  readonly messageSize: number;
  /** Seconds (fractions allowed); also the grace period before minDataRate applies. */
  readonly commandTimeout: number;
  /** Seconds for the whole DATA phase; 0 = none. */
  readonly dataTimeout: number;
  /** Octets per second, averaged from the start of DATA; 0 = none. */
  readonly minDataRate: number;
}

/** Why the listener refuses the message whatever the handler says. */
export type DataVerdict =
  | { readonly kind: 'line-end'; readonly fault: LineEndFault; readonly reply: SmtpReply }
  | { readonly kind: 'size'; readonly reply: SmtpReply }
  | { readonly kind: 'slow'; readonly detail: string; readonly reply: SmtpReply };

export interface DataPhase {
  /** What the handler reads. */
  readonly message: AsyncIterable<Uint8Array>;
  /** Settles when smtp-server's stream has ended or closed (the final dot, or the socket). */
  readonly done: Promise<void>;
  /** The listener's own verdict so far (final once `done` settled). */
  verdict(): DataVerdict | undefined;
  /** Octets of message data received. */
  size(): number;
  /** The handler returned: whatever is left is read and dropped. */
  handlerDone(): void;
}

/**
 * Starts watching `stream`. `slow` is called once if the client is too slow (the caller
 * sends the 421 and closes the connection); everything else reaches the caller as the verdict.
 */
export function watchData(
  stream: SMTPServerDataStream,
  limits: DataLimits,
  hostname: string,
  slow: (v: DataVerdict & { kind: 'slow' }) => void,
  now: () => number = () => performance.now(),
): DataPhase {
  const out = new PassThrough();
  // The handler may not be iterating yet when the stream is destroyed; its iterator still
  // sees the error (the stream is `errored`), and nothing else may crash on it.
  out.on('error', () => undefined);
  const scan = new LineEndScanner();
  const started = now();
  let octets = 0;
  let verdict: DataVerdict | undefined;
  let forwarding = true;
  let phaseTimer: NodeJS.Timeout | undefined;
  let rateTimer: NodeJS.Timeout | undefined;

  const stopForwarding = (err?: NmtpError): void => {
    if (!forwarding) return;
    forwarding = false;
    if (err !== undefined) out.destroy(err);
    else out.destroy();
    // Read the rest of the message and drop it: smtp-server answers only after the dot.
    stream.resume();
  };
  const refuse = (v: DataVerdict, code: ErrorCode): void => {
    if (verdict !== undefined) return;
    verdict = v;
    stopForwarding(new NmtpError(code, v.reply.text));
  };
  const lineEnd = (fault: LineEndFault): void =>
    refuse(
      {
        kind: 'line-end',
        fault,
        reply: reply(
          521,
          '5.5.2',
          `${hostname} Error: ${fault} in message data refused`,
          'NMTP_ERR_GW_BARE_LINE_END',
        ),
      },
      'NMTP_ERR_GW_BARE_LINE_END',
    );
  const tooBig = (): void =>
    refuse(
      {
        kind: 'size',
        reply: reply(
          552,
          '5.3.4',
          `Error: message exceeds fixed maximum message size ${limits.messageSize}`,
          'NMTP_ERR_MIME_TOO_LARGE',
        ),
      },
      'NMTP_ERR_MIME_TOO_LARGE',
    );
  const tooSlow = (detail: string): void => {
    if (verdict !== undefined) return;
    const v = {
      kind: 'slow' as const,
      detail,
      reply: reply(421, '4.4.2', `${hostname} Error: ${detail}`, 'NMTP_ERR_GW_TIMEOUT'),
    };
    refuse(v, 'NMTP_ERR_GW_TIMEOUT');
    clearTimers();
    slow(v);
  };
  const clearTimers = (): void => {
    clearTimeout(phaseTimer);
    clearTimeout(rateTimer);
  };

  if (limits.dataTimeout > 0) {
    phaseTimer = setTimeout(
      () => tooSlow(`DATA not finished within ${limits.dataTimeout} s`),
      limits.dataTimeout * 1000,
    );
  }
  if (limits.minDataRate > 0) {
    // Postfix smtpd_min_data_rate, averaged: after the grace period the client must have
    // sent rate × elapsed octets. The check runs when the octets so far would fall behind.
    const grace = limits.commandTimeout * 1000;
    const check = (): void => {
      const elapsed = now() - started;
      if (elapsed >= grace && octets < (limits.minDataRate * elapsed) / 1000) {
        tooSlow(`DATA slower than ${limits.minDataRate} octets/s`);
        return;
      }
      const due = Math.max(grace, (octets * 1000) / limits.minDataRate);
      rateTimer = setTimeout(check, Math.max(1, Math.ceil(due - elapsed) + 1));
    };
    rateTimer = setTimeout(check, Math.max(1, grace));
  }

  out.on('drain', () => {
    if (forwarding) stream.resume();
  });
  stream.on('data', (chunk: Buffer) => {
    octets += chunk.length;
    if (!forwarding) return;
    if (stream.sizeExceeded) return tooBig();
    const fault = scan.push(chunk);
    if (fault !== undefined) return lineEnd(fault);
    if (!out.write(chunk)) stream.pause();
  });

  const done = new Promise<void>((resolve) => {
    stream.once('end', () => {
      clearTimers();
      if (forwarding) {
        // smtp-server settles sizeExceeded once more at the final dot.
        if (stream.sizeExceeded) tooBig();
        else {
          const fault = scan.end();
          if (fault !== undefined) lineEnd(fault);
        }
      }
      if (forwarding) {
        forwarding = false;
        out.end();
      }
      resolve();
    });
    stream.once('close', () => {
      clearTimers();
      // Closed without its end: the connection went away mid-message. The handler must not
      // take a truncated message for a whole one.
      if (forwarding) {
        stopForwarding(new NmtpError('NMTP_ERR_WIRE_TRUNCATED', 'connection closed in DATA'));
      }
      resolve();
    });
  });

  return {
    message: out,
    done,
    verdict: () => verdict,
    size: () => octets,
    handlerDone: () => {
      if (forwarding && !stream.readableEnded) stopForwarding();
    },
  };
}
