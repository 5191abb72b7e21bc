/**
 * smtp-in's decisions, event by event, over the real embedded queue in a temporary
 * directory (a scripted router stands for DNS): no open relay, routing at RCPT, bare line
 * ends refused, size limits, conversion refused in the session, one signed 'nmtp' entry and
 * one 'smtp' entry per message, 250 only once both are stored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyPairFromSeed, printDomainKeyRecord } from '../../src/core/keys/index.ts';
import { verifyMessage } from '../../src/core/message/index.ts';
import { staticTxtResolver } from '../../src/dns/txt.ts';
import { Queue } from '../../src/queue/queue.ts';
import { DEFAULT_CONFIG, validateConfig, type GatewayConfig } from '../../src/gateway/config.ts';
import { entryMeta, recipientMeta } from '../../src/gateway/envelope.ts';
import type {
  AcceptedRcpt,
  MailFrom,
  RouteDecision,
  Router,
  SmtpReply,
  SmtpSession,
} from '../../src/gateway/ports.ts';
import { SmtpIn } from '../../src/gateway/smtp-in.ts';
import type { Reply } from '../../src/core/wire/index.ts';

const key = keyPairFromSeed(new Uint8Array(32).fill(9));
const T = 1_800_000_000_000;

/** Routes by domain: *.nmtp.test → nmtp, *.legacy.test → smtp, dns-down.test → temperror. */
const router: Router = {
  async route(address: string): Promise<RouteDecision> {
    const domain = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
    if (domain === 'dns-down.test') return { transport: 'temperror', address, why: 'SERVFAIL' };
    if (!address.includes('@'))
      return { transport: 'invalid', address, err: 'NMTP_ERR_ADDR_MISSING_AT', why: 'no @' };
    if (domain.endsWith('legacy.test'))
      return { transport: 'smtp', address, via: 'domain', why: 'test' };
    return { transport: 'nmtp', address: address.toLowerCase(), via: 'domain', why: 'test' };
  },
};

async function setup(
  over: Record<string, unknown> = {},
): Promise<{ gw: SmtpIn; queue: Queue; config: GatewayConfig }> {
  const config = validateConfig({
    smtp: {
      relay: { networks: ['10.0.0.0/8'], domains: ['relay.nmtp.test', 'legacy.test'] },
      ...over,
    },
  });
  const queue = await Queue.open({
    dir: mkdtempSync(join(tmpdir(), 'gw-smtp-in-')),
    deliver: async () => ({ recipients: [] }),
    timers: false,
  });
  let n = 0;
  const gw = new SmtpIn({
    config,
    router,
    queue,
    key,
    now: () => T,
    random: (k) => new Uint8Array(k).fill(++n),
  });
  return { gw, queue, config };
}

const session = (ip: string, extra: Partial<SmtpSession> = {}): SmtpSession => ({
  id: 's1',
  protocol: 'smtp',
  remoteAddress: ip,
  remotePort: 40000,
  helo: 'client.example',
  tls: false,
  ...extra,
});
const mail = (address: string, extra: Partial<MailFrom> = {}): MailFrom => ({
  address,
  smtputf8: false,
  ...extra,
});

async function* chunks(...parts: (string | Uint8Array)[]): AsyncIterable<Uint8Array> {
  for (const p of parts) yield typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
}

const MSG =
  'From: Alice <alice@sender.example>\r\nTo: bob@relay.nmtp.test\r\nSubject: =?UTF-8?B?SMOpbGxv?=\r\n' +
  'Message-ID: <m1@sender.example>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n\r\nHi Bob.\r\n';

async function accept(
  gw: SmtpIn,
  s: SmtpSession,
  m: MailFrom,
  rcpts: string[],
): Promise<AcceptedRcpt[]> {
  const out: AcceptedRcpt[] = [];
  for (const address of rcpts) {
    const r = await gw.rcptTo(s, m, { address }, out);
    assert.ok('note' in r, `${address} refused: ${JSON.stringify(r)}`);
    out.push({ address, note: r.note });
  }
  return out;
}

