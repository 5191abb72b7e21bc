/**
 * The SMTP deliverer (adapters/smtp-sender/smtp-deliver.ts) against real SMTP servers on
 * 127.0.0.1 and ephemeral ports: Postfix's smtp-sink (test/harness/postfix.ts; it offers
 * DSN and 8BITMIME but not SMTPUTF8), and a scripted SMTP responder written here over
 * node:net that answers each recipient as told, offers the extensions a test asks for, and
 * records the exact octets of every command and of the DATA stream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { smtpDeliverer, type SmtpDeliverer } from '../../adapters/smtp-sender/smtp-deliver.ts';
import { parseDsn } from '../../adapters/dsn/index.ts';
import { createDsnService } from '../../src/gateway/dsn.ts';
import { asJson, type EntryMeta } from '../../src/gateway/envelope.ts';
import { Queue } from '../../src/queue/queue.ts';
import type { MessageSource } from '../../src/client/source.ts';
import type { View } from '../../src/core/session/index.ts';
import type { Json, SmtpDeliverRequest } from '../../src/queue/port.ts';
import { startSmtpSink } from '../harness/postfix.ts';
import { freeTcpPort } from '../support/net.ts';

/** A legacy message in memory, `full` view only, in small reused pieces (the queue's contract). */
function rawSource(bytes: Uint8Array): MessageSource {
  const only = (v: View): void => assert.equal(v, 'full');
  return {
    size: bytes.length,
    layout: () => Promise.reject(new Error('not framed')),
    viewLength: async (v) => (only(v), bytes.length),
    async *pieces(v, max = 4096) {
      only(v);
      const buf = new Uint8Array(max);
      for (let i = 0; i < bytes.length; i += max) {
        const n = Math.min(max, bytes.length - i);
        buf.set(bytes.subarray(i, i + n));
        yield buf.subarray(0, n);
      }
    },
  };
}

/** A CRLF message with what dot-stuffing and 8-bit transport must leave intact. */
const MESSAGE = Buffer.concat([
  Buffer.from(
    [
      'Received: from mx1.legacy.example by gw.example.net; Sun, 29 Nov 2026 03:40:00 +0000',
      'From: Alice <alice@legacy.example>',
      'To: bob@legacy.example',
      'Subject: dots and octets',
      'Message-ID: <dots@legacy.example>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=iso-8859-1',
      'Content-Transfer-Encoding: 8bit',
      '',
      '.a line that starts with a dot',
      '.',
      '..two dots',
      'x'.repeat(990),
      '',
    ].join('\r\n'),
  ),
  Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0d, 0x0a]), // "café" in ISO-8859-1
  Buffer.from(' trailing space line \r\nlast line\r\n'),
]);

interface Transaction {
  mailFrom: string;
  rcptTo: string[];
  /** The DATA stream as it came off the wire, dot-stuffed, without the final ".". */
  wire?: Buffer;
  /** The message after dot-unstuffing: what the server hands on. */
  message?: Buffer;
}

interface Responder {
  readonly port: number;
  readonly transactions: Transaction[];
  /** Every command line received, in order, per connection. */
  readonly commands: string[];
  close(): Promise<void>;
}

interface ResponderOptions {
  /** EHLO keywords after the greeting line (default PIPELINING, 8BITMIME, DSN, ENHANCEDSTATUSCODES). */
  readonly extensions?: readonly string[];
  /** The reply to MAIL FROM (default 250 2.1.0 Ok). */
  readonly mail?: (args: string) => string;
  /** The reply to each RCPT TO, by address (default 250 2.1.5 Ok). */
  readonly rcpt?: (address: string) => string;
  /** The reply after the final "." (default 250 2.0.0 Ok: queued as T1). */
  readonly data?: () => string;
}

