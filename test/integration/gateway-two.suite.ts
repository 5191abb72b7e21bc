/**
 * Two gateways, every part real: swaks → Postfix → (LMTP) → gateway A → NMTP over TLS →
 * gateway B's receiver, which holds b.nmtp.test.
 *
 *   swaks ──SMTP──▶ Postfix ──nmtp-lmtp──▶ gateway A ──NMTP──▶ gateway B ──▶ B's maildir
 *                                          (a.gw.test: no    (b.gw.test: its receiver
 *                                           receiver; SRV     knows A's key record, so it
 *                                           for b.nmtp.test   verifies A's HELLO proof and
 *                                           is static, B's    A's signature)
 *                                           cert its CA)
 *
 * A's key exists before B starts (B must know A's record); B starts first on port 0, so A's
 * static SRV record is written once B's port is known. Checked at B: headers decoded to
 * UTF-8, a multipart message's parts intact (an attachment byte for byte), the signature
 * valid under B's view of the keys; SMTPUTF8 (a UTF-8 local part and subject) with an 8bit
 * body; and a 25 MB attachment (34 MB as base64) under a 40 MiB SIZE limit.
 *
 * The suite runs once per queue backend (gateway-two.test.ts: embedded,
 * gateway-two-bullmq.test.ts: BullMQ on a private Redis, one key prefix per gateway).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type RunningGateway } from '../../src/cli/gateway-start.ts';
import { getField, type Part } from '../../src/core/frame/index.ts';
import { verifyMessage } from '../../src/core/message/index.ts';
import { staticTxtResolver } from '../../src/dns/txt.ts';
import { validateConfig } from '../../src/gateway/config.ts';
import { entryMeta } from '../../src/gateway/envelope.ts';
import { startPostfix, type PostfixInstance } from '../harness/postfix.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import { RawSmtp, swaks } from '../harness/swaks.ts';
import {
  entriesFrom,
  makeGatewayKey,
  recordingLog,
  settledState,
  storedWithId,
  tail,
  until,
  type GatewayKey,
  type LogEvent,
  type StoredMessage,
} from '../support/gateway-e2e.ts';
import { readStored } from '../support/stored.ts';
import { startSink, type Sink } from '../adapters/smtp-sender/sink.ts';

/** 40 MiB, as the Postfix instance's message_size_limit: a 25 MB attachment fits. */
const SIZE_LIMIT = 40 * 1024 * 1024;

