/**
 * What becomes of a recipient after the gateway's 250, end to end with every part real,
 * and what the legacy sender hears about it (RFC 3464 DSNs through Postfix into the
 * sender's Maildir, or nothing):
 *
 *   swaks / raw SMTP ──▶ Postfix ──nmtp-lmtp (demo.nmtp.test, hold.nmtp.test)──▶ gateway G
 *   (one sender Maildir          ──nmtp-smtp (via-smtp.nmtp.test)────────────▶ gateway G
 *    per case)                   ──nmtp-lmtp (exp.nmtp.test)──────────────────▶ gateway E
 *
 *   G ──NMTP──▶ G's receiver (demo. and via-smtp.nmtp.test: reject nobody@, redirect rita@)
 *     ──NMTP──▶ the hold mailbox (hold.nmtp.test: defer carol@, preview grace@; polls 1–2 s)
 *     ──NMTP──▶ rita's own endpoint (a redirect target that proves her key)
 *   E (queue.retry.maxAge 5 s) ──NMTP──▶ E's receiver: defers slow@ and never decides
 *
 * The hold mailbox is `serveMailbox` (the receiver the gateway itself runs) with a short
 * poll window: the gateway's own receiver gives senders the default 60 s minimum, too long
 * for a test. "No DSN" is checked without waiting on a clock: once the gateway's queue
 * shows the recipient final and reported (the DSN service has decided), no DSN entry about
 * it exists in the queue, and Postfix's queue is empty, the sender's Maildir must be empty.
 *
 * The LMTP cases expect the receiver's own answer within smtp.answerBudget (250 for an
 * accepted recipient, the receiver's 5xx for a refused one, and no DSN repeating either),
 * and still a "relayed" DSN from the gateway for NOTIFY=SUCCESS.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseDsn, type ParsedDsn } from '../../adapters/dsn/index.ts';
import { startGateway, type RunningGateway } from '../../src/cli/gateway-start.ts';
import { getField } from '../../src/core/frame/index.ts';
import { fingerprint, keyPairFromSeed } from '../../src/core/keys/index.ts';
import { staticTxtResolver } from '../../src/dns/txt.ts';
import { validateConfig } from '../../src/gateway/config.ts';
import { entryMeta } from '../../src/gateway/envelope.ts';
import type { QueueBackend } from '../../src/queue/port.ts';
import type { QueuedSubmission } from '../../src/queue/types.ts';
import { generateSelfSigned } from '../../src/server/certs.ts';
import { serveMailbox, type Serving } from '../../src/server/serve.ts';
import { startPostfix, type PostfixInstance } from '../harness/postfix.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import { RawSmtp, swaks } from '../harness/swaks.ts';
import {
  dsnEntriesAbout,
  entriesFrom,
  heldCookies,
  makeGatewayKey,
  recordingLog,
  settledAndReported,
  storedWithId,
  tail,
  until,
  type GatewayKey,
  type LogEvent,
} from '../support/gateway-e2e.ts';

/**
 * Postfix hands G the same receiver's mail two ways: demo.nmtp.test by LMTP (G answers each
 * recipient after DATA with the receiver's answer if it comes within smtp.answerBudget, so
 * Postfix reports a refusal itself), via-smtp.nmtp.test by SMTP (G answers 250 once queued;
 * only G's own DSN can report what follows).
 */
const ROUTES = [
  { name: 'LMTP', tag: 'lmtp', domain: 'demo.nmtp.test' },
  { name: 'SMTP', tag: 'smtp', domain: 'via-smtp.nmtp.test' },
] as const;

/** One sender Maildir per case, so no case can see another's DSN. */
const SENDERS = [
  'appr',
  'exp',
  'prev',
  'redir',
  'lmtp',
  'jörg',
  ...['rej', 'succ', 'never'].flatMap((c) => ROUTES.map((r) => `${c}-${r.tag}`)),
];