/** A scripted SMTP server on 127.0.0.1:0 that records the exact octets it receives. */
async function startResponder(o: ResponderOptions = {}): Promise<Responder> {
  const transactions: Transaction[] = [];
  const commands: string[] = [];
  const sockets = new Set<Socket>();
  const extensions = o.extensions ?? ['PIPELINING', '8BITMIME', 'DSN', 'ENHANCEDSTATUSCODES'];
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let inData = false;
    let current: Transaction | undefined;
    let accepted = 0;
    const reply = (s: string): void => void sock.write(s + '\r\n');
    sock.write('220 responder.test ESMTP\r\n');
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (inData) {
          // The data ends at CRLF "." CRLF (the message itself ends in CRLF).
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          const wire = buf.subarray(0, end + 2);
          buf = buf.subarray(end + 5);
          inData = false;
          const t = current!;
          t.wire = Buffer.from(wire);
          // RFC 5321 §4.5.2: a leading dot of a line is removed.
          t.message = Buffer.from(wire.toString('latin1').replace(/(^|\r\n)\./g, '$1'), 'latin1');
          reply(o.data?.() ?? '250 2.0.0 Ok: queued as T1');
          current = undefined;
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.subarray(0, nl).toString('utf8');
        buf = buf.subarray(nl + 2);
        commands.push(line);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') {
          const lines = ['responder.test', ...extensions];
          lines.forEach((l, i) => reply(`250${i === lines.length - 1 ? ' ' : '-'}${l}`));
        } else if (verb === 'HELO') reply('250 responder.test');
        else if (verb === 'MAIL') {
          const r = o.mail?.(line.slice(10)) ?? '250 2.1.0 Ok';
          if (r.startsWith('2')) {
            current = { mailFrom: line.slice(10), rcptTo: [] };
            transactions.push(current);
            accepted = 0;
          }
          reply(r);
        } else if (verb === 'RCPT') {
          const address = /<([^>]*)>/.exec(line)?.[1] ?? '';
          const r =
            current === undefined
              ? '503 5.5.1 Error: need MAIL command'
              : (o.rcpt?.(address) ?? '250 2.1.5 Ok');
          if (r.startsWith('2')) {
            accepted++;
            current!.rcptTo.push(line.slice(8));
          }
          reply(r);
        } else if (verb === 'DATA') {
          if (current === undefined || accepted === 0)
            reply('554 5.5.1 Error: no valid recipients');
          else {
            inData = true;
            reply('354 End data with <CR><LF>.<CR><LF>');
          }
        } else if (verb === 'RSET') {
          current = undefined;
          reply('250 2.0.0 Ok');
        } else if (verb === 'NOOP') reply('250 2.0.0 Ok');
        else if (verb === 'QUIT') {
          reply('221 2.0.0 Bye');
          sock.end();
          return;
        } else reply('502 5.5.2 Error: command not recognized');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    transactions,
    commands,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function request(
  recipients: readonly string[],
  o: {
    mailFrom?: string;
    meta?: Record<string, Json>;
    recipientMeta?: readonly (Json | undefined)[];
    message?: Uint8Array;
  } = {},
): SmtpDeliverRequest {
  return {
    id: 'QQ0123456789abcdefgh-s',
    mailFrom: o.mailFrom ?? 'alice@legacy.example',
    recipients,
    meta: {
      origin: 'smtp-in',
      mailFrom: o.mailFrom ?? 'alice@legacy.example',
      arrival: 0,
      ...o.meta,
    },
    recipientMeta: o.recipientMeta ?? recipients.map((r) => ({ legacy: r })),
    message: rawSource(o.message ?? MESSAGE),
  };
}

function deliverer(port: number, tls: 'none' | 'opportunistic' = 'opportunistic'): SmtpDeliverer {
  return smtpDeliverer({
    host: '127.0.0.1',
    port,
    tls,
    name: 'gw.example.net',
    timeouts: { connection: 10_000, greeting: 10_000, socket: 30_000 },
  });
}

test('per-recipient answers: 250, 550 and 450 in one transaction; the octets arrive unchanged', async () => {
  const server = await startResponder({
    extensions: ['PIPELINING', '8BITMIME', 'SIZE 10240000', 'DSN', 'ENHANCEDSTATUSCODES'],
    rcpt: (a) =>
      a.startsWith('bad@')
        ? `550 5.1.1 <${a}>: Recipient address rejected: User unknown`
        : a.startsWith('busy@')
          ? '450 4.2.0 <busy@legacy.example>: Mailbox busy'
          : '250 2.1.5 Ok',
    data: () => '250 2.0.0 Ok: queued as 4XyZ',
  });
  const send = deliverer(server.port);
  try {
    const out = await send(
      request(['ok@legacy.example', 'bad@legacy.example', 'busy@legacy.example'], {
        meta: { eightBit: true },
      }),
    );
    assert.equal(out.failure, undefined);
    assert.deepEqual(out.recipients, [
      // The responder offers DSN: a 2xx says so (NOTIFY=SUCCESS reached it).
      {
        rcpt: 'ok@legacy.example',
        code: 250,
        enhanced: '2.0.0',
        text: 'Ok: queued as 4XyZ',
        dsn: true,
        // Each answer names the server that gave it (the log's relay=, a DSN's Remote-MTA).
        relay: `127.0.0.1:${server.port}`,
      },
      {
        rcpt: 'bad@legacy.example',
        code: 550,
        enhanced: '5.1.1',
        text: '<bad@legacy.example>: Recipient address rejected: User unknown',
        relay: `127.0.0.1:${server.port}`,
      },
      {
        rcpt: 'busy@legacy.example',
        code: 450,
        enhanced: '4.2.0',
        text: '<busy@legacy.example>: Mailbox busy',
        relay: `127.0.0.1:${server.port}`,
      },
    ]);
    assert.equal(server.transactions.length, 1);
    const t = server.transactions[0]!;
    assert.equal(t.mailFrom, `<alice@legacy.example> BODY=8BITMIME SIZE=${MESSAGE.length}`);
    assert.deepEqual(t.rcptTo, ['<ok@legacy.example>']);
    // What the server hands on is exactly what was queued; on the wire, lines starting
    // with "." carry one more (RFC 5321 §4.5.2).
    assert.ok(t.message!.equals(MESSAGE));
    assert.ok(t.wire!.includes('\r\n...two dots\r\n'));
    assert.ok(t.wire!.includes('\r\n..\r\n'));
    assert.ok(t.wire!.includes(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0d, 0x0a])));
  } finally {
    await send.close();
    await server.close();
  }
});

