/**
 * The SMTP/LMTP listener adapter (adapters/smtp-listener) on real sockets, 127.0.0.1 and
 * ephemeral ports, in front of a scripted SmtpInHandler (the adapter is what is tested):
 * extensions announced, parameters decoded, pipelining, LMTP per-recipient replies,
 * STARTTLS, every SMTP smuggling shape, size, SMTPUTF8, one enhanced code per reply.
 * Connection limits and timeouts: smtp-listener-limits.test.ts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  startSmtpListener,
  type SmtpListener,
  type SmtpListenerEvent,
} from '../../adapters/smtp-listener/index.ts';
import { generateSelfSigned } from '../../src/server/certs.ts';
import { findLineEndFault } from '../../src/gateway/line-ends.ts';
import { NmtpError } from '../../src/core/errors/index.ts';
import { EVENTS } from '../../src/gateway/observe/events.ts';
import type { SmtpInHandler } from '../../src/gateway/ports.ts';
import {
  RawClient,
  oneEnhanced,
  scripted,
  smtpConfig,
  type Seen,
  type SmtpConfig,
} from '../adapters/smtp-listener/support.ts';

const dir = mkdtempSync(join(tmpdir(), 'smtp-listener-'));
let cert: Buffer;
let key: Buffer;
const listeners: SmtpListener[] = [];

before(() => {
  const c = generateSelfSigned(dir, 'localhost', 1);
  cert = readFileSync(c.certFile);
  key = readFileSync(c.keyFile);
});

after(async () => {
  await Promise.all(listeners.map((l) => l.close()));
  rmSync(dir, { recursive: true, force: true });
});

interface Started {
  readonly port: number;
  readonly seen: Seen;
  readonly events: { name: SmtpListenerEvent; fields: Record<string, unknown> }[];
  readonly listener: SmtpListener;
}

async function start(
  o: {
    protocol?: 'smtp' | 'lmtp';
    config?: SmtpConfig;
    tls?: boolean;
    script?: Partial<SmtpInHandler>;
  } = {},
): Promise<Started> {
  const { handler, seen } = scripted(o.script);
  const events: Started['events'] = [];
  const listener = await startSmtpListener({
    protocol: o.protocol ?? 'smtp',
    host: '127.0.0.1',
    port: 0,
    // A regression that lets a smuggled line through shows as a wrong reply, not a hang.
    config: o.config ?? smtpConfig({ commandTimeout: 10 }),
    hostname: 'mx.gateway.test',
    tls: o.tls === false ? undefined : { cert, key },
    handler,
    reverseLookup: false,
    onEvent: (name, fields) => events.push({ name, fields: { ...fields } }),
  });
  listeners.push(listener);
  return { port: listener.port, seen, events, listener };
}

/** Connects, reads the greeting, sends EHLO (or LHLO); returns the client and EHLO reply. */
async function hello(port: number, verb = 'EHLO', name = 'Client.Example'): Promise<RawClient> {
  const c = await RawClient.open(port);
  const greeting = await c.reply();
  assert.match(greeting ?? '', /^220 mx\.gateway\.test E?SMTP|^220 mx\.gateway\.test LMTP/);
  const r = await c.cmd(`${verb} ${name}`);
  assert.match(r ?? '', /^250[ -]mx\.gateway\.test/);
  return c;
}

/** A message as sent: CRLF lines, one dot-stuffed line. */
const MSG = 'From: a@sender.example\r\nSubject: hi\r\n\r\nbody\r\n..leading dot\r\n';
/** Commands a smuggling client hides inside its message. */
const SMUGGLED =
  'MAIL FROM:<admin@victim.example>\r\nRCPT TO:<b@x.example>\r\nDATA\r\nforged\r\n.\r\n';