test('not an open relay: outside networks only relay domains are accepted at RCPT', async () => {
  const { gw, queue } = await setup();
  const outside = session('192.0.2.7');
  const m = mail('someone@sender.example');
  const r = await gw.rcptTo(outside, m, { address: 'victim@elsewhere.example' }, []);
  assert.ok('reply' in r);
  assert.equal(r.reply.code, 554);
  assert.equal(r.reply.enhanced, '5.7.1');
  assert.equal(r.reply.err, 'NMTP_ERR_GW_RELAY_DENIED');
  // A relay domain, a domain of the gateway's own receiver: accepted from anyone.
  assert.ok('note' in (await gw.rcptTo(outside, m, { address: 'bob@relay.nmtp.test' }, [])));
  assert.ok('note' in (await gw.rcptTo(outside, m, { address: 'x@demo.nmtp.test' }, [])));
  // Inside the permitted network (also as an IPv4-mapped IPv6 address), or authenticated: anything.
  assert.ok(
    'note' in (await gw.rcptTo(session('10.1.2.3'), m, { address: 'a@elsewhere.example' }, [])),
  );
  assert.ok(
    'note' in
      (await gw.rcptTo(session('::ffff:10.1.2.3'), m, { address: 'a@elsewhere.example' }, [])),
  );
  assert.ok(
    'note' in
      (await gw.rcptTo(
        session('192.0.2.7', { user: 'u' }),
        m,
        { address: 'a@elsewhere.example' },
        [],
      )),
  );
  await queue.close();
});

test('RCPT: routing failures are answered in the session, with the right class', async () => {
  const { gw, queue } = await setup();
  const s = session('10.0.0.1');
  const m = mail('a@sender.example');
  const temp = await gw.rcptTo(s, m, { address: 'x@dns-down.test' }, []);
  assert.ok('reply' in temp && temp.reply.code === 451 && temp.reply.enhanced === '4.4.3');
  const bad = await gw.rcptTo(s, m, { address: 'no-at-sign' }, []);
  assert.ok(
    'reply' in bad && bad.reply.code === 550 && bad.reply.err === 'NMTP_ERR_ADDR_MISSING_AT',
  );
  const utf8 = await gw.rcptTo(s, m, { address: 'jösé@relay.nmtp.test' }, []);
  assert.ok('reply' in utf8 && utf8.reply.code === 553, 'non-ASCII without SMTPUTF8');
  const many = await setup({ limits: { recipients: 2 } });
  const two = await accept(many.gw, s, m, ['a@relay.nmtp.test', 'b@relay.nmtp.test']);
  const third = await many.gw.rcptTo(s, m, { address: 'c@relay.nmtp.test' }, two);
  assert.ok('reply' in third && third.reply.code === 452 && third.reply.enhanced === '4.5.3');
  await queue.close();
  await many.queue.close();
});

test('MAIL: a bad reverse-path is refused, the null sender and a quoted local part are not', async () => {
  const { gw, queue } = await setup();
  const s = session('10.0.0.1');
  assert.equal(await gw.mailFrom(s, mail('')), undefined);
  assert.equal(await gw.mailFrom(s, mail('"john doe"@sender.example')), undefined);
  const bad = await gw.mailFrom(s, mail('not an address'));
  assert.equal(bad?.code, 553);
  const big = await gw.mailFrom(
    s,
    mail('a@sender.example', { size: DEFAULT_CONFIG.smtp.limits.messageSize + 1 }),
  );
  assert.equal(big?.code, 552);
  await queue.close();
});