test('every recipient refused: each keeps its own RCPT answer, and no DATA is sent', async () => {
  const server = await startResponder({
    rcpt: (a) => (a.startsWith('bad@') ? '550 5.1.1 no such user' : '451 4.3.0 try later'),
  });
  const send = deliverer(server.port);
  try {
    const out = await send(request(['bad@legacy.example', 'later@legacy.example']));
    assert.equal(out.failure, undefined);
    assert.deepEqual(
      out.recipients.map((r) => [r.rcpt, r.code, r.enhanced, r.text]),
      [
        ['bad@legacy.example', 550, '5.1.1', 'no such user'],
        ['later@legacy.example', 451, '4.3.0', 'try later'],
      ],
    );
    assert.equal(server.transactions[0]!.message, undefined);
  } finally {
    await send.close();
    await server.close();
  }
});

test('a refused MAIL FROM or a refused message answers every recipient alike', async () => {
  for (const [opts, code, enhanced] of [
    [{ mail: () => '553 5.7.1 <alice@legacy.example>: Sender address rejected' }, 553, '5.7.1'],
    [{ data: () => '554 5.7.1 Message rejected: spam' }, 554, '5.7.1'],
    [{ data: () => '451 4.3.0 Error: queue file write error' }, 451, '4.3.0'],
  ] as const) {
    const server = await startResponder(opts);
    const send = deliverer(server.port);
    try {
      const out = await send(request(['a@legacy.example', 'b@legacy.example']));
      assert.equal(out.failure, undefined);
      assert.deepEqual(
        out.recipients.map((r) => [r.rcpt, r.code, r.enhanced]),
        [
          ['a@legacy.example', code, enhanced],
          ['b@legacy.example', code, enhanced],
        ],
      );
    } finally {
      await send.close();
      await server.close();
    }
  }
});