test('EHLO announces SIZE, 8BITMIME, SMTPUTF8, PIPELINING, STARTTLS, ENHANCEDSTATUSCODES, DSN; no AUTH', async () => {
  const { port } = await start({ config: smtpConfig({ messageSize: 12345 }) });
  const c = await RawClient.open(port);
  assert.equal(await c.reply(), '220 mx.gateway.test ESMTP');
  const ehlo = (await c.cmd('EHLO client.example'))!.split('\n');
  const ext = ehlo.slice(1).map((l) => l.slice(4));
  for (const want of [
    'SIZE 12345',
    '8BITMIME',
    'SMTPUTF8',
    'PIPELINING',
    'STARTTLS',
    'ENHANCEDSTATUSCODES',
    'DSN',
  ]) {
    assert.ok(ext.includes(want), `${want} in ${JSON.stringify(ext)}`);
  }
  assert.ok(!ext.some((e) => e.startsWith('AUTH')), 'no AUTH');
  assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
  await c.closed;

  // Without a certificate there is no STARTTLS to offer.
  const plain = await start({ tls: false });
  const p = await hello(plain.port);
  assert.ok(!p.received.some((l) => l.includes('STARTTLS')));
  p.destroy();
});

test('MAIL and RCPT parameters reach the handler decoded; replies carry one enhanced code', async () => {
  const { port, seen } = await start();
  const c = await hello(port);
  const mail = await c.cmd(
    'MAIL FROM:<a@xn--bcher-kva.example> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=id+2Bx+3Dy',
  );
  assert.equal(mail, '250 2.1.0 Accepted');
  const rcpt = await c.cmd(
    'RCPT TO:<Bob@Example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bx+3B@example.org',
  );
  assert.equal(rcpt, '250 2.1.5 Accepted');
  assert.equal(await c.cmd('RCPT TO:<@relay.example:c@example.org>'), '250 2.1.5 Accepted');
  assert.deepEqual(seen.mails[0]!.mail, {
    // As sent: smtp-server's own copy has the domain in Unicode.
    address: 'a@xn--bcher-kva.example',
    size: 100,
    body: '8BITMIME',
    smtputf8: false,
    ret: 'HDRS',
    envid: 'id+x=y',
  });
  const s = seen.mails[0]!.session;
  assert.equal(s.helo, 'Client.Example');
  assert.equal(s.protocol, 'smtp');
  assert.equal(s.tls, false);
  assert.equal(s.remoteAddress, '127.0.0.1');
  assert.equal(s.clientHostname, undefined);
  assert.deepEqual(seen.rcpts[0]!.rcpt, {
    address: 'Bob@Example.org',
    notify: 'SUCCESS,FAILURE',
    orcpt: { type: 'rfc822', address: 'bob+x;@example.org' },
  });
  // The source route is dropped (RFC 5321 appendix C).
  assert.deepEqual(seen.rcpts[1]!.rcpt, { address: 'c@example.org' });
  assert.equal(seen.rcpts[1]!.acceptedBefore, 1);

  // smtp-server's own refusals: its enhanced code, once.
  const rset = await c.cmd('RSET');
  assert.equal(rset, '250 2.0.0 Flushed');
  const early = await c.cmd('RCPT TO:<x@example.org>');
  assert.match(early ?? '', /^503 5\.5\.1 /);
  assert.ok(oneEnhanced(early));
  const big = await c.cmd('MAIL FROM:<a@b.example> SIZE=999999999');
  assert.match(big ?? '', /^552 5\.3\.4 /);
  assert.ok(oneEnhanced(big));
  c.destroy();
});