test('DATA: one signed nmtp entry and one smtp entry, stored before the 250', async () => {
  const { gw, queue, config } = await setup();
  const s = session('10.0.0.1');
  const m = mail('alice@sender.example', { envid: 'E1', ret: 'HDRS' });
  const rcpts = await accept(gw, s, m, ['Bob@relay.nmtp.test', 'carol@legacy.test']);
  rcpts[0] = { ...rcpts[0]!, notify: 'SUCCESS,FAILURE' };
  const r = (await gw.data(s, m, rcpts, chunks(MSG.slice(0, 7), MSG.slice(7)))) as SmtpReply;
  assert.equal(r.code, 250, r.text);
  const id = /queued as (\S+)/.exec(r.text)![1]!;

  const n = await queue.get(id);
  assert.ok(n);
  assert.equal(n.kind, 'nmtp');
  assert.deepEqual(
    n.recipients.map((x) => x.rcpt),
    ['bob@relay.nmtp.test'],
  );
  const meta = entryMeta(n.meta)!;
  assert.equal(meta.mailFrom, 'alice@sender.example');
  assert.equal(meta.envid, 'E1');
  assert.equal(meta.trust?.trustedRelay, true);
  assert.match(meta.headers!, /^From: Alice/);
  assert.equal(recipientMeta(n.recipients[0]!.meta)?.notify, 'SUCCESS,FAILURE');
  assert.equal(recipientMeta(n.recipients[0]!.meta)?.legacy, 'Bob@relay.nmtp.test');

  // The framed message carries the gateway's signature for its recipient, and verifies.
  const src = await queue.message(id);
  assert.ok(src);
  const chunksOut: Uint8Array[] = [];
  for await (const c of src.pieces('full')) chunksOut.push(Uint8Array.from(c));
  const framed = Buffer.concat(chunksOut);
  assert.match(framed.toString('utf8'), /Subject: Héllo/);
  const txt = staticTxtResolver(
    new Map([
      [
        `${config.gateway.selector}._nmtpkey.${config.gateway.domain}`,
        [printDomainKeyRecord({ publicKey: key.publicKey, flags: '' })],
      ],
    ]),
  );
  const v = await verifyMessage(framed, {
    resolveTxt: txt,
    now: T / 1000,
    recipient: 'bob@relay.nmtp.test',
  });
  assert.deepEqual(
    v.signatures.map((x) => x.status),
    ['valid'],
  );

  const l = await queue.get(`${id}-s`);
  assert.ok(l);
  assert.equal(l.kind, 'smtp');
  assert.deepEqual(
    l.recipients.map((x) => x.rcpt),
    ['carol@legacy.test'],
  );
  const legacy = await queue.message(`${id}-s`);
  const parts: Uint8Array[] = [];
  for await (const c of legacy!.pieces('full')) parts.push(Uint8Array.from(c));
  const text = Buffer.concat(parts).toString('utf8');
  assert.match(
    text,
    /^Received: from client\.example \(unknown \[10\.0\.0\.1\]\)\r\n\tby localhost/,
  );
  assert.ok(text.endsWith(MSG), 'the original octets follow unchanged');
  await queue.close();
});

test('DATA: bare LF, bare CR and NUL are refused whatever the split, and nothing is queued', async () => {
  for (const bad of ['a\nb', 'a\rb', 'a\r\r\nb', 'x\n.\r\n', 'x\r.\r', 'nul\0here']) {
    const { gw, queue } = await setup();
    const s = session('10.0.0.1');
    const m = mail('a@sender.example');
    const rcpts = await accept(gw, s, m, ['b@relay.nmtp.test']);
    const body = `${MSG}${bad}\r\n`;
    for (let cut = MSG.length - 1; cut < body.length; cut++) {
      const r = (await gw.data(
        s,
        m,
        rcpts,
        chunks(body.slice(0, cut), body.slice(cut)),
      )) as SmtpReply;
      assert.equal(r.code, 550, JSON.stringify(bad));
      assert.equal(r.err, 'NMTP_ERR_GW_BARE_LINE_END');
    }
    assert.deepEqual(await queue.list(), []);
    await queue.close();
  }
});

test('DATA: size and header limits, and a message that cannot be converted is refused in the session', async () => {
  const { gw, queue } = await setup({ limits: { messageSize: 400, headerSize: 200 } });
  const s = session('10.0.0.1');
  const m = mail('a@sender.example');
  const rcpts = await accept(gw, s, m, ['b@relay.nmtp.test']);
  const big = (await gw.data(s, m, rcpts, chunks(MSG, 'x'.repeat(400), '\r\n'))) as SmtpReply;
  assert.deepEqual([big.code, big.enhanced], [552, '5.3.4']);
  const longHeader = `X-Long: ${'y'.repeat(250)}\r\n${MSG}`;
  const hdr = (await gw.data(s, m, rcpts, chunks(longHeader.slice(0, 390)))) as SmtpReply;
  assert.deepEqual([hdr.code, hdr.enhanced], [552, '5.3.4']);
  // No From: NMTP requires an author (§50); refused with its code, nothing stored.
  const noFrom = (await gw.data(s, m, rcpts, chunks('Subject: x\r\n\r\nbody\r\n'))) as SmtpReply;
  assert.equal(Math.floor(noFrom.code / 100), 5);
  assert.match(noFrom.err ?? '', /^NMTP_ERR_MIME_/);
  assert.deepEqual(await queue.list(), []);
  await queue.close();
});