test('the null reverse-path goes out as MAIL FROM:<> (Postfix smtp-sink records it)', async () => {
  const sink = await startSmtpSink();
  const send = deliverer(sink.port, 'none');
  try {
    const out = await send(
      request(['alice@legacy.example'], { mailFrom: '', meta: { origin: 'dsn', eightBit: true } }),
    );
    assert.deepEqual(
      out.recipients.map((r) => [r.rcpt, r.code]),
      [['alice@legacy.example', 250]],
    );
    const [m] = await sink.waitForMessages(1);
    assert.equal(m!.mailFrom, '<> BODY=8BITMIME');
    assert.deepEqual(m!.rcptTo, ['<alice@legacy.example>']);
    // smtp-sink writes lines with LF; the content is the queued message.
    assert.equal(m!.data.toString('latin1').replace(/\n/g, '\r\n'), MESSAGE.toString('latin1'));
  } finally {
    await send.close();
    await sink.stop();
  }
});

test('RFC 3461 parameters travel on: RET, ENVID per message, NOTIFY and ORCPT per recipient', async () => {
  const meta = { ret: 'FULL', envid: 'QQ+314159' } as const;
  const recipientMeta = [
    {
      legacy: 'bob@legacy.example',
      notify: 'success,failure',
      orcpt: { type: 'rfc822', address: 'bob@legacy.example' },
    },
    { legacy: 'carol@legacy.example', notify: 'NEVER' },
    { legacy: 'dave@legacy.example' },
    {
      legacy: 'erin@legacy.example',
      notify: 'FAILURE,DELAY',
      orcpt: { type: 'rfc822', address: 'érin@légacy.example' },
    },
  ];
  const rcpts = recipientMeta.map((r) => r.legacy);
  // Postfix's smtp-sink offers DSN: it records the parameters as received.
  {
    const sink = await startSmtpSink();
    const send = deliverer(sink.port, 'none');
    try {
      const out = await send(request(rcpts, { meta, recipientMeta }));
      assert.deepEqual(
        out.recipients.map((r) => r.code),
        [250, 250, 250, 250],
      );
      // Each 2xx says the peer offered DSN, so a success DSN may come back.
      assert.deepEqual(
        out.recipients.map((r) => r.dsn),
        [true, true, true, true],
      );
      const got = await sink.waitForMessages(4);
      const byRcpt = new Map(got.map((m) => [m.rcptTo.join(' | '), m.mailFrom]));
      assert.deepEqual([...byRcpt.keys()].sort(), [
        '<bob@legacy.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@legacy.example',
        '<carol@legacy.example> NOTIFY=NEVER',
        '<dave@legacy.example>',
        // RFC 6533 §3: a UTF-8 ORCPT is written as utf-8-addr-xtext.
        '<erin@legacy.example> NOTIFY=FAILURE,DELAY ORCPT=utf-8;\\x{E9}rin@l\\x{E9}gacy.example',
      ]);
      for (const from of byRcpt.values()) {
        // ENVID is xtext: "+" is written +2B.
        assert.match(from, /^<alice@legacy\.example> .*RET=FULL ENVID=QQ\+2B314159/);
      }
    } finally {
      await send.close();
      await sink.stop();
    }
  }
  // A server without DSN gets none of them (nodemailer leaves them off).
  {
    const server = await startResponder({ extensions: ['PIPELINING', '8BITMIME'] });
    const send = deliverer(server.port);
    try {
      const out = await send(request(rcpts, { meta, recipientMeta }));
      assert.deepEqual(
        out.recipients.map((r) => r.code),
        [250, 250, 250, 250],
      );
      // ... and the answers say so: no success DSN is to be expected.
      assert.deepEqual(
        out.recipients.map((r) => r.dsn),
        [false, false, false, false],
      );
      assert.ok(server.commands.every((c) => !/NOTIFY|ORCPT|RET=|ENVID/.test(c)));
    } finally {
      await send.close();
      await server.close();
    }
  }
});