test("the handler's refusals are sent as given: code, its enhanced code once, text, # code", async () => {
  const { port, events } = await start({
    script: {
      async mailFrom(_s, m) {
        if (m.address === 'spam@bad.example') {
          return { code: 550, enhanced: '5.7.1', text: 'go away', err: 'NMTP_ERR_GW_RELAY_DENIED' };
        }
        return undefined;
      },
      async rcptTo(_s, _m, r) {
        if (r.address.startsWith('nobody')) {
          return {
            reply: {
              code: 550,
              enhanced: '5.1.1',
              text: 'no such user',
              err: 'NMTP_ERR_GW_RELAY_DENIED',
            },
          };
        }
        if (r.address.startsWith('later')) {
          return { reply: { code: 450, enhanced: '4.2.1', text: 'try later' } };
        }
        if (r.address.startsWith('crash')) throw new Error('handler bug');
        return { note: 1 };
      },
    },
  });
  const c = await hello(port);
  assert.equal(
    await c.cmd('MAIL FROM:<spam@bad.example>'),
    '550 5.7.1 go away # NMTP_ERR_GW_RELAY_DENIED',
  );
  assert.equal(await c.cmd('MAIL FROM:<a@b.example>'), '250 2.1.0 Accepted');
  assert.equal(
    await c.cmd('RCPT TO:<nobody@x.example>'),
    '550 5.1.1 no such user # NMTP_ERR_GW_RELAY_DENIED',
  );
  assert.equal(await c.cmd('RCPT TO:<later@x.example>'), '450 4.2.1 try later');
  assert.equal(
    await c.cmd('RCPT TO:<crash@x.example>'),
    '451 4.3.0 Error: local error, try again later # NMTP_ERR_INTERNAL',
  );
  c.destroy();
  const refused = events.filter((e) => e.name === 'smtp.rcpt.refused').map((e) => e.fields);
  assert.deepEqual(
    refused.map((f) => [f.rcpt, f.from, f.code, f.enhanced, f.err]),
    [
      ['nobody@x.example', 'a@b.example', 550, '5.1.1', 'NMTP_ERR_GW_RELAY_DENIED'],
      ['later@x.example', 'a@b.example', 450, '4.2.1', undefined],
      ['crash@x.example', 'a@b.example', 451, '4.3.0', 'NMTP_ERR_INTERNAL'],
    ],
  );
  assert.ok(events.some((e) => e.name === 'gateway.error'));
});

test('pipelined MAIL, RCPT, RCPT, DATA in one write; the message reaches the handler dot-unstuffed', async () => {
  const { port, seen } = await start();
  const c = await hello(port);
  c.write(
    'MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@x.example>\r\nRCPT TO:<c@y.example>\r\nDATA\r\n',
  );
  assert.deepEqual(
    [await c.reply(), await c.reply(), await c.reply(), await c.reply()],
    [
      '250 2.1.0 Accepted',
      '250 2.1.5 Accepted',
      '250 2.1.5 Accepted',
      '354 End data with <CR><LF>.<CR><LF>',
    ],
  );
  // MSG is dot-stuffed as sent; the handler gets it unstuffed.
  c.write(`${MSG}.\r\nRSET\r\n`);
  assert.equal(await c.reply(), '250 2.0.0 queued');
  assert.equal(await c.reply(), '250 2.0.0 Flushed');
  assert.equal(seen.data.length, 1);
  const d = seen.data[0]!;
  assert.equal(d.bytes?.toString('utf8'), MSG.replace('\r\n..', '\r\n.'));
  assert.deepEqual(
    d.rcpts.map((r) => [r.address, r.note]),
    [
      ['b@x.example', 'note:b@x.example'],
      ['c@y.example', 'note:c@y.example'],
    ],
  );
  // A second transaction on the same connection.
  c.write('MAIL FROM:<>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n');
  assert.deepEqual(
    [await c.reply(), await c.reply(), await c.reply()],
    ['250 2.1.0 Accepted', '250 2.1.5 Accepted', '354 End data with <CR><LF>.<CR><LF>'],
  );
  c.write(`${MSG}.\r\n`);
  assert.equal(await c.reply(), '250 2.0.0 queued');
  assert.equal(seen.mails[1]!.mail.address, '');
  assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
  await c.closed;

  // A client that does not even wait for the 354: commands, message and QUIT in one write.
  const e = await hello(port);
  e.write(`MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n${MSG}.\r\nQUIT\r\n`);
  assert.deepEqual(await e.rest(), [
    '250 2.1.0 Accepted',
    '250 2.1.5 Accepted',
    '354 End data with <CR><LF>.<CR><LF>',
    '250 2.0.0 queued',
    '221 2.0.0 Bye',
  ]);
  assert.equal(seen.data[2]!.bytes?.toString('utf8'), MSG.replace('\r\n..', '\r\n.'));

  // Many pipelined commands in one write are all answered, in order.
  const f = await hello(port);
  f.write('NOOP\r\n'.repeat(1000) + 'QUIT\r\n');
  const replies = await f.rest();
  assert.equal(replies.length, 1001);
  assert.ok(replies.slice(0, 1000).every((r) => r === '250 2.0.0 OK'));
  assert.equal(replies[1000], '221 2.0.0 Bye');
});

