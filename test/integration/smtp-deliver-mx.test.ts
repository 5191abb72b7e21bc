/**
 * The SMTP deliverer's capabilities known ahead, its DSN report, and delivery to MX hosts
 * (adapters/smtp-sender/smtp-deliver.ts, mx.ts, from-config.ts), against real smtp-server
 * sinks on 127.0.0.1 and ephemeral ports (test/adapters/smtp-sender/sink.ts) and a real DNS
 * server on loopback (dnsmasq, test/harness/dnsmasq.ts) for MX, A and null MX records.
 * Static MX records give each host its own ephemeral port; DNS-found hosts are reached on
 * smtpOut.port, the sink's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { smtpDeliverer, type SmtpDeliverer } from '../../adapters/smtp-sender/smtp-deliver.ts';
import { smtpDelivererOptions } from '../../adapters/smtp-sender/from-config.ts';
import { dnsMxResolver, type StaticMx } from '../../adapters/smtp-sender/mx.ts';
import { validateConfig } from '../../src/gateway/config.ts';
import type { MessageSource } from '../../src/client/source.ts';
import type { Json, SmtpDeliverRequest } from '../../src/queue/port.ts';
import { startDnsmasq } from '../harness/dnsmasq.ts';
import { startGreeter, startSink } from '../adapters/smtp-sender/sink.ts';
import { freeTcpPort } from '../support/net.ts';

const MESSAGE = Buffer.from(
  'From: alice@legacy.example\r\nTo: bob@a.example\r\nSubject: hi\r\nMessage-ID: <m1@legacy.example>\r\n\r\nhello\r\n',
);

function source(bytes: Uint8Array): MessageSource {
  return {
    size: bytes.length,
    layout: () => Promise.reject(new Error('not framed')),
    viewLength: async () => bytes.length,
    async *pieces() {
      yield bytes;
    },
  };
}

function request(
  recipients: readonly string[],
  o: { mailFrom?: string; meta?: Record<string, Json>; recipientMeta?: Json[] } = {},
): SmtpDeliverRequest {
  return {
    id: 'MX0123456789abcdefgh-s',
    mailFrom: o.mailFrom ?? 'alice@legacy.example',
    recipients,
    meta: { origin: 'smtp-in', mailFrom: o.mailFrom ?? 'alice@legacy.example', ...o.meta },
    recipientMeta: o.recipientMeta ?? recipients.map((r) => ({ legacy: r })),
    message: source(MESSAGE),
  };
}

const TIMEOUTS = { connection: 10_000, greeting: 10_000, socket: 30_000 };

function toSmarthost(port: number, now?: () => number): SmtpDeliverer {
  return smtpDeliverer({
    host: '127.0.0.1',
    port,
    tls: 'none',
    name: 'gw.example.net',
    timeouts: TIMEOUTS,
    capabilityTtl: 60_000,
    ...(now === undefined ? {} : { now }),
  });
}

/** MX delivery with static records (each host its own port), through the configuration. */
function toMx(staticMx: StaticMx[], extra: Record<string, unknown> = {}): SmtpDeliverer {
  const c = validateConfig({
    gateway: { hostname: 'gw.example.net' },
    smtpOut: { mode: 'mx', tls: 'none', staticMx, ...extra },
  });
  return smtpDeliverer({ ...smtpDelivererOptions(c), timeouts: TIMEOUTS });
}

const brief = (out: Awaited<ReturnType<SmtpDeliverer>>): unknown[] =>
  out.recipients.map((r) => [r.rcpt, r.code, r.enhanced ?? null]);