export function twoGateways(backend: 'embedded' | 'bullmq'): void {
  let dir: string;
  let redis: RedisServer | undefined;
  let env: NodeJS.ProcessEnv = {};
  const queueOf = (name: string): Record<string, unknown> =>
    backend === 'bullmq'
      ? { backend: 'bullmq', prefix: `gw-${name}` }
      : { dir: join(dir, name, 'queue') };
  let pf: PostfixInstance;
  let keyA: GatewayKey;
  let gwA: RunningGateway;
  let gwB: RunningGateway;
  let mailB: string;
  /** B's legacy side: the SMTP peer of B's reverse direction (rt.legacy.test). */
  let legacyB: Sink;
  const logs: { a: LogEvent[]; b: LogEvent[] } = { a: [], b: [] };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gw-two-'));
    mailB = join(dir, 'b', 'maildir');
    pf = await startPostfix({ users: ['sender'] });
    if (backend === 'bullmq') {
      redis = await startRedis();
      env = { NMTP_GATEWAY_REDIS_URL: redis.url };
    }
    keyA = makeGatewayKey(dir, 'a.gw.test', 'gwa');
    legacyB = await startSink({ dsn: false });

    // B: its receiver holds b.nmtp.test and is named 127.0.0.1, so its demo certificate
    // names the address A's SRV record points at (a matching name, no insecurePeers).
    const b = recordingLog();
    logs.b = b.events;
    gwB = await startGateway(
      validateConfig({
        gateway: {
          hostname: '127.0.0.1',
          domain: 'b.gw.test',
          selector: 'gwb',
          stateDir: join(dir, 'b'),
          services: ['qmgr', 'nmtp-receiver'],
        },
        nmtp: { receiver: { listen: '127.0.0.1:0', domains: ['b.nmtp.test'], maildir: mailB } },
        // A's key record, known without DNS: B verifies A's HELLO proof and signature with it.
        routing: { staticRecords: { txt: [{ name: keyA.keyName, value: keyA.keyRecord }] } },
        // B's reverse direction: rt.legacy.test is hosted on B's legacy side (the sink).
        reverse: { domains: ['rt.legacy.test'] },
        smarthost: { host: `127.0.0.1:${legacyB.port}`, tls: 'none' },
        queue: queueOf('b'),
        admin: { listen: '' },
      }),
      { log: b.log, env },
    );
    assert.ok(gwB.ports['nmtp'] !== undefined, 'B runs its receiver');

    const a = recordingLog();
    logs.a = a.events;
    gwA = await startGateway(
      validateConfig({
        gateway: {
          hostname: 'localhost',
          domain: 'a.gw.test',
          selector: 'gwa',
          keyFile: keyA.keyFile,
          stateDir: join(dir, 'a'),
        },
        smtp: {
          listeners: [{ protocol: 'lmtp', listen: '127.0.0.1:0' }],
          limits: { messageSize: SIZE_LIMIT },
        },
        nmtp: {
          receiver: { enabled: false },
          // B's demo certificate (made when B started): the one CA A trusts for B.
          peerCa: join(dir, 'b', 'tls', '127.0.0.1.crt'),
        },
        routing: {
          staticRecords: {
            srv: [
              { domain: 'b.nmtp.test', target: '127.0.0.1', port: gwB.ports['nmtp'] },
              { domain: 'rt.legacy.test', target: '127.0.0.1', port: gwB.ports['nmtp'] },
            ],
          },
        },
        smarthost: { host: `127.0.0.1:${pf.returnPort}`, tls: 'none' },
        queue: { ...queueOf('a'), retry: { initial: 1, maxInterval: 2, maxAge: 300 } },
        admin: { listen: '' },
      }),
      { log: a.log, env },
    );
    await pf.setTransport({
      'b.nmtp.test': `nmtp-lmtp:inet:127.0.0.1:${gwA.ports['lmtp:0']}`,
      'rt.legacy.test': `nmtp-lmtp:inet:127.0.0.1:${gwA.ports['lmtp:0']}`,
    });
  });

  after(async () => {
    await gwA?.close();
    await gwB?.close();
    await pf?.stop();
    await legacyB?.close();
    await redis?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const context = (): string =>
    `--- gateway A ---\n${tail(logs.a)}\n--- gateway B ---\n${tail(logs.b)}`;

  /** Waits for exactly one copy of the message at B and returns it. */
  async function arrivedAtB(messageId: string, ms = 30_000): Promise<StoredMessage> {
    const [m] = await until(
      () => {
        const found = storedWithId(mailB, messageId);
        return found.length > 0 ? found : undefined;
      },
      `${messageId} in B's maildir`,
      ms,
      context,
    );
    return m!;
  }

  /** Verifies the stored copy as B sees the keys: A's record, and nothing else. */
  async function verifiedAtB(stored: StoredMessage, recipient: string): Promise<void> {
    const v = await verifyMessage(stored.bytes, {
      resolveTxt: staticTxtResolver(new Map([[keyA.keyName, [keyA.keyRecord]]])),
      now: Math.floor(Date.now() / 1000),
      recipient,
    });
    assert.deepEqual(
      v.signatures.map((s) => [s.status, s.signature?.domain]),
      [['valid', 'a.gw.test']],
    );
  }

  const leaf = (p: Part | undefined): Uint8Array => {
    assert.ok(p !== undefined && 'body' in p, 'a leaf part');
    return p.body;
  };

  function base64Lines(bytes: Uint8Array): string {
    const b64 = Buffer.from(bytes).toString('base64');
    const lines: string[] = [];
    for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
    return lines.join('\r\n');
  }

  test("both directions: swaks → Postfix → A → NMTP → B → SMTP (B's legacy side), signature verified by B", async () => {
    const r = await swaks({
      server: { port: pf.port },
      from: 'sender@local.test',
      to: 'carol@rt.legacy.test',
      data:
        `From: sender@local.test\r\nTo: carol@rt.legacy.test\r\n` +
        `Subject: =?UTF-8?Q?Hin_und_zur=C3=BCck?=\r\nMessage-ID: <two-rt@local.test>\r\n\r\n` +
        `Round trip.\r\n`,
    });
    assert.equal(r.code, 0, r.transcript);
    const t = await until(
      () => legacyB.transactions.find((x) => x.rcptTo.includes('carol@rt.legacy.test')),
      "the message at B's legacy side",
      30_000,
      context,
    );
    const text = t.data.toString('utf8');
    // A converted and signed it; B verified A's signature and converted it back.
    assert.match(text, /^Authentication-Results: 127\.0\.0\.1; nmtp=pass header\.d=a\.gw\.test/m);
    assert.match(text, /^Received: from a\.gw\.test \(\[127\.0\.0\.1\]\)/m);
    assert.match(text, /^Message-I[Dd]: <two-rt@local\.test>/m);
    assert.match(text, /^Subject: .*=\?(UTF|utf)-8\?|^Subject: Hin und zurück/m);
    assert.match(text, /Round trip\./);
    assert.match(t.mailFrom, /^nmtp-return\+r[a-z2-7]{26}\.[0-9a-f]{32}@b\.gw\.test$/);
    // A got B's answer (accepted): nothing stays queued at A for carol.
    const state = await settledState(
      gwA.queue,
      'sender@local.test',
      'carol@rt.legacy.test',
      context,
    );
    assert.equal(state, 'accepted', context());
  });

  test('swaks → Postfix → gateway A → NMTP → gateway B: UTF-8 headers, multipart parts intact, signature valid at B', async () => {
    const attachment = randomBytes(100_000);
    const r = await swaks({
      server: { port: pf.port },
      from: 'sender@local.test',
      to: 'bob@b.nmtp.test',
      data:
        `From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <sender@local.test>\r\n` +
        `To: Bob <bob@b.nmtp.test>\r\n` +
        `Subject: =?UTF-8?B?${Buffer.from('Bericht für Köln ✓').toString('base64')}?=\r\n` +
        `Message-ID: <two-1@local.test>\r\n` +
        `MIME-Version: 1.0\r\n` +
        `Content-Type: multipart/mixed; boundary="==b1=="\r\n\r\n` +
        `This is a multi-part message in MIME format.\r\n` +
        `--==b1==\r\n` +
        `Content-Type: text/plain; charset=iso-8859-1\r\n` +
        `Content-Transfer-Encoding: quoted-printable\r\n\r\n` +
        `Gr=FC=DFe aus K=F6ln.\r\n` +
        `--==b1==\r\n` +
        `Content-Type: application/pdf; name="=?UTF-8?Q?Bericht-K=C3=B6ln.pdf?="\r\n` +
        `Content-Disposition: attachment; filename*=UTF-8''Bericht-K%C3%B6ln.pdf\r\n` +
        `Content-Transfer-Encoding: base64\r\n\r\n` +
        `${base64Lines(attachment)}\r\n` +
        `--==b1==--\r\n`,
    });
    assert.equal(r.code, 0, r.transcript);
    const stored = await arrivedAtB('<two-1@local.test>');
    const root = stored.message.root;
    assert.equal(getField(root.fields, 'Subject'), 'Bericht für Köln ✓');
    assert.match(getField(root.fields, 'From') ?? '', /Jörg Müller/);
    assert.equal(getField(root.fields, 'Legacy-Gateway'), 'a.gw.test');
    assert.ok('children' in root, 'the multipart message stays a container');
    assert.equal(root.children.length, 2);
    const [text, pdf] = root.children;
    assert.equal(getField(text!.fields, 'Content-Type'), 'text/plain');
    assert.equal(Buffer.from(leaf(text)).toString('utf8'), 'Grüße aus Köln.');
    assert.equal(getField(pdf!.fields, 'Content-Type'), 'application/pdf');
    assert.equal(getField(pdf!.fields, 'Content-Filename'), 'Bericht-Köln.pdf');
    assert.ok(Buffer.from(leaf(pdf)).equals(attachment), 'the attachment, byte for byte');
    await verifiedAtB(stored, 'bob@b.nmtp.test');
    // B's Received field: the client was A, authenticated by its HELLO proof.
    const received = readStored(stored.file).received;
    assert.equal(received.domain, 'a.gw.test');
    assert.equal(received.proof, 'pass');
  });

  test('SMTPUTF8 end to end: a UTF-8 local part and subject, an 8bit body (BODY=8BITMIME)', async () => {
    const c = await RawSmtp.connect(pf.port);
    try {
      const ehlo = await c.command('EHLO client.local.test');
      assert.equal(ehlo.code, 250);
      assert.ok(ehlo.lines.includes('SMTPUTF8'), ehlo.raw);
      assert.ok(ehlo.lines.includes('8BITMIME'), ehlo.raw);
      const mail = await c.command('MAIL FROM:<sender@local.test> SMTPUTF8 BODY=8BITMIME');
      assert.equal(mail.code, 250, mail.raw);
      const rcpt = await c.command('RCPT TO:<jörg@b.nmtp.test>');
      assert.equal(rcpt.code, 250, rcpt.raw);
      assert.equal((await c.command('DATA')).code, 354);
      await c.send(
        Buffer.from(
          'From: Sender <sender@local.test>\r\nTo: Jörg <jörg@b.nmtp.test>\r\n' +
            'Subject: Grüße aus Köln — 日本語\r\nMessage-ID: <two-utf8@local.test>\r\n' +
            'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n' +
            'Content-Transfer-Encoding: 8bit\r\n\r\nSchöne Grüße, Jörg — 日本語.\r\n.\r\n',
          'utf8',
        ),
      );
      const end = await c.reply();
      assert.equal(end.code, 250, end.raw);
      await c.quit();
    } finally {
      c.close();
    }
    const stored = await arrivedAtB('<two-utf8@local.test>');
    const root = stored.message.root;
    assert.equal(getField(root.fields, 'Subject'), 'Grüße aus Köln — 日本語');
    assert.match(getField(root.fields, 'To') ?? '', /jörg@b\.nmtp\.test/);
    assert.match(getField(root.fields, 'Legacy-Envelope-To') ?? '', /jörg@b\.nmtp\.test/);
    assert.equal(Buffer.from(leaf(root)).toString('utf8'), 'Schöne Grüße, Jörg — 日本語.\r\n');
    await verifiedAtB(stored, 'jörg@b.nmtp.test');
    assert.equal(readStored(stored.file).received.rcpt, 'jörg@b.nmtp.test');
    // Postfix passed both extensions on over LMTP: A's queue entry kept them (a DSN about
    // this message would be written with them).
    const entry = (await entriesFrom(gwA.queue, 'sender@local.test')).find((s) =>
      entryMeta(s.meta)?.headers?.includes('<two-utf8@local.test>'),
    );
    assert.ok(entry !== undefined, 'A queued the message');
    assert.equal(entryMeta(entry.meta)?.smtputf8, true);
    assert.equal(entryMeta(entry.meta)?.eightBit, true);
  });

  test('a 25 MB attachment through Postfix → gateway A → gateway B under a 40 MiB SIZE limit', async () => {
    // The limit is announced where Postfix hands mail over (LMTP LHLO).
    const c = await RawSmtp.connect(gwA.ports['lmtp:0']!);
    try {
      const lhlo = await c.command('LHLO postfix.test');
      assert.equal(lhlo.code, 250);
      assert.ok(lhlo.lines.includes(`SIZE ${SIZE_LIMIT}`), lhlo.raw);
      await c.quit();
    } finally {
      c.close();
    }
    const attachment = randomBytes(25_000_000);
    const digest = createHash('sha256').update(attachment).digest('hex');
    const r = await swaks({
      server: { port: pf.port },
      from: 'sender@local.test',
      to: 'big@b.nmtp.test',
      timeoutSeconds: 120,
      data:
        'From: sender@local.test\r\nTo: big@b.nmtp.test\r\nSubject: 25 MB\r\n' +
        'Message-ID: <two-big@local.test>\r\nMIME-Version: 1.0\r\n' +
        'Content-Type: multipart/mixed; boundary="big"\r\n\r\n' +
        '--big\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThe archive.\r\n' +
        '--big\r\nContent-Type: application/octet-stream\r\n' +
        'Content-Disposition: attachment; filename="archive.bin"\r\n' +
        `Content-Transfer-Encoding: base64\r\n\r\n${base64Lines(attachment)}\r\n--big--\r\n`,
    });
    assert.equal(r.code, 0, r.transcript.slice(-2000));
    const stored = await arrivedAtB('<two-big@local.test>', 80_000);
    const root = stored.message.root;
    assert.ok('children' in root);
    const bin = leaf(root.children[1]);
    assert.equal(bin.length, attachment.length);
    assert.equal(createHash('sha256').update(bin).digest('hex'), digest);
    await verifiedAtB(stored, 'big@b.nmtp.test');
  });
}