test('LMTP: one reply per accepted recipient, in order; a repeated recipient counts once', async () => {
  const given: string[][] = [];
  const { port } = await start({
    protocol: 'lmtp',
    script: {
      async rcptTo(_s, _m, r) {
        if (r.address.startsWith('no')) {
          return { reply: { code: 550, enhanced: '5.1.1', text: 'unknown' } };
        }
        return { note: r.address };
      },
      async data(_s, _m, rcpts, message) {
        for await (const _ of message) void _;
        given.push(rcpts.map((r) => r.address));
        return rcpts.map((r, i) =>
          i === 1
            ? {
                code: 452,
                enhanced: '4.2.2',
                text: `${r.address} over quota`,
                err: 'NMTP_ERR_INTERNAL',
              }
            : { code: 250, enhanced: '2.1.5', text: `${r.address} delivered` },
        );
      },
    },
  });
  const c = await RawClient.open(port);
  assert.equal(await c.reply(), '220 mx.gateway.test LMTP');
  assert.match((await c.cmd('EHLO x.example')) ?? '', /^500 /);
  assert.match((await c.cmd('LHLO x.example')) ?? '', /^250-mx\.gateway\.test/);
  c.write(
    'MAIL FROM:<a@sender.example>\r\nRCPT TO:<one@x.example>\r\nRCPT TO:<no@x.example>\r\n' +
      'RCPT TO:<two@x.example>\r\nRCPT TO:<ONE@x.example>\r\nDATA\r\n',
  );
  const replies = [];
  for (let i = 0; i < 6; i++) replies.push(await c.reply());
  assert.deepEqual(replies, [
    '250 2.1.0 Accepted',
    '250 2.1.5 Accepted',
    '550 5.1.1 unknown',
    '250 2.1.5 Accepted',
    '250 2.1.5 Accepted',
    '354 End data with <CR><LF>.<CR><LF>',
  ]);
  c.write(`${MSG}.\r\n`);
  assert.deepEqual(
    [await c.reply(), await c.reply()],
    ['250 2.1.5 ONE@x.example delivered', '452 4.2.2 two@x.example over quota # NMTP_ERR_INTERNAL'],
  );
  // The repeat replaced the first entry (as smtp-server's envelope does): two recipients.
  assert.deepEqual(given, [['ONE@x.example', 'two@x.example']]);
  assert.equal(await c.cmd('NOOP'), '250 2.0.0 OK');
  c.destroy();

  // A smuggling shape in LMTP: the refusal once per recipient, then the close.
  const d = await RawClient.open(port);
  await d.reply();
  await d.cmd('LHLO x.example');
  d.write(
    'MAIL FROM:<a@sender.example>\r\nRCPT TO:<one@x.example>\r\nRCPT TO:<two@x.example>\r\nDATA\r\n',
  );
  for (let i = 0; i < 4; i++) await d.reply();
  d.write(`body\r\n\n.\r\n${SMUGGLED}\r\n.\r\n`);
  const refusal =
    '521 5.5.2 mx.gateway.test Error: bare LF in message data refused # NMTP_ERR_GW_BARE_LINE_END';
  assert.deepEqual(await d.rest(), [refusal, refusal]);
  assert.equal(given.length, 1, 'the handler never completed it');
});