test('capabilities known ahead: unknown, probed once (EHLO and QUIT), kept for capabilityTtl', async () => {
  const full = await startSink({ size: 1_000_000 });
  const bare = await startSink({ smtputf8: false, eightBitMime: false, dsn: false, size: false });
  let t = 1_000_000;
  const send = toSmarthost(full.port, () => t);
  const other = toSmarthost(bare.port);
  try {
    assert.equal(send.capabilities(), undefined);
    const want = { smtputf8: true, eightBitMime: true, dsn: true, size: 1_000_000 };
    assert.deepEqual(await send.probe(), want);
    assert.equal(full.connections(), 1);
    assert.equal(full.transactions.length, 0);
    // Known now, without a connection; a second probe uses what is known.
    assert.deepEqual(send.capabilities('whoever@any.example'), want);
    assert.deepEqual(await send.probe(), want);
    assert.equal(full.connections(), 1);
    // capabilityTtl later it is unknown again; concurrent probes share one connection.
    t += 60_000;
    assert.equal(send.capabilities(), undefined);
    const [a, b] = await Promise.all([send.probe(), send.probe()]);
    assert.deepEqual([a, b], [want, want]);
    assert.equal(full.connections(), 2);

    assert.deepEqual(await other.probe(), { smtputf8: false, eightBitMime: false, dsn: false });
  } finally {
    await send.close();
    await other.close();
    await full.close();
    await bare.close();
  }

  // A delivery teaches them too; a server that cannot be reached leaves them unknown.
  const sink = await startSink();
  const send2 = toSmarthost(sink.port);
  const nobody = toSmarthost(await freeTcpPort());
  try {
    assert.equal(send2.capabilities(), undefined);
    assert.equal((await send2(request(['bob@a.example']))).recipients[0]!.code, 250);
    assert.equal(send2.capabilities()?.smtputf8, true);
    assert.equal(sink.connections(), 1);
    assert.equal(await nobody.probe(), undefined);
    assert.equal(nobody.capabilities(), undefined);
  } finally {
    await send2.close();
    await nobody.close();
    await sink.close();
  }
});

test('DSN: a 2xx says whether the server offered it; NOTIFY, ORCPT, RET and ENVID only go to one that does', async () => {
  const meta = { ret: 'HDRS', envid: 'QQ42' };
  const recipientMeta = [
    {
      legacy: 'bob@a.example',
      notify: 'SUCCESS,FAILURE,DELAY',
      orcpt: { type: 'rfc822', address: 'bob@a.example' },
    },
  ];
  for (const dsn of [true, false]) {
    const sink = await startSink({ dsn });
    const send = toSmarthost(sink.port);
    try {
      const out = await send(request(['bob@a.example'], { meta, recipientMeta }));
      assert.deepEqual(
        out.recipients.map((r) => [r.code, r.dsn]),
        [[250, dsn]],
      );
      const tx = sink.transactions[0]!;
      if (dsn) {
        assert.equal(tx.mailArgs['RET'], 'HDRS');
        assert.equal(tx.mailArgs['ENVID'], 'QQ42');
        assert.equal(tx.rcptArgs[0]!['NOTIFY'], 'SUCCESS,FAILURE,DELAY');
        assert.equal(tx.rcptArgs[0]!['ORCPT'], 'rfc822;bob@a.example');
      } else {
        for (const k of ['RET', 'ENVID']) assert.equal(tx.mailArgs[k], undefined);
        for (const k of ['NOTIFY', 'ORCPT']) assert.equal(tx.rcptArgs[0]![k], undefined);
      }
    } finally {
      await send.close();
      await sink.close();
    }
  }
});

test('MX: by preference, the next host when one is down or greets 4xx/5xx; a refusal ends the search', async () => {
  const down = await freeTcpPort();
  const busy = await startGreeter('421 4.3.2 mx busy, try another');
  const closed = await startGreeter('554 5.3.2 no SMTP service here');
  const sink = await startSink({
    rcpt: (a) => (a.startsWith('bad@') ? '550 5.1.1 no such user' : undefined),
  });
  const backup = await startSink();
  const send = toMx([
    { domain: 'a.example', exchange: '127.0.0.1', preference: 5, port: down },
    { domain: 'a.example', exchange: '127.0.0.1', preference: 10, port: busy.port },
    { domain: 'a.example', exchange: '127.0.0.1', preference: 15, port: closed.port },
    { domain: 'a.example', exchange: '127.0.0.1', preference: 20, port: sink.port },
    { domain: 'a.example', exchange: '127.0.0.1', preference: 30, port: backup.port },
  ]);
  try {
    const out = await send(request(['bob@a.example', 'bad@A.example']));
    assert.equal(out.failure, undefined);
    assert.deepEqual(brief(out), [
      ['bob@a.example', 250, null],
      ['bad@A.example', 550, '5.1.1'],
    ]);
    assert.equal(busy.connections(), 1);
    assert.equal(closed.connections(), 1);
    assert.deepEqual(
      sink.transactions.map((x) => x.rcptTo),
      [['bob@a.example']],
    );
    // A host that answered (even 550) ends the search: the backup saw nothing.
    assert.equal(backup.connections(), 0);
    // The capabilities of the host that served the domain are known, by domain or address.
    assert.equal(send.capabilities('a.example')?.dsn, true);
    assert.equal(send.capabilities('carol@A.EXAMPLE')?.smtputf8, true);
    assert.equal(send.capabilities('b.example'), undefined);
    assert.equal(send.capabilities(), undefined);
  } finally {
    await send.close();
    await Promise.all([busy.close(), closed.close(), sink.close(), backup.close()]);
  }
});