/** The suite, on the embedded queue or on BullMQ in a private Redis (one prefix per gateway). */
export function lifecycle(backend: 'embedded' | 'bullmq'): void {
  let dir: string;
  let redis: RedisServer | undefined;
  let env: NodeJS.ProcessEnv = {};
  const queueOf = (name: string): Record<string, unknown> =>
    backend === 'bullmq'
      ? { backend: 'bullmq', prefix: `gw-${name}` }
      : { dir: join(dir, name, 'queue') };
  let pf: PostfixInstance;
  let keyG: GatewayKey;
  let gw: RunningGateway;
  let gwE: RunningGateway;
  let hold: Serving;
  let target: Serving;
  const maildirs = { g: '', e: '', hold: '', target: '' };
  const logs: { g: LogEvent[]; e: LogEvent[] } = { g: [], e: [] };
  const ritaKey = keyPairFromSeed(randomBytes(32));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gw-life-'));
    for (const k of ['g', 'e', 'hold', 'target'] as const) {
      maildirs[k] = join(dir, `maildir-${k}`);
      mkdirSync(maildirs[k], { recursive: true });
    }
    pf = await startPostfix({ users: SENDERS });
    if (backend === 'bullmq') {
      redis = await startRedis();
      env = { NMTP_GATEWAY_REDIS_URL: redis.url };
    }
    keyG = makeGatewayKey(dir, 'gateway.nmtp.test', 'gw1');
    // The mailboxes outside the gateway verify its HELLO proof and signature with its record.
    const resolveTxt = staticTxtResolver(new Map([[keyG.keyName, [keyG.keyRecord]]]));

    const holdCert = generateSelfSigned(join(dir, 'hold-tls'), '127.0.0.1');
    writeFileSync(
      join(maildirs.hold, 'policy.json'),
      JSON.stringify({
        defer: ['carol@hold.nmtp.test'],
        preview: { 'grace@hold.nmtp.test': 'headers' },
      }),
    );
    hold = await serveMailbox({
      host: '127.0.0.1',
      port: 0,
      ...holdCert,
      serverName: '127.0.0.1',
      maildir: maildirs.hold,
      minPoll: 1,
      maxPoll: 2,
      resolveTxt,
    });
    // Rita's own endpoint: a certificate nobody trusts; PROVE with her key authenticates it.
    target = await serveMailbox({
      host: '127.0.0.1',
      port: 0,
      ...generateSelfSigned(join(dir, 'target-tls'), '127.0.0.1'),
      serverName: '127.0.0.1',
      maildir: maildirs.target,
      resolveTxt,
      userKeys: new Map([['rita@demo.nmtp.test', ritaKey]]),
    });
    writeFileSync(
      join(maildirs.g, 'policy.json'),
      JSON.stringify({
        reject: ROUTES.map((r) => `nobody@${r.domain}`),
        redirect: {
          'rita@demo.nmtp.test': `127.0.0.1:${target.port} ${fingerprint(ritaKey.publicKey)}`,
        },
      }),
    );

    const g = recordingLog();
    logs.g = g.events;
    gw = await startGateway(
      validateConfig({
        gateway: { keyFile: keyG.keyFile, stateDir: join(dir, 'g') },
        smtp: {
          listeners: [
            { protocol: 'lmtp', listen: '127.0.0.1:0' },
            { protocol: 'smtp', listen: '127.0.0.1:0' },
          ],
        },
        nmtp: {
          receiver: {
            listen: '127.0.0.1:0',
            domains: ROUTES.map((r) => r.domain),
            maildir: maildirs.g,
          },
          peerCa: holdCert.certFile,
        },
        routing: {
          staticRecords: {
            srv: [{ domain: 'hold.nmtp.test', target: '127.0.0.1', port: hold.port }],
          },
        },
        smarthost: { host: `127.0.0.1:${pf.returnPort}`, tls: 'none' },
        queue: { ...queueOf('g'), retry: { initial: 1, maxInterval: 2, maxAge: 120 } },
        admin: { listen: '' },
      }),
      { log: g.log, env },
    );

    writeFileSync(
      join(maildirs.e, 'policy.json'),
      JSON.stringify({ defer: ['slow@exp.nmtp.test'] }),
    );
    const e = recordingLog();
    logs.e = e.events;
    gwE = await startGateway(
      validateConfig({
        gateway: { stateDir: join(dir, 'e') },
        smtp: { listeners: [{ protocol: 'lmtp', listen: '127.0.0.1:0' }] },
        nmtp: {
          receiver: { listen: '127.0.0.1:0', domains: ['exp.nmtp.test'], maildir: maildirs.e },
        },
        smarthost: { host: `127.0.0.1:${pf.returnPort}`, tls: 'none' },
        queue: { ...queueOf('e'), retry: { initial: 1, maxInterval: 1, maxAge: 5 } },
        admin: { listen: '' },
      }),
      { log: e.log, env },
    );

    await pf.setTransport({
      'demo.nmtp.test': `nmtp-lmtp:inet:127.0.0.1:${gw.ports['lmtp:0']}`,
      'via-smtp.nmtp.test': `nmtp-smtp:[127.0.0.1]:${gw.ports['smtp:1']}`,
      'hold.nmtp.test': `nmtp-lmtp:inet:127.0.0.1:${gw.ports['lmtp:0']}`,
      'exp.nmtp.test': `nmtp-lmtp:inet:127.0.0.1:${gwE.ports['lmtp:0']}`,
    });
  });

  after(async () => {
    await gw?.close();
    await gwE?.close();
    await hold?.close();
    await target?.close();
    await pf?.stop();
    await redis?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const context = (): string =>
    `--- gateway G ---\n${tail(logs.g)}\n--- gateway E ---\n${tail(logs.e)}`;

  /** A small message with a Message-ID of its own, through Postfix's ordinary smtpd. */
  async function sendViaPostfix(from: string, to: string, id: string, body = 'Hello.\n') {
    const r = await swaks({
      server: { port: pf.port },
      from,
      to,
      data:
        `From: ${from === '<>' ? 'MAILER-DAEMON@local.test' : from}\nTo: ${to}\n` +
        `Subject: ${id}\nMessage-ID: <${id}@local.test>\n\n${body}`,
    });
    assert.equal(r.code, 0, r.transcript);
  }

  /** Raw SMTP to Postfix, for the DSN parameters swaks (20201014) has no option for. */
  async function sendWithNotify(from: string, to: string, notify: string, id: string) {
    const c = await RawSmtp.connect(pf.port);
    try {
      assert.equal((await c.command('EHLO client.local.test')).code, 250);
      const mail = await c.command(`MAIL FROM:<${from}>`);
      assert.equal(mail.code, 250, mail.raw);
      const rcpt = await c.command(`RCPT TO:<${to}> NOTIFY=${notify}`);
      assert.equal(rcpt.code, 250, rcpt.raw);
      assert.equal((await c.command('DATA')).code, 354);
      await c.send(
        `From: ${from}\r\nTo: ${to}\r\nSubject: ${id}\r\nMessage-ID: <${id}@local.test>\r\n\r\nHello.\r\n.\r\n`,
      );
      const end = await c.reply();
      assert.equal(end.code, 250, end.raw);
      await c.quit();
    } finally {
      c.close();
    }
  }

  /**
   * Deferred, and the LMTP session that brought it is over: smtp-in has recorded what it
   * answered there (the entry's hold on DSNs, `answerUntil`, is gone).
   */
  const deferredAfterSession = (s: QueuedSubmission): boolean =>
    s.recipients[0]?.state === 'deferred' && entryMeta(s.meta)?.answerUntil === undefined;

  /** The one entry smtp-in queued for `from` (and `rcpt`, if given), once `ok` holds for it. */
  async function entryOf(
    q: QueueBackend,
    from: string,
    ok: (s: QueuedSubmission) => boolean,
    what: string,
    rcpt?: string,
  ): Promise<QueuedSubmission> {
    return until(
      async () => {
        const [s, ...more] = (await entriesFrom(q, from)).filter(
          (e) => rcpt === undefined || e.recipients.some((r) => r.rcpt === rcpt),
        );
        assert.equal(more.length, 0, `one entry from <${from}>`);
        return s !== undefined && ok(s) ? s : undefined;
      },
      what,
      30_000,
      context,
    );
  }

  /**
   * No DSN about the entry, now or later: the DSN service has decided on every recipient,
   * queued none, Postfix holds nothing more, and the sender's Maildir is empty.
   */
  async function assertNoDsn(
    q: QueueBackend,
    from: string,
    sender: string | undefined,
    rcpt?: string,
  ): Promise<void> {
    const s = await entryOf(
      q,
      from,
      settledAndReported,
      `<${from}>'s entry final and reported`,
      rcpt,
    );
    assert.deepEqual(
      (await dsnEntriesAbout(q, s.id)).map((d) => d.id),
      [],
      'no DSN queued by the gateway',
    );
    // Postfix has passed on (or bounced) everything it was given.
    await pf.waitForQueue((entries) => entries.length === 0, 30_000);
    if (sender === undefined) return;
    assert.deepEqual(
      (await pf.readMail(sender)).map((m) => m.raw.toString('utf8').slice(0, 2000)),
      [],
      `no mail for ${sender}`,
    );
  }

  /** The one DSN in the sender's Maildir. */
  async function dsnFor(sender: string, ms = 30_000): Promise<ParsedDsn> {
    const mail = await pf.waitForMail(sender, 1, ms);
    assert.equal(mail.length, 1, `one DSN for ${sender}`);
    return parseDsn(new Uint8Array(mail[0]!.raw));
  }

  for (const route of ROUTES) {
    test(`${route.name}: a recipient the receiver rejects after DATA: an RFC 3464 failed DSN through Postfix`, async () => {
      const sender = `rej-${route.tag}`;
      await sendViaPostfix(
        `${sender}@local.test`,
        `nobody@${route.domain}`,
        `life-reject-${route.tag}`,
      );
      const dsn = await dsnFor(sender);
      assert.equal(dsn.outcomes.length, 1);
      const [o] = dsn.outcomes;
      assert.equal(o!.action, 'failed');
      assert.match(o!.status, /^5\./);
      assert.equal(o!.recipient.legacy ?? o!.recipient.nmtp, `nobody@${route.domain}`);
      // Over SMTP the gateway said 250: the refusal is its own DSN. (Over LMTP it answered the
      // refusal in the session, and Postfix wrote the DSN.)
      if (route.tag === 'smtp') assert.equal(dsn.reportingMta, 'localhost');
    });
  }

  test('SMTPUTF8: a UTF-8 sender refused after the SMTP 250 gets the gateway’s DSN (RFC 6533) in its Maildir', async () => {
    const c = await RawSmtp.connect(pf.port);
    try {
      assert.equal((await c.command('EHLO client.local.test')).code, 250);
      const mail = await c.command('MAIL FROM:<jörg@local.test> SMTPUTF8 BODY=8BITMIME');
      assert.equal(mail.code, 250, mail.raw);
      const rcpt = await c.command('RCPT TO:<nobody@via-smtp.nmtp.test>');
      assert.equal(rcpt.code, 250, rcpt.raw);
      assert.equal((await c.command('DATA')).code, 354);
      await c.send(
        Buffer.from(
          'From: Jörg <jörg@local.test>\r\nTo: nobody@via-smtp.nmtp.test\r\n' +
            'Subject: Grüße\r\nMessage-ID: <life-utf8@local.test>\r\n' +
            'Content-Type: text/plain; charset=utf-8\r\n\r\nSchöne Grüße.\r\n.\r\n',
          'utf8',
        ),
      );
      const end = await c.reply();
      assert.equal(end.code, 250, end.raw);
      await c.quit();
    } finally {
      c.close();
    }
    const dsn = await dsnFor('jörg');
    assert.equal(dsn.reportingMta, 'localhost');
    // RFC 6533: the return path is UTF-8, so the report is message/global-delivery-status.
    assert.equal(dsn.global, true);
    assert.equal(dsn.outcomes.length, 1);
    assert.equal(dsn.outcomes[0]!.action, 'failed');
    assert.match(dsn.outcomes[0]!.status, /^5\./);
  });

  test('deferred, then approved by the recipient: accepted, stored once, no DSN', async () => {
    const before = new Set(heldCookies(maildirs.hold));
    await sendViaPostfix('appr@local.test', 'carol@hold.nmtp.test', 'life-approve');
    // Decided only once the LMTP session is over (smtp.answerBudget), so the acceptance is
    // something only a DSN could report: it must not.
    await entryOf(gw.queue, 'appr@local.test', deferredAfterSession, 'carol deferred, 250 given');
    const cookie = await until(
      () => heldCookies(maildirs.hold).find((c) => !before.has(c)),
      'the message held for carol',
    );
    await hold.mailbox.decideCookie(cookie, 'approve');
    const s = await entryOf(
      gw.queue,
      'appr@local.test',
      (e) => e.recipients[0]?.state === 'accepted',
      'carol accepted after a poll',
    );
    // Accepted after the session: only the DSN service could have reported it.
    assert.notEqual((s.recipients[0]!.meta as { answered?: boolean }).answered, true);
    assert.equal(storedWithId(maildirs.hold, '<life-approve@local.test>').length, 1);
    await assertNoDsn(gw.queue, 'appr@local.test', 'appr');
  });

  test('deferred and never decided: at queue.retry.maxAge the gateway gives up (GIVEUP) and a failed 5.4.7 DSN reaches the sender', async () => {
    await sendViaPostfix('exp@local.test', 'slow@exp.nmtp.test', 'life-expire');
    await entryOf(
      gwE.queue,
      'exp@local.test',
      (s) => s.recipients[0]?.state === 'deferred',
      'slow deferred',
    );
    assert.equal(heldCookies(maildirs.e).length, 1);
    const dsn = await dsnFor('exp', 40_000);
    assert.equal(dsn.outcomes.length, 1);
    assert.equal(dsn.outcomes[0]!.action, 'failed');
    assert.equal(dsn.outcomes[0]!.status, '5.4.7');
    const s = await entryOf(gwE.queue, 'exp@local.test', settledAndReported, 'slow given up');
    assert.equal(s.recipients[0]!.state, 'given-up');
    // GIVEUP reached the receiver, which discarded what it held.
    await until(
      () => (heldCookies(maildirs.e).length === 0 ? true : undefined),
      'the held message discarded after GIVEUP',
      30_000,
      context,
    );
  });

  test('a headers-only preview, approved: the gateway then sends the full message, stored whole', async () => {
    const before = new Set(heldCookies(maildirs.hold));
    const body = Array.from({ length: 400 }, (_, i) => `body line ${i} of the full message`).join(
      '\n',
    );
    await sendViaPostfix('prev@local.test', 'grace@hold.nmtp.test', 'life-preview', `${body}\n`);
    await entryOf(gw.queue, 'prev@local.test', deferredAfterSession, 'grace deferred, 250 given');
    const cookie = await until(
      () => heldCookies(maildirs.hold).find((c) => !before.has(c)),
      'the preview held for grace',
      30_000,
      context,
    );
    // What is held is the headers view: the subject, none of the body.
    const preview = readFileSync(join(maildirs.hold, 'held', `${cookie}.nmtp`)).toString('utf8');
    assert.match(preview, /life-preview/);
    assert.doesNotMatch(preview, /body line 0 of the full message/);
    assert.equal((await hold.mailbox.decideCookie(cookie, 'approve')).state, 'want-view');
    const [stored] = await until(
      () => {
        const found = storedWithId(maildirs.hold, '<life-preview@local.test>');
        return found.length > 0 ? found : undefined;
      },
      'the full message for grace',
      30_000,
      context,
    );
    const root = stored!.message.root;
    assert.ok('body' in root);
    assert.equal(Buffer.from(root.body).toString('utf8'), `${body.replace(/\n/g, '\r\n')}\r\n`);
    const s = await entryOf(
      gw.queue,
      'prev@local.test',
      (e) => e.recipients[0]?.state === 'accepted',
      'grace accepted',
    );
    assert.equal(s.recipients[0]!.state, 'accepted');
    await assertNoDsn(gw.queue, 'prev@local.test', 'prev');
  });

  test("a redirect: the message lands at the recipient's own endpoint, which proved her key", async () => {
    await sendViaPostfix('redir@local.test', 'rita@demo.nmtp.test', 'life-redirect');
    const [stored] = await until(
      () => {
        const found = storedWithId(maildirs.target, '<life-redirect@local.test>');
        return found.length > 0 ? found : undefined;
      },
      "the message at rita's endpoint",
      30_000,
      context,
    );
    assert.equal(getField(stored!.message.root.fields, 'Subject'), 'life-redirect');
    assert.equal(storedWithId(maildirs.g, '<life-redirect@local.test>').length, 0);
    const s = await entryOf(
      gw.queue,
      'redir@local.test',
      (e) => e.recipients[0]?.state === 'accepted',
      'rita accepted',
    );
    assert.equal(s.recipients[0]!.state, 'accepted');
    await assertNoDsn(gw.queue, 'redir@local.test', 'redir');
  });

  for (const route of ROUTES) {
    test(`${route.name}: NOTIFY=SUCCESS: a "relayed" DSN from the gateway reaches the sender`, async () => {
      const sender = `succ-${route.tag}`;
      const id = `life-success-${route.tag}`;
      await sendWithNotify(`${sender}@local.test`, `happy@${route.domain}`, 'SUCCESS', id);
      const s = await entryOf(
        gw.queue,
        `${sender}@local.test`,
        settledAndReported,
        'happy accepted',
      );
      assert.equal(s.recipients[0]!.state, 'accepted');
      // Postfix passed NOTIFY=SUCCESS on to the gateway, which announces DSN in its EHLO and
      // LHLO, and so reports no success itself (RFC 3461 §5.2.1: relayed to a conforming
      // server). The gateway, gatewaying into NMTP, owes the "relayed" DSN (§5.2.4) — whether
      // or not its LMTP reply said 250 for the recipient: that 250 reaches Postfix, not the
      // sender.
      assert.equal(
        (await dsnEntriesAbout(gw.queue, s.id)).length,
        1,
        `the gateway queued a "relayed" DSN for NOTIFY=SUCCESS (recipient meta: ${JSON.stringify(s.recipients[0]!.meta)})`,
      );
      const dsn = await dsnFor(sender);
      assert.equal(dsn.outcomes.length, 1);
      assert.equal(dsn.outcomes[0]!.action, 'relayed');
      assert.match(dsn.outcomes[0]!.status, /^2\./);
      assert.equal(dsn.reportingMta, 'localhost');
      // G's receiver journals the message and answers; its copy appears in new/ moments
      // after that answer (src/server/mailbox-store.ts), so wait for it before counting.
      const stored = await until(
        () => {
          const found = storedWithId(maildirs.g, `<${id}@local.test>`);
          return found.length > 0 ? found : undefined;
        },
        `the message stored at G for happy@${route.domain}`,
        30_000,
        context,
      );
      assert.equal(stored.length, 1);
    });

    test(`${route.name}: NOTIFY=NEVER on a rejected recipient: no DSN`, async () => {
      const sender = `never-${route.tag}`;
      const id = `life-never-${route.tag}`;
      await sendWithNotify(`${sender}@local.test`, `nobody@${route.domain}`, 'NEVER', id);
      const s = await entryOf(
        gw.queue,
        `${sender}@local.test`,
        settledAndReported,
        'the rejection',
      );
      assert.equal(s.recipients[0]!.state, 'rejected');
      await assertNoDsn(gw.queue, `${sender}@local.test`, sender);
    });

    test(`${route.name}: a message from the null sender <> rejected: no DSN`, async () => {
      const rcpt = `nobody@${route.domain}`;
      await sendViaPostfix('<>', rcpt, `life-null-${route.tag}`);
      const s = await entryOf(gw.queue, '', settledAndReported, 'the rejection', rcpt);
      assert.equal(s.recipients[0]!.state, 'rejected');
      // No Maildir to look in (a DSN to <> has no address): none queued, none in Postfix.
      await assertNoDsn(gw.queue, '', undefined, rcpt);
    });
  }

  test('LMTP: one reply per recipient with the receiver’s own answer (250 accepted, 5xx rejected), no DSN for the rejected one', async () => {
    const c = await RawSmtp.connect(gw.ports['lmtp:0']!);
    const replies: number[] = [];
    try {
      assert.equal((await c.command('LHLO postfix.test')).code, 250);
      assert.equal((await c.command('MAIL FROM:<lmtp@local.test>')).code, 250);
      assert.equal((await c.command('RCPT TO:<okay@demo.nmtp.test>')).code, 250);
      assert.equal((await c.command('RCPT TO:<nobody@demo.nmtp.test>')).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      await c.send(
        'From: lmtp@local.test\r\nTo: okay@demo.nmtp.test, nobody@demo.nmtp.test\r\n' +
          'Subject: life-lmtp\r\nMessage-ID: <life-lmtp@local.test>\r\n\r\nTwo recipients.\r\n.\r\n',
      );
      // RFC 2033 §4.2: one reply per successful RCPT, in RCPT order.
      const first = await c.reply(30_000);
      const second = await c.reply(30_000);
      replies.push(first.code, second.code);
      await c.quit();
    } finally {
      c.close();
    }
    assert.equal(replies[0], 250, 'okay@ accepted by the receiver');
    assert.equal(Math.floor(replies[1]! / 100), 5, `nobody@ refused in the session: ${replies[1]}`);
    await assertNoDsn(gw.queue, 'lmtp@local.test', 'lmtp');
  });
}