test('STARTTLS, then a message over TLS; requireTls refuses MAIL before it', async () => {
  const { port, seen, events } = await start({
    config: smtpConfig({ commandTimeout: 10 }, { requireTls: true }),
  });
  const c = await hello(port);
  assert.equal(
    await c.cmd('MAIL FROM:<a@sender.example>'),
    '530 5.7.0 Must issue a STARTTLS command first # NMTP_ERR_GW_TLS_REQUIRED',
  );
  assert.equal(seen.mails.length, 0);
  assert.equal(await c.cmd('STARTTLS'), '220 2.0.0 Ready to start TLS');
  await c.startTls(cert);
  const ehlo = (await c.cmd('EHLO client.example'))!.split('\n');
  assert.ok(!ehlo.some((l) => l.includes('STARTTLS')), 'not offered twice');
  c.write('MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n');
  assert.deepEqual(
    [await c.reply(), await c.reply(), await c.reply()],
    ['250 2.1.0 Accepted', '250 2.1.5 Accepted', '354 End data with <CR><LF>.<CR><LF>'],
  );
  c.write(`${MSG}.\r\n`);
  assert.equal(await c.reply(), '250 2.0.0 queued');
  assert.equal(seen.data[0]!.session.tls, true);
  assert.equal(seen.data[0]!.bytes?.toString('utf8'), MSG.replace('\r\n..', '\r\n.'));
  assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
  await c.closed;

  // Plaintext pipelined behind STARTTLS is never run inside the TLS session.
  const d = await hello(port);
  d.write('STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n');
  assert.equal(await d.reply(), '220 2.0.0 Ready to start TLS');
  await d.startTls(cert);
  assert.match((await d.cmd('EHLO client.example')) ?? '', /^250-/);
  assert.equal(await d.cmd('RCPT TO:<b@x.example>'), '503 5.5.1 Error: need MAIL command');
  assert.ok(!seen.mails.some((m) => m.mail.address === 'injected@evil.example'));
  d.destroy();

  // The parser of the TLS session is guarded too.
  const e = await hello(port);
  assert.equal(await e.cmd('STARTTLS'), '220 2.0.0 Ready to start TLS');
  await e.startTls(cert);
  e.write('EHLO client.example\nMAIL FROM:<a@sender.example>\r\n');
  assert.deepEqual(await e.rest(), [
    '521 5.5.2 mx.gateway.test Error: bare LF in command line refused # NMTP_ERR_GW_BARE_LINE_END',
  ]);
  assert.equal(events.filter((x) => x.name === 'smtp.tls').length, 3);
  assert.match(String(events.find((x) => x.name === 'smtp.tls')!.fields.tls), /^TLSv1\.[23] /);
});

test('a non-ASCII address without SMTPUTF8 on MAIL is refused with 553 5.6.7', async () => {
  const { port, seen } = await start();
  const c = await hello(port);
  assert.equal(
    await c.cmd('MAIL FROM:<jörg@example.org>'),
    '553 5.6.7 Error: non-ASCII sender address needs SMTPUTF8 # NMTP_ERR_GW_SMTPUTF8_REQUIRED',
  );
  assert.equal(seen.mails.length, 0);
  assert.equal(await c.cmd('MAIL FROM:<a@example.org>'), '250 2.1.0 Accepted');
  assert.equal(
    await c.cmd('RCPT TO:<ü@example.org>'),
    '553 5.6.7 Error: non-ASCII recipient address needs SMTPUTF8 # NMTP_ERR_GW_SMTPUTF8_REQUIRED',
  );
  assert.equal(seen.rcpts.length, 0);
  assert.equal(await c.cmd('RSET'), '250 2.0.0 Flushed');
  assert.equal(await c.cmd('MAIL FROM:<jörg@example.org> SMTPUTF8'), '250 2.1.0 Accepted');
  assert.equal(await c.cmd('RCPT TO:<ü@bücher.example>'), '250 2.1.5 Accepted');
  assert.equal(seen.mails[1]!.mail.address, 'jörg@example.org');
  assert.equal(seen.mails[1]!.mail.smtputf8, true);
  assert.equal(seen.rcpts[0]!.rcpt.address, 'ü@bücher.example');
  // Octets that are not UTF-8 are not an address at all.
  c.write(
    Buffer.concat([
      Buffer.from('RSET\r\nMAIL FROM:<j'),
      Buffer.of(0xf6),
      Buffer.from('rg@example.org> SMTPUTF8\r\n'),
    ]),
  );
  assert.equal(await c.reply(), '250 2.0.0 Flushed');
  assert.equal(
    await c.reply(),
    '553 5.1.7 Error: sender address is not UTF-8 # NMTP_ERR_ADDR_LEGACY_SYNTAX',
  );
  c.destroy();
});