test('SMTPUTF8: refused per recipient when the smarthost does not offer it, used when it does', async () => {
  const utf8 = Buffer.from(
    'From: Ålice <ålice@légacy.example>\r\nTo: bob@legacy.example\r\nSubject: naïve\r\n\r\nhi\r\n',
  );
  // smtp-sink offers no SMTPUTF8.
  const sink = await startSmtpSink();
  const send = deliverer(sink.port, 'none');
  try {
    // A UTF-8 return path (e.g. the DSN to such a sender, or its message).
    const a = await send(
      request(['bob@legacy.example', 'björn@legacy.example'], {
        mailFrom: 'ålice@légacy.example',
        meta: { smtputf8: true, eightBit: true },
        message: utf8,
      }),
    );
    assert.equal(a.failure, undefined);
    assert.deepEqual(
      a.recipients.map((r) => [r.rcpt, r.code, r.enhanced]),
      [
        ['bob@legacy.example', 553, '5.6.7'],
        ['björn@legacy.example', 553, '5.6.7'],
      ],
    );
    assert.match(a.recipients[0]!.text, /NMTP_ERR_GW_SMTPUTF8_NOT_OFFERED/);
    // ASCII addresses, UTF-8 header fields, received with SMTPUTF8.
    const b = await send(
      request(['bob@legacy.example'], { meta: { smtputf8: true, eightBit: true }, message: utf8 }),
    );
    assert.deepEqual(
      b.recipients.map((r) => [r.code, r.enhanced]),
      [[554, '5.6.9']],
    );
    assert.match(b.recipients[0]!.text, /NMTP_ERR_GW_SMTPUTF8_NOT_OFFERED/);
    // Nothing reached the sink; an IDN domain alone needs no SMTPUTF8 (sent as an A-label),
    // and the answer comes back under the address we asked for.
    const c = await send(request(['bob@bücher.example']));
    assert.deepEqual(
      c.recipients.map((r) => [r.rcpt, r.code]),
      [['bob@bücher.example', 250]],
    );
    const got = await sink.waitForMessages(1);
    assert.equal(got.length, 1);
    assert.deepEqual(got[0]!.rcptTo, ['<bob@xn--bcher-kva.example>']);
  } finally {
    await send.close();
    await sink.stop();
  }

  // A server that offers SMTPUTF8 gets the transaction with the keyword.
  const server = await startResponder({
    extensions: ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES'],
  });
  const send2 = deliverer(server.port);
  try {
    const out = await send2(
      request(['björn@legacy.example'], {
        mailFrom: 'ålice@légacy.example',
        meta: { smtputf8: true, eightBit: true },
        message: utf8,
      }),
    );
    assert.deepEqual(
      out.recipients.map((r) => [r.rcpt, r.code]),
      [['björn@legacy.example', 250]],
    );
    const t = server.transactions[0]!;
    assert.equal(t.mailFrom, '<ålice@légacy.example> SMTPUTF8 BODY=8BITMIME');
    assert.deepEqual(t.rcptTo, ['<björn@legacy.example>']);
    assert.ok(t.message!.equals(utf8));
  } finally {
    await send2.close();
    await server.close();
  }
});

test('connection refused: no answers, a temporary failure', async () => {
  const port = await freeTcpPort();
  const send = deliverer(port);
  try {
    const out = await send(request(['a@legacy.example', 'b@legacy.example']));
    assert.deepEqual(out.recipients, []);
    assert.match(out.failure ?? '', /ECONNREFUSED|ECONNECTION|ESOCKET/);
  } finally {
    await send.close();
  }
});

test('the pool keeps its connection across deliveries', async () => {
  const server = await startResponder();
  const send = deliverer(server.port);
  try {
    for (let i = 0; i < 3; i++) {
      const out = await send(request([`u${i}@legacy.example`]));
      assert.equal(out.recipients[0]!.code, 250);
    }
    const connections = server.commands.filter((c) => c.startsWith('EHLO')).length;
    assert.equal(server.transactions.length, 3);
    assert.equal(connections, 1);
    assert.ok(server.commands.includes('EHLO gw.example.net'));
  } finally {
    await send.close();
    await server.close();
  }
});

