/**
 * §60 points where the spec and the server must say the same thing (issue 12): a command
 * over its verb's limit, control characters in a command line, the 454 reply's form, and
 * the §60.12 table against the replies the reducers build.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { NmtpError, type ErrorCode } from '../../../src/core/errors/index.ts';
import {
  initialTransferServer,
  transferServer,
  wireErrorReply,
  type TransferServerEvent,
  type TransferServerState,
} from '../../../src/core/session/index.ts';
import { parseCommandLine, printReplyLine } from '../../../src/core/wire/index.ts';
import { ServerRun } from './transcript.ts';

const spec = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');
const section = (from: string, to: string): string =>
  spec.slice(spec.indexOf(from), spec.indexOf(to, spec.indexOf(from)));

const HELLO =
  'HELLO example.org sel=s2026 proof=c_tTo8w0MPRbiyC2Jlvd_s4ORYASeANv71Ud822-EJ8n0fU5e7vgOBTtfRmJ8jn9n3KITxDLn0UUw43c0MPFDA\r\n';
const session = (): ServerRun => {
  const run = new ServerRun({ challenge: ['oKGio6SlpqeoqaqrrK2urw'] });
  run.takeGreeting();
  assert.match(new TextDecoder().decode(run.feed(new TextEncoder().encode(HELLO))), /^250 /);
  return run;
};
const say = (run: ServerRun, octets: string): string =>
  new TextDecoder().decode(run.feed(Buffer.from(octets, 'utf8')));

test('§60.12: every wire code has the reply the reducers send; 500 5.5.0 always closes', () => {
  const table = section('### 60.12 Error codes', '### 60.13');
  for (const m of table.matchAll(
    /^\| `(NMTP_ERR_WIRE_[A-Z0-9_]+)` \| (\d{3}) (\d\.\d\.\d)([^|]*)\|/gm,
  )) {
    const [, code, reply, enhanced, rest] = m;
    if (code === 'NMTP_ERR_WIRE_UNEXPECTED_CHUNK') continue; // a session refusal, not wireErrorReply's
    const r = wireErrorReply(new NmtpError(code as ErrorCode, 'x', { offset: 0 }));
    assert.equal(`${r.code} ${r.enhanced}`, `${reply} ${enhanced}`, code);
    if (reply === '500' && enhanced === '5.5.0')
      assert.match(rest!, /close/, `${code}: 500 5.5.0 closes`);
  }
});

test('a command over its verb limit (within the line limit): 501 5.5.2, and the session continues', () => {
  const run = session();
  // RCPT's limit is 1024 octets; this line is 1100, under the 2048 line limit.
  const line = `RCPT ${'a'.repeat(1100 - 'RCPT @example.net\r\n'.length)}@example.net\r\n`;
  assert.equal(Buffer.byteLength(line), 1100);
  assert.match(say(run, line), /^501 5\.5\.2 offset=\d+ err=NMTP_ERR_WIRE_COMMAND_TOO_LONG\r\n$/);
  assert.equal(say(run, 'NOOP\r\n'), '250 2.0.0\r\n');
  assert.equal(run.closed, false);
  // §60.7 says the same.
  assert.match(
    section('### 60.7', '### 60.8'),
    /command too long[^:]*: one reply[\s\S]*?`501 5\.5\.2` otherwise/,
  );
});

test('a control character anywhere in a command line is NMTP_ERR_WIRE_SYNTAX', () => {
  const run = session();
  for (const line of [
    'NO\u0000OP',
    'NOOP\u0085',
    '\u0085NOOP',
    'RCPT a\u0000b@example.net',
    'RCPT a@example.net redirect=fail\u0090ed',
    'NO\u007fOP',
  ]) {
    assert.match(
      say(run, `${line}\r\n`),
      /^501 5\.5\.2 offset=\d+ err=NMTP_ERR_WIRE_SYNTAX\r\n$/,
      JSON.stringify(line),
    );
  }
  assert.equal(say(run, 'NOOP\r\n'), '250 2.0.0\r\n');
});

test('the 454 reply is what §60.8.1 shows (domain= included), and clients ignore unknown parameters (§60.6)', () => {
  let s: TransferServerState = initialTransferServer({ serverName: 'mx.example.net' });
  const replies: string[] = [];
  const feed = (e: TransferServerEvent): void => {
    const out = transferServer(s, e);
    s = out.state;
    for (const a of out.actions) if (a.type === 'reply') replies.push(printReplyLine(a.reply));
  };
  feed({ type: 'connected', challenge: 'oKGio6SlpqeoqaqrrK2urw', ip: '192.0.2.10' });
  const hello = `HELLO example.org sel=s2026 proof=${'A'.repeat(86)}`;
  feed({
    type: 'wire',
    item: { kind: 'command', command: parseCommandLine(hello, hello.length + 2, 0), offset: 0 },
  });
  feed({ type: 'proof-result', result: 'temperror' });
  feed({ type: 'txt-result', answer: { status: 'nxdomain' } });
  assert.equal(
    replies.at(-1)?.trimEnd(),
    '454 4.7.0 domain=example.org err=NMTP_ERR_TRANSPORT_PROOF_KEY_UNAVAILABLE',
  );
  assert.ok(
    section('#### 60.8.1', '#### 60.8.2').includes(
      '`454 4.7.0 domain=<d>\n  err=NMTP_ERR_TRANSPORT_PROOF_KEY_UNAVAILABLE`',
    ),
  );
  assert.match(
    section('### 60.6 Replies', '### 60.7'),
    /"A client MUST ignore reply parameters it does not know"/,
  );
});