test('MX: every host failing is a temporary failure naming each; maxAddresses bounds the tries', async () => {
  const busy = await startGreeter('421 4.3.2 busy');
  const later = await startSink();
  const records = [1, 2, 3].map((p) => ({
    domain: 'a.example',
    exchange: '127.0.0.1',
    preference: p,
    port: busy.port,
  }));
  const send = toMx(
    [...records, { domain: 'a.example', exchange: '127.0.0.1', preference: 9, port: later.port }],
    {
      maxAddresses: 3,
    },
  );
  try {
    const out = await send(request(['bob@a.example']));
    assert.deepEqual(out.recipients, []);
    assert.equal(busy.connections(), 3);
    assert.equal(later.connections(), 0);
    assert.equal(out.failure?.split('; ').length, 3);
    assert.match(out.failure ?? '', /\[127\.0\.0\.1\]:\d+: .*421 4\.3\.2 busy/);
  } finally {
    await send.close();
    await busy.close();
    await later.close();
  }
});

test('MX: recipients of several domains are delivered per domain and the answers merged; a null MX is 556 5.1.10', async () => {
  const a = await startSink();
  const b = await startSink({ rcpt: () => '452 4.2.2 mailbox full' });
  const send = toMx([
    { domain: 'a.example', exchange: '127.0.0.1', preference: 0, port: a.port },
    { domain: 'bücher.example', exchange: '127.0.0.1', preference: 0, port: b.port },
    { domain: 'null.example', exchange: '.', preference: 0 },
  ]);
  try {
    const out = await send(
      request(['x@null.example', 'bob@a.example', 'hans@bücher.example', 'carol@a.example']),
    );
    assert.equal(out.failure, undefined);
    assert.deepEqual(brief(out), [
      ['x@null.example', 556, '5.1.10'],
      ['bob@a.example', 250, null],
      ['hans@bücher.example', 452, '4.2.2'],
      ['carol@a.example', 250, null],
    ]);
    assert.match(out.recipients[0]!.text, /null MX.*NMTP_ERR_GW_NULL_MX/);
    // One transaction per domain, each with only its own recipients.
    assert.deepEqual(
      a.transactions.map((x) => x.rcptTo),
      [['bob@a.example', 'carol@a.example']],
    );
    assert.equal(b.transactions.length, 0);
    assert.equal(b.connections(), 1);
  } finally {
    await send.close();
    await a.close();
    await b.close();
  }
});

test('MX: a server without SMTPUTF8 refuses a non-ASCII address 553 5.6.7, naming the host', async () => {
  const sink = await startSink({ smtputf8: false });
  const send = toMx([
    { domain: 'a.example', exchange: '127.0.0.1', preference: 0, port: sink.port },
  ]);
  try {
    const out = await send(request(['björn@a.example', 'bob@a.example']));
    assert.deepEqual(brief(out), [
      ['björn@a.example', 553, '5.6.7'],
      ['bob@a.example', 553, '5.6.7'],
    ]);
    assert.match(
      out.recipients[0]!.text,
      /not offered by host \[127\.0\.0\.1\]:\d+ .*NMTP_ERR_GW_SMTPUTF8_NOT_OFFERED/,
    );
    assert.equal(sink.transactions.length, 0);
    // The probe that learnt it is what capabilities() and probe() answer for the domain.
    assert.equal(send.capabilities('a.example')?.smtputf8, false);
    assert.equal((await send.probe('a.example'))?.smtputf8, false);
    assert.equal(sink.connections(), 1);
  } finally {
    await send.close();
    await sink.close();
  }
});