/** Starts a transaction up to the 354. */
async function toData(c: RawClient): Promise<void> {
  c.write('MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n');
  assert.deepEqual(
    [await c.reply(), await c.reply(), await c.reply()],
    ['250 2.1.0 Accepted', '250 2.1.5 Accepted', '354 End data with <CR><LF>.<CR><LF>'],
  );
}

/** Nothing the handler completed holds a bare CR/LF or NUL; at most `max` messages came. */
function neverAccepted(seen: Seen, max: number): void {
  assert.ok(seen.data.length <= max, `${seen.data.length} messages reached the handler`);
  for (const d of seen.data) {
    if (d.bytes !== undefined) assert.equal(findLineEndFault(d.bytes), undefined);
    else assert.ok(d.error instanceof NmtpError);
  }
}

test('smuggling in a command line: bare LF, bare CR, CR CR LF, NUL → 521 5.5.2 and close, never acted on', async () => {
  const { port, seen } = await start();
  const shapes = [
    'MAIL FROM:<a@sender.example>\nRCPT TO:<b@x.example>\r\n',
    'MAIL FROM:<a@sender.example>\rRCPT TO:<b@x.example>\r\n',
    'MAIL FROM:<a@sender.example>\r\r\n',
    'MAIL FROM:<a@sender.example>\0\r\n',
    'NOOP\n',
  ];
  for (const shape of shapes) {
    for (const trickle of [false, true]) {
      const c = await hello(port);
      if (trickle) await c.trickle(shape);
      else c.write(shape);
      const rest = await c.rest();
      assert.equal(rest.length, 1, JSON.stringify([shape, rest]));
      assert.match(
        rest[0]!,
        /^521 5\.5\.2 mx\.gateway\.test Error: (bare LF|bare CR|NUL) in command line refused # NMTP_ERR_GW_BARE_LINE_END$/,
      );
      await c.closed;
    }
  }
  assert.equal(seen.mails.length, 0, 'no faulty MAIL reached the handler');
  // A line without any line end at the client's FIN is not a command either.
  const c = await hello(port);
  c.write('MAIL FROM:<a@sender.example>');
  c.socket.end();
  await c.closed;
  assert.equal(seen.mails.length, 0);
});

test('smuggling in DATA: every shape is refused (521, close); no message with a bare CR/LF is ever accepted', async () => {
  const { port, seen, events } = await start();
  const shapes = [
    // <LF>.<CR><LF>: a receiver that takes a bare LF as a line end sees the message end here.
    `body\r\n\n.\r\n${SMUGGLED}`,
    // <CR>.<CR>
    `body\r\n\r.\r${SMUGGLED}`,
    // \r\r\n
    `body\r\r\n.\r\r\n${SMUGGLED}`,
    // bare LF inside a line
    `line one\nline two\r\n.\r\n`,
    // <LF>.<LF>
    `body\n.\n${SMUGGLED}`,
    // NUL
    `body\0\r\n.\r\n`,
  ];
  let n = 0;
  for (const shape of shapes) {
    for (const trickle of [false, true]) {
      const c = await hello(port);
      await toData(c);
      // The real end of the data follows the shape in every case.
      const octets = `${shape}\r\n.\r\nMAIL FROM:<after@x.example>\r\n`;
      if (trickle) await c.trickle(octets);
      else c.write(octets);
      const rest = await c.rest();
      assert.equal(rest.length, 1, JSON.stringify([shape, trickle, rest]));
      assert.match(
        rest[0]!,
        /^521 5\.5\.2 mx\.gateway\.test Error: (bare LF|bare CR|NUL) in message data refused # NMTP_ERR_GW_BARE_LINE_END$/,
      );
      await c.closed;
      n++;
      neverAccepted(seen, n);
      assert.equal(seen.data.length, n, 'exactly one message per connection reached the handler');
      assert.equal(seen.data.at(-1)!.bytes, undefined, 'and its stream failed');
    }
  }
  // Neither the smuggled MAIL nor the one pipelined after the real end was acted on.
  assert.deepEqual([...new Set(seen.mails.map((m) => m.mail.address))], ['a@sender.example']);
  assert.equal(
    events.filter((e) => e.name === 'smtp.message.refused').length,
    n,
    'each refusal is reported',
  );
});