test('LMTP without an answer budget: one "queued" reply per accepted recipient', async () => {
  const { gw, queue } = await setup({ answerBudget: 0 });
  const s = session('10.0.0.1', { protocol: 'lmtp' });
  const m = mail('a@sender.example');
  const rcpts = await accept(gw, s, m, ['b@relay.nmtp.test', 'c@legacy.test']);
  const r = (await gw.data(s, m, rcpts, chunks(MSG))) as SmtpReply[];
  assert.equal(r.length, 2);
  assert.ok(r.every((x) => x.code === 250));
  await queue.close();
});

test("LMTP with an answer budget: the receiver's own answers per recipient, marked so no DSN repeats them", async () => {
  const config = validateConfig({ smtp: { relay: { networks: ['10.0.0.0/8'] }, answerBudget: 5 } });
  const seen: string[][] = [];
  const queue = await Queue.open({
    dir: mkdtempSync(join(tmpdir(), 'gw-smtp-in-')),
    // The receiver accepts bob, refuses carol for good, and defers dave.
    deliver: async (r) => ({
      recipients: (r.job.kind === 'deliver' ? r.job.recipients : []).map((rcpt) => ({
        rcpt,
        reply: (rcpt.startsWith('bob')
          ? { code: 250, enhanced: '2.0.0', params: { id: 'R1' }, text: '' }
          : rcpt.startsWith('carol')
            ? {
                code: 550,
                enhanced: '5.1.1',
                params: { err: 'NMTP_ERR_TRANSPORT_RCPT_UNKNOWN' },
                text: 'no such mailbox',
              }
            : {
                code: 350,
                enhanced: '2.0.0',
                params: { cookie: 'C1', min: '60', max: '600' },
                text: '',
              }) as Reply,
      })),
    }),
    observer: async (s) => {
      seen.push(
        s.recipients.map((r) => `${r.rcpt}:${r.state}:${recipientMeta(r.meta)?.answered === true}`),
      );
      return undefined;
    },
  });
  let n = 0;
  const gw = new SmtpIn({ config, router, queue, key, random: (k) => new Uint8Array(k).fill(++n) });
  const s = session('10.0.0.1', { protocol: 'lmtp' });
  const m = mail('a@sender.example');
  const rcpts = await accept(gw, s, m, [
    'bob@relay.nmtp.test',
    'carol@relay.nmtp.test',
    'dave@relay.nmtp.test',
    'erin@legacy.test',
  ]);
  const r = (await gw.data(s, m, rcpts, chunks(MSG))) as SmtpReply[];
  assert.deepEqual(
    r.map((x) => x.code),
    [250, 550, 250, 250],
  );
  assert.match(r[0]!.text, /delivered over NMTP as R1/);
  assert.equal(r[1]!.enhanced, '5.1.1');
  assert.match(r[1]!.text, /no such mailbox/);
  assert.match(r[2]!.text, /queued as/);
  const id = /queued as (\S+)/.exec(r[2]!.text)![1]!;
  const stored = (await queue.get(id))!;
  assert.deepEqual(
    stored.recipients.map((x) => [x.rcpt, recipientMeta(x.meta)?.answered === true]),
    [
      // An acceptance is not a report: NOTIFY=SUCCESS still gets its DSN (RFC 3461 §5.2).
      ['bob@relay.nmtp.test', false],
      ['carol@relay.nmtp.test', true],
      ['dave@relay.nmtp.test', false],
    ],
  );
  assert.equal(entryMeta(stored.meta)?.answerUntil, undefined, 'the hold on DSNs is lifted');
  // The observer saw the entry once more after the marks.
  assert.ok(seen.some((x) => x.includes('carol@relay.nmtp.test:rejected:true')));
  await queue.close();
});
