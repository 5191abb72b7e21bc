/**
 * Reads a copy the reference mailbox stored in new/: the message as received with one
 * `Received` trace field added last (docs/protocol.md §60.8.4). Tests compare `sent` with
 * what the client sent, byte for byte, and the record with what the server saw.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { decodeMessage } from '../../src/core/frame/index.ts';
import { parseReceived, type ReceivedRecord } from '../../src/core/session/index.ts';

export interface Stored {
  /** The copy without its Received field: the octets the client sent. */
  readonly sent: Buffer;
  readonly received: ReceivedRecord;
  /** The record in the shape of the identification the decider was given (§60.8.3). */
  readonly client: {
    domain: string;
    ip: string;
    proof: string;
    csv: string;
    reputation?: { verdict: string; note?: string };
  };
}

export function readStored(file: string): Stored {
  const copy = readFileSync(file);
  // The copy decodes as a whole (the field kept the trace block valid).
  const last = decodeMessage(copy).trace.at(-1);
  assert.equal(last?.name, 'Received', `${file}: the last trace field is Received`);
  const received = parseReceived(last.value);
  // The field was inserted just before the empty line that ends the trace block.
  const line = Buffer.from(`Received: ${last.value}\r\n`);
  const end = copy.indexOf('\r\n\r\n') + 2;
  const at = end - line.length;
  assert.ok(
    copy.subarray(at, end).equals(line),
    `${file}: Received is the trace block's last line`,
  );
  const sent = Buffer.concat([copy.subarray(0, at), copy.subarray(end)]);
  const r = received;
  return {
    sent,
    received,
    client: {
      domain: r.domain,
      ip: r.ip,
      proof: r.proof,
      csv: r.csv,
      ...(r.verdict === undefined
        ? {}
        : {
            reputation: { verdict: r.verdict, ...(r.note === undefined ? {} : { note: r.note }) },
          }),
    },
  };
}
