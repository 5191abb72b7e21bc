/**
 * Strict command lines in front of smtp-server's parser.
 *
 * smtp-server's command parser (SMTPStream) splits command lines on /\r?\n/, so a bare LF
 * ends a command, and a CR inside a line is left in the command text. That is the SMTP
 * smuggling gap (CVE-2023-51764 class): a peer that reads "\n" differently sees different
 * commands. RFC 5321 §2.3.8: lines are "terminated by the sequence … CR … followed
 * immediately by … LF". This module hooks the parser of each connection (smtp-server
 * 3.21 internals, typed by its own .d.ts; test/integration/smtp-listener.test.ts is what
 * proves they still hold after an upgrade):
 *
 *   - `_write` (every octet from the socket enters there, and smtp-server re-enters it
 *     itself when it switches between command and data mode) feeds the parser ONE command
 *     line at a time, after the line-end detector (src/gateway/line-ends.ts) has passed the
 *     whole line including its CRLF. A faulty line is never handed over, so it is never
 *     acted on; the listener answers 521 5.5.2 and closes. In data mode the octets pass
 *     through untouched: the DATA checks run on the message stream (data.ts), where
 *     smtp-server's own end-of-data rule is strictly CRLF "." CRLF.
 *   - `_flushData` (called at the client's FIN): smtp-server would dispatch a last line
 *     that has no line end at all; here it is dropped.
 *   - `oncommand`: records the raw octets of each command line dispatched (the MAIL/RCPT
 *     path and the HELO name as sent, see envelope.ts).
 *   - `_feedDataStream`: a fast path for the chunks of a message that hold no dot at the
 *     start of a line (data-feed.ts); the others go to smtp-server's own.
 *
 * After STARTTLS smtp-server retires the parser and makes a new one (`_createParser`); the
 * new one is hooked too, with fresh state.
 */
import type { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { NmtpError } from '../../src/core/errors/index.ts';
import { fastDataFeed } from './data-feed.ts';
import {
  LINE_ENDS_START,
  scanLineEnds,
  type LineEndFault,
  type LineEndState,
} from '../../src/gateway/line-ends.ts';

export interface LineGuardHooks {
  /** A command line is about to be dispatched (raw octets, without CRLF). */
  line(raw: Buffer): void;
  /** A command line had a bare CR/LF or NUL: it was not dispatched; refuse and close. */
  fault(fault: LineEndFault): void;
}

type Next = (err?: Error | null) => void;
const EMPTY = Buffer.alloc(0);
/** Lines fed synchronously before yielding to the event loop (smtp-server yields at 100 too). */
const MAX_SYNC_LINES = 100;

/** Hooks the connection's current parser and every parser it makes later (STARTTLS). */
export function guardConnection(conn: SMTPConnection, hooks: LineGuardHooks): void {
  const parser = conn._parser;
  if (
    parser === false ||
    typeof parser._write !== 'function' ||
    typeof parser._feedDataStream !== 'function'
  ) {
    throw new NmtpError('NMTP_ERR_INTERNAL', 'smtp-server internals changed: no command parser');
  }
  guardParser(parser, hooks);
  const create = conn._createParser;
  conn._createParser = function (this: SMTPConnection): SMTPStream {
    const p = create.call(this);
    guardParser(p, hooks);
    return p;
  };
}

function guardParser(p: SMTPStream, hooks: LineGuardHooks): void {
  fastDataFeed(p);
  const write = p._write;
  const oncommand = p.oncommand;
  let state: LineEndState = LINE_ENDS_START;

  p.oncommand = function (command: Buffer, callback?: () => void): void {
    hooks.line(command);
    oncommand.call(this, command, callback);
  };
  // An unterminated last line at the client's FIN is not a command.
  p._flushData = () => {
    p._remainder = '';
  };

  p._write = function (chunk: Buffer, encoding: BufferEncoding | 'buffer', next: Next): void {
    if (p.isClosed || p._dataMode) {
      // Data mode: smtp-server's own framing (CRLF.CRLF only); checked on the data stream.
      state = LINE_ENDS_START;
      write.call(p, chunk, encoding, next);
      return;
    }
    let rest = chunk;
    let fed = 0;
    const step = (): void => {
      for (;;) {
        if (rest.length === 0 || p.isClosed) {
          next();
          return;
        }
        if (p._dataMode) {
          // The line just fed was an accepted DATA: what follows is message octets.
          const r = rest;
          rest = EMPTY;
          state = LINE_ENDS_START;
          write.call(p, r, 'buffer', next);
          return;
        }
        const lf = rest.indexOf(0x0a);
        const head = lf < 0 ? rest : rest.subarray(0, lf + 1);
        rest = lf < 0 ? EMPTY : rest.subarray(lf + 1);
        const scanned = scanLineEnds(state, head);
        if (!scanned.ok) {
          // Never handed to the parser: what it holds of the line is dropped with it.
          p._remainder = '';
          p.isClosed = true;
          rest = EMPTY;
          hooks.fault(scanned.fault);
          next();
          return;
        }
        state = scanned.state;
        let sync: { err: Error | null | undefined } | undefined;
        let waiting = false;
        write.call(p, head, 'buffer', (err) => {
          if (!waiting) {
            sync = { err };
            return;
          }
          if (err) next(err);
          else step();
        });
        if (sync === undefined) {
          // A command handler is running (onMailFrom …): it calls back later.
          waiting = true;
          return;
        }
        if (sync.err) {
          next(sync.err);
          return;
        }
        if (++fed >= MAX_SYNC_LINES) {
          fed = 0;
          setImmediate(step);
          return;
        }
      }
    };
    step();
  };
}