test('MX from a real DNS server: MX by preference, an MX host without address skipped, implicit MX, NXDOMAIN, null MX, an address literal', async () => {
  const sink = await startSink();
  const dns = await startDnsmasq({
    mx: new Map([
      [
        'mx.example',
        [
          { exchange: 'gone.mx.example', preference: 5 },
          { exchange: 'in.mx.example', preference: 10 },
        ],
      ],
      ['nomail.example', [{ exchange: '.', preference: 0 }]],
    ]),
    addresses: new Map([
      ['in.mx.example', ['127.0.0.1']],
      ['implicit.example', ['127.0.0.1']],
    ]),
    txt: new Map([['txtonly.example', ['v=spf1 -all']]]),
  });
  const c = validateConfig({
    gateway: { hostname: 'gw.example.net' },
    smarthost: { host: '' },
    smtpOut: { port: sink.port, tls: 'none' },
    routing: { dnsServers: [dns.address] },
  });
  const send = smtpDeliverer({ ...smtpDelivererOptions(c), timeouts: TIMEOUTS });
  try {
    const out = await send(
      request([
        'bob@mx.example',
        'ann@implicit.example',
        'x@nowhere.example',
        'y@nomail.example',
        'z@txtonly.example',
        'lit@[127.0.0.1]',
      ]),
    );
    assert.equal(out.failure, undefined);
    assert.deepEqual(brief(out), [
      ['bob@mx.example', 250, null],
      ['ann@implicit.example', 250, null],
      ['x@nowhere.example', 550, '5.4.4'],
      ['y@nomail.example', 556, '5.1.10'],
      // The name exists (a TXT record) but has neither MX nor address: no mail server.
      ['z@txtonly.example', 550, '5.4.4'],
      // An address literal is its own host (RFC 5321 §4.1.3), no DNS.
      ['lit@[127.0.0.1]', 250, null],
    ]);
    assert.match(out.recipients[2]!.text, /NMTP_ERR_GW_MX_NOT_FOUND/);
    // Each server's answer names it as Postfix's relay= does: the MX host's name and the
    // address it was reached at (the log line, and a DSN's Remote-MTA).
    assert.deepEqual(
      out.recipients.map((r) => r.relay ?? null),
      [
        `in.mx.example[127.0.0.1]:${sink.port}`,
        `implicit.example[127.0.0.1]:${sink.port}`,
        null,
        null,
        null,
        `[127.0.0.1]:${sink.port}`,
      ],
    );
    assert.deepEqual(sink.transactions.map((x) => x.rcptTo).sort(), [
      ['ann@implicit.example'],
      ['bob@mx.example'],
      ['lit@[127.0.0.1]'],
    ]);
    // probe() by domain, through DNS; a domain that takes no mail has none.
    assert.equal((await send.probe('mx.example'))?.eightBitMime, true);
    assert.equal(await send.probe('nomail.example'), undefined);
  } finally {
    await send.close();
    await sink.close();
    await dns.stop();
  }
});

test('MX: STARTTLS is opportunistic by default (Postfix `may`): used when offered, certificate unchecked', async () => {
  const tls = await startSink({ starttls: true });
  const plain = await startSink();
  const c = validateConfig({
    smtpOut: {
      mode: 'mx',
      staticMx: [
        { domain: 'tls.example', exchange: '127.0.0.1', port: tls.port },
        { domain: 'plain.example', exchange: '127.0.0.1', port: plain.port },
      ],
    },
  });
  assert.equal(c.smtpOut.tls, 'opportunistic');
  const send = smtpDeliverer({ ...smtpDelivererOptions(c), timeouts: TIMEOUTS });
  try {
    const out = await send(request(['a@tls.example', 'b@plain.example']));
    assert.deepEqual(brief(out), [
      ['a@tls.example', 250, null],
      ['b@plain.example', 250, null],
    ]);
    // smtp-server's own self-signed certificate: accepted, the session encrypted.
    assert.deepEqual(
      tls.transactions.map((x) => x.secure),
      [true],
    );
    assert.deepEqual(
      plain.transactions.map((x) => x.secure),
      [false],
    );
  } finally {
    await send.close();
    await tls.close();
    await plain.close();
  }
});

test('MX: a DNS server that does not answer is a temporary failure, no answer', async () => {
  const resolver = dnsMxResolver({
    servers: [`127.0.0.1:${await freeTcpPort()}`],
    timeoutMs: 200,
    tries: 1,
  });
  const send = smtpDeliverer({ mode: 'mx', resolver, tls: 'none', name: 'gw.example.net' });
  try {
    const out = await send(request(['bob@a.example']));
    assert.deepEqual(out.recipients, []);
    assert.match(out.failure ?? '', /MX a\.example: E/);
  } finally {
    await send.close();
  }
});
