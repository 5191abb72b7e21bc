/**
 * The gateway beside a real Postfix, end to end, with every part real: swaks → Postfix A →
 * (transport_maps, lmtp: and smtp:) → the gateway's smtp-in → the queue → NMTP (TLS) → the
 * gateway's own NMTP receiver, checked on disk; a recipient the NMTP receiver refuses comes
 * back as an RFC 3464 DSN through Postfix into the sender's Maildir; a recipient routed to
 * the legacy side goes to Postfix's return listener; the smuggling variants sent raw to
 * smtp-in; /metrics counts the delivery.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDsn } from '../../adapters/dsn/index.ts';
import { decodeAndValidate, verifyMessage } from '../../src/core/message/index.ts';
import { getField } from '../../src/core/frame/index.ts';
import { staticTxtResolver } from '../../src/dns/txt.ts';
import { validateConfig } from '../../src/gateway/config.ts';
import { silentLog } from '../../src/gateway/observe/log.ts';
import { startGateway, type RunningGateway } from '../../src/cli/gateway-start.ts';
import { startPostfix, type PostfixInstance } from '../harness/postfix.ts';
import { RawSmtp, swaks } from '../harness/swaks.ts';

let pf: PostfixInstance;
let gw: RunningGateway;
let maildir: string;

before(async () => {
  pf = await startPostfix({ users: ['sender', 'carol'] });
  const dir = mkdtempSync(join(tmpdir(), 'gw-e2e-'));
  maildir = join(dir, 'maildir');
  const config = validateConfig({
    gateway: { stateDir: join(dir, 'state') },
    smtp: {
      listeners: [
        { protocol: 'lmtp', listen: '127.0.0.1:0' },
        { protocol: 'smtp', listen: '127.0.0.1:0' },
      ],
      relay: { networks: ['127.0.0.0/8'] },
    },
    nmtp: { receiver: { listen: '127.0.0.1:0', domains: ['demo.nmtp.test'], maildir } },
    routing: { domains: { 'local.test': 'smtp' } },
    smarthost: { host: `127.0.0.1:${pf.returnPort}`, tls: 'none' },
    queue: { dir: join(dir, 'queue'), retry: { initial: 1, maxInterval: 2, maxAge: 60 } },
    admin: { listen: '127.0.0.1:0' },
  });
  gw = await startGateway(config, { log: silentLog() });
  await pf.setTransport({
    'demo.nmtp.test': `nmtp-lmtp:inet:127.0.0.1:${gw.ports['lmtp:0']}`,
    'smtp.nmtp.test': `nmtp-smtp:[127.0.0.1]:${gw.ports['smtp:1']}`,
  });
});

after(async () => {
  await gw?.close();
  await pf?.stop();
});

function newFiles(): string[] {
  try {
    return readdirSync(join(maildir, 'new')).filter((n) => n.endsWith('.nmtp'));
  } catch {
    return [];
  }
}

async function until<T>(f: () => T | undefined, what: string, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('swaks → Postfix → LMTP → gateway → NMTP → mailbox: UTF-8 headers, signature verified', async () => {
  const before = newFiles().length;
  const r = await swaks({
    server: { port: pf.port },
    from: 'sender@local.test',
    to: 'bob@demo.nmtp.test',
    data:
      'From: Sender <sender@local.test>\nTo: bob@demo.nmtp.test\n' +
      'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\nMessage-ID: <e2e-1@local.test>\n' +
      'MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n' +
      'Content-Transfer-Encoding: quoted-printable\n\nSch=F6ne Gr=FC=DFe.\n',
  });
  assert.equal(r.code, 0, r.transcript);
  const names = await until(() => {
    const n = newFiles();
    return n.length > before ? n : undefined;
  }, 'the message in the NMTP mailbox');
  const bytes = new Uint8Array(readFileSync(join(maildir, 'new', names[names.length - 1]!)));
  const m = decodeAndValidate(bytes);
  assert.equal(getField(m.root.fields, 'Subject'), 'Grüße aus Köln');
  assert.ok('body' in m.root);
  assert.equal(Buffer.from(m.root.body).toString('utf8'), 'Schöne Grüße.\r\n');
  const v = await verifyMessage(bytes, {
    resolveTxt: staticTxtResolver(new Map([[gw.keyName, [gw.keyRecord]]])),
    now: Math.floor(Date.now() / 1000),
    recipient: 'bob@demo.nmtp.test',
  });
  assert.deepEqual(
    v.signatures.map((s) => s.status),
    ['valid'],
  );
});

test('a recipient the NMTP receiver refuses: an RFC 3464 DSN back through Postfix', async () => {
  writeFileSync(
    join(maildir, 'policy.json'),
    JSON.stringify({ reject: ['nobody@demo.nmtp.test'] }),
  );
  const r = await swaks({
    server: { port: pf.port },
    from: 'sender@local.test',
    to: 'nobody@demo.nmtp.test',
    headers: ['Subject: to be refused'],
  });
  assert.equal(r.code, 0, r.transcript);
  const [dsn] = await pf.waitForMail('sender', 1, 30_000);
  const parsed = parseDsn(new Uint8Array(dsn!.raw));
  assert.equal(parsed.outcomes[0]?.action, 'failed');
  assert.equal(parsed.outcomes[0]?.status.startsWith('5.'), true);
});

test('a recipient routed to the legacy side goes to the smarthost (Postfix) unchanged', async () => {
  const r = await swaks({
    server: { port: gw.ports['smtp:1']! },
    from: 'sender@local.test',
    to: 'carol@local.test',
    headers: ['Subject: back to legacy'],
  });
  assert.equal(r.code, 0, r.transcript);
  const [mail] = await pf.waitForMail('carol', 1, 30_000);
  assert.match(mail!.raw.toString(), /Subject: back to legacy/);
  assert.match(mail!.raw.toString(), /by localhost \(nmtp-gateway\)/);
});

test('smuggling variants sent raw to smtp-in: refused, never relayed', async () => {
  const variants = ['\n.\r\n', '\r.\r', '\r\r\n.\r\n', '\n.\n'];
  for (const v of variants) {
    const c = await RawSmtp.connect(gw.ports['smtp:1']!);
    await c.command('EHLO test');
    await c.command('MAIL FROM:<sender@local.test>');
    await c.command('RCPT TO:<bob@demo.nmtp.test>');
    const go = await c.command('DATA');
    assert.equal(go.code, 354);
    await c.send(
      Buffer.from(
        `From: sender@local.test\r\nSubject: smuggle\r\n\r\nfirst${v}MAIL FROM:<evil@local.test>\r\nRCPT TO:<bob@demo.nmtp.test>\r\nDATA\r\nSubject: smuggled\r\n\r\n.\r\n`,
      ),
    );
    const end = await c.reply();
    assert.notEqual(end.code, 250, `variant ${JSON.stringify(v)} was accepted`);
    await c.close();
  }
  // A bare LF command line is refused too.
  const c = await RawSmtp.connect(gw.ports['smtp:1']!);
  await c.send(Buffer.from('EHLO test\n'));
  const reply = await c.reply();
  assert.equal(Math.floor(reply.code / 100), 5);
  await c.close();
});

test('/metrics counts what went through', async () => {
  const scrape = (): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      request({ host: '127.0.0.1', port: gw.ports['admin'], path: '/metrics' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      })
        .on('error', reject)
        .end();
    });
  // The first test's message: accepted at the end of DATA, queued, delivered over NMTP.
  const value = (text: string, re: RegExp): number => Number(re.exec(text)?.[1] ?? 0);
  const counts = (text: string) => ({
    smtpIn: value(text, /^nmtp_gateway_smtp_in_total\{stage="data",class="2xx"[^}]*\} (\d+)/m),
    queued: value(text, /^nmtp_gateway_queued_total\{kind="nmtp"\} (\d+)/m),
    accepted: value(
      text,
      /^nmtp_gateway_recipients_out_total\{direction="nmtp",outcome="accepted"\} (\d+)/m,
    ),
    rejected: value(
      text,
      /^nmtp_gateway_recipients_out_total\{direction="nmtp",outcome="rejected"\} (\d+)/m,
    ),
  });
  // A counter moves when the gateway records an outcome, which can be after the receiver
  // stored the message or Postfix wrote the DSN the earlier tests waited for: scrape until
  // every count has been reached (or the wait gives up), then assert on that scrape.
  let text: string;
  const end = Date.now() + 30_000;
  for (;;) {
    text = await scrape();
    const c = counts(text);
    const gauge = /^nmtp_gateway_queue_recipients\{state="accepted"\} \d+/m.test(text);
    if ((gauge && Object.values(c).every((n) => n >= 1)) || Date.now() > end) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const c = counts(text);
  assert.ok(c.smtpIn >= 1, text);
  assert.ok(c.queued >= 1, text);
  assert.ok(c.accepted >= 1, text);
  assert.ok(c.rejected >= 1, text);
  assert.match(text, /^nmtp_gateway_queue_recipients\{state="accepted"\} \d+/m);
});