test('STARTTLS required but not offered: a temporary failure, nothing sent', async () => {
  const server = await startResponder();
  const send = smtpDeliverer({
    host: '127.0.0.1',
    port: server.port,
    tls: 'require',
    name: 'gw.example.net',
  });
  try {
    const out = await send(request(['a@legacy.example']));
    assert.deepEqual(out.recipients, []);
    assert.match(out.failure ?? '', /ETLS|STARTTLS/);
    assert.equal(server.transactions.length, 0);
  } finally {
    await send.close();
    await server.close();
  }
});

test('end to end: a recipient the smarthost refuses comes back to the sender as a DSN from <>', async () => {
  const server = await startResponder({
    rcpt: (a) =>
      a.startsWith('bad@') ? '550 5.1.1 <bad@legacy.example>: User unknown' : '250 2.1.5 Ok',
  });
  const dir = await mkdtemp(join(tmpdir(), 'nmtp-smtp-deliver-'));
  const send = deliverer(server.port);
  let queue: Queue | undefined;
  try {
    const q = (queue = await Queue.open({
      dir,
      timers: false,
      deliver: () => Promise.reject(new Error('no NMTP in this test')),
      smtpDeliver: send,
      observer: createDsnService({
        queue: () => queue!,
        hostname: 'gw.example.net',
        domain: 'example.net',
        delayWarning: 4 * 3600,
        // Only for answers that do not name their server: this one does (127.0.0.1).
        smarthost: 'smarthost.example.net',
      }),
    }));
    const meta: EntryMeta = {
      origin: 'smtp-in',
      mailFrom: 'alice@legacy.example',
      ret: 'FULL',
      arrival: Math.floor(Date.now() / 1000),
      trust: { authenticated: true, trustedRelay: false },
      headers: MESSAGE.subarray(0, MESSAGE.indexOf('\r\n\r\n') + 4).toString('latin1'),
    };
    await q.add({
      id: 'E2Eentry-s',
      user: 'alice@legacy.example',
      recipients: ['bad@legacy.example', 'ok@legacy.example'],
      kind: 'smtp',
      meta: asJson(meta),
      recipientMeta: [
        asJson({ legacy: 'bad@legacy.example' }),
        asJson({ legacy: 'ok@legacy.example' }),
      ],
      message: MESSAGE,
    });
    // The first pass: one transaction, bad refused, ok accepted; the DSN is queued.
    await q.tick();
    const entries = await q.list();
    const dsn = entries.find((e) => e.id.startsWith('E2Eentry-s-d'));
    assert.ok(dsn, `entries: ${entries.map((e) => e.id).join(', ')}`);
    assert.deepEqual(
      (await q.get('E2Eentry-s'))!.recipients.map((r) => r.state),
      ['rejected', 'accepted'],
    );
    // The next pass delivers the DSN with a null reverse-path to the sender.
    await q.tick();
    assert.equal(server.transactions.length, 2);
    const t = server.transactions[1]!;
    assert.equal(t.mailFrom.split(' ')[0], '<>');
    assert.deepEqual(t.rcptTo, ['<alice@legacy.example>']);
    const report = parseDsn(t.message!);
    assert.deepEqual(
      report.outcomes.map((o) => [
        o.recipient.legacy,
        o.action,
        o.status,
        o.remoteMta,
        o.diagnostic?.text,
      ]),
      [
        [
          'bad@legacy.example',
          'failed',
          '5.1.1',
          // Remote-MTA: the server that gave the answer, as the SMTP deliverer recorded it.
          '127.0.0.1',
          '550 5.1.1 <bad@legacy.example>: User unknown',
        ],
      ],
    );
    assert.deepEqual(
      (await q.get(dsn.id))!.recipients.map((r) => r.state),
      ['accepted'],
    );
  } finally {
    await queue?.close();
    await send.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});