test('a handler that swallows the stream error still cannot get its message accepted', async () => {
  const { port } = await start({
    script: {
      async data(_s, _m, _r, message) {
        try {
          for await (const _ of message) void _;
        } catch {
          // ignores the error and claims success
        }
        return { code: 250, enhanced: '2.0.0', text: 'queued anyway' };
      },
    },
  });
  const c = await hello(port);
  await toData(c);
  c.write('a\nb\r\n.\r\n');
  assert.deepEqual(await c.rest(), [
    '521 5.5.2 mx.gateway.test Error: bare LF in message data refused # NMTP_ERR_GW_BARE_LINE_END',
  ]);
});

test('a message past the size limit gets 552 5.3.4; the session goes on', async () => {
  const { port, seen } = await start({ config: smtpConfig({ messageSize: 100 }) });
  const c = await hello(port);
  await toData(c);
  c.write(`${'x'.repeat(70)}\r\n${'y'.repeat(70)}\r\n.\r\n`);
  assert.equal(
    await c.reply(),
    '552 5.3.4 Error: message exceeds fixed maximum message size 100 # NMTP_ERR_MIME_TOO_LARGE',
  );
  assert.ok(seen.data[0]!.error instanceof NmtpError);
  assert.equal(seen.data[0]!.bytes, undefined);
  // Exactly at the limit is fine.
  await toData(c);
  c.write(`${'z'.repeat(98)}\r\n.\r\n`);
  assert.equal(await c.reply(), '250 2.0.0 queued');
  assert.equal(seen.data[1]!.bytes?.length, 100);
  assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
});

test('connect refusal by the handler, and a handler that throws at DATA', async () => {
  const refusing = await start({
    script: {
      async connect() {
        return {
          code: 554,
          enhanced: '5.7.1',
          text: 'no service for you',
          err: 'NMTP_ERR_GW_RELAY_DENIED',
        };
      },
    },
  });
  const c = await RawClient.open(refusing.port);
  assert.deepEqual(await c.rest(), ['554 5.7.1 no service for you # NMTP_ERR_GW_RELAY_DENIED']);

  const failing = await start({
    script: {
      async data(_s, _m, _r, message) {
        for await (const _ of message) void _;
        throw new Error('queue down');
      },
    },
  });
  const d = await hello(failing.port);
  await toData(d);
  d.write(`${MSG}.\r\n`);
  assert.equal(
    await d.reply(),
    '451 4.3.0 Error: local error, try again later # NMTP_ERR_INTERNAL',
  );
  assert.equal(await d.cmd('NOOP'), '250 2.0.0 OK');
  d.destroy();
});

test("events use the log catalog's names and fields", async () => {
  const { port, events } = await start();
  const c = await hello(port);
  await c.cmd('MAIL FROM:<jörg@example.org>');
  assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
  await c.closed;
  const bad = await hello(port);
  bad.write('NOOP\n');
  await bad.closed;
  for (;;) {
    if (events.filter((e) => e.name === 'smtp.disconnect').length >= 2) break;
    await new Promise((r) => setImmediate(r));
  }
  const names = events.map((e) => e.name);
  for (const want of ['smtp.connect', 'smtp.mail.refused', 'smtp.refused', 'smtp.disconnect']) {
    assert.ok(names.includes(want as SmtpListenerEvent), `${want} in ${names.join(' ')}`);
  }
  for (const e of events) {
    const spec = EVENTS[e.name].fields as readonly string[];
    const allowed = new Set(spec.map((f) => f.replace(/\?$/, '')));
    for (const k of Object.keys(e.fields)) assert.ok(allowed.has(k), `${e.name}: field ${k}`);
    for (const f of spec.filter((f) => !f.endsWith('?'))) {
      assert.ok(f in e.fields, `${e.name}: required ${f}`);
    }
  }
});
