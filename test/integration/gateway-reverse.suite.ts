/**
 * The reverse direction end to end, every part real: an NMTP sender (the project's transfer
 * client, as a peer's gateway would run it) → the gateway's NMTP receiver → nmtp-in →
 * queue → smtp-out → a real Postfix, which delivers into a Maildir and sends its DSNs back
 * to the gateway's return path through the gateway's smtp-in.
 *
 *   NMTP sender ──NMTP/TLS──▶ gateway (legacy.test is "legacy-hosted") ──SMTP──▶ Postfix
 *        ▲  STATUS / GIVEUP          ▲ smtp-in: nmtp-return+<tag>@gw.test      │ virtual(8)
 *        └──── cookie states ◀───────┴──────────── DSNs (delivered / failed) ◀─┘ Maildir
 *
 * The gateway answers in the session only within `reverse.answerBudget`; this suite sets it
 * to 0, so every outcome is seen the way a sender sees a slow legacy side: a cookie, then
 * STATUS. (The budget itself: gateway-reverse-sink.test.ts.)
 *
 * Run once per queue backend (gateway-reverse.test.ts, gateway-reverse-bullmq.test.ts).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startGateway, type RunningGateway } from '../../src/cli/gateway-start.ts';
import { encodeMessage, type FramedMessage } from '../../src/core/frame/index.ts';
import { PLACEMENTS, VARIANTS, payloads } from '../adapters/smtp-sender/smuggling-corpus.ts';
import { signMessage } from '../../src/core/message/index.ts';
import type { Reply } from '../../src/core/wire/index.ts';
import { validateConfig, type GatewayConfig } from '../../src/gateway/config.ts';
import { transferDeliver, type ClosableDeliverFn } from '../../src/queue/deliver.ts';
import { bytesSource } from '../../src/client/source.ts';
import { startPostfix, type PostfixInstance } from '../harness/postfix.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import {
  makeGatewayKey,
  recordingLog,
  tail,
  until,
  type GatewayKey,
  type LogEvent,
} from '../support/gateway-e2e.ts';

const utf8 = new TextEncoder();

/** `m` encoded and signed by sender.test's domain key for `rcpts`. */
export function signedBy(key: GatewayKey, rcpts: readonly string[], m: FramedMessage): Uint8Array {
  const now = Math.floor(Date.now() / 1000);
  return signMessage(encodeMessage(m), {
    key: key.key,
    domain: 'sender.test',
    selector: 's1',
    recipients: rcpts,
    signedAt: now,
    expiresAt: now + 86400,
    salt: randomBytes(16),
  });
}

/** A framed message from sender.test, signed by its domain key for `rcpts`. */
export function senderMessage(
  key: GatewayKey,
  rcpts: readonly string[],
  subject: string,
  body = 'Hello from NMTP.\r\n',
): Uint8Array {
  return signedBy(key, rcpts, {
    trace: [],
    root: {
      fields: [
        { name: 'From', value: 'Sam Sender <sam@sender.test>' },
        { name: 'To', value: rcpts.map((r) => `<${r}>`).join(', ') },
        { name: 'Subject', value: subject },
        { name: 'Date', value: new Date().toISOString().replace(/\.\d+Z$/, 'Z') },
        { name: 'Message-Id', value: `<${randomBytes(8).toString('hex')}@sender.test>` },
        { name: 'Content-Type', value: 'text/plain' },
      ],
      body: utf8.encode(body),
    },
  });
}

/** The NMTP sender: one transfer job at a time against the gateway's receiver. */
export interface Sender {
  send(rcpts: readonly string[], message: Uint8Array): Promise<Map<string, Reply>>;
  status(cookie: string): Promise<Reply>;
  giveup(cookie: string): Promise<Reply>;
  /** Polls STATUS until the reply is not 350 (deferred); returns it. */
  settle(cookie: string, timeoutMs?: number): Promise<Reply>;
  close(): Promise<void>;
}

export function nmtpSender(key: GatewayKey, port: () => number): Sender {
  let d: ClosableDeliverFn | undefined;
  const fn = (): ClosableDeliverFn =>
    (d ??= transferDeliver({
      identity: { domain: 'sender.test', selector: 's1', key: key.key },
      srv: () =>
        Promise.resolve({
          status: 'ok',
          targets: [{ name: '127.0.0.1', port: port(), priority: 0, weight: 0 }],
        }),
      // The gateway's demo certificate: trusted here as a peer's would be by its CA.
      connect: { insecureTls: true },
    }));
  const cookieJob = async (kind: 'status' | 'giveup', cookie: string): Promise<Reply> => {
    const out = await fn()({ domain: 'legacy.test', job: { kind, cookie }, message: undefined });
    const r = out.recipients[0]?.reply;
    if (r === undefined) throw new Error(`no ${kind} answer: ${JSON.stringify(out.failure)}`);
    return r;
  };
  return {
    async send(rcpts, message) {
      const source = bytesSource(message);
      const layout = await source.layout();
      const out = await fn()({
        domain: 'legacy.test',
        job: {
          kind: 'deliver',
          recipients: rcpts,
          size: layout.size,
          digest: layout.digest,
          signers: layout.signers,
        },
        message: source,
      });
      if (out.failure !== undefined && out.recipients.length === 0) {
        throw new Error(`transfer failed: ${JSON.stringify(out.failure)}`);
      }
      return new Map(out.recipients.map((x) => [x.rcpt, x.reply]));
    },
    status: (c) => cookieJob('status', c),
    giveup: (c) => cookieJob('giveup', c),
    async settle(cookie, timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const r = await cookieJob('status', cookie);
        if (r.code !== 350 || Date.now() > end) return r;
        await sleep(100);
      }
    },
    async close() {
      await d?.close();
    },
  };
}

const ORACLE = fileURLToPath(new URL('../adapters/legacy-auth/oracle.py', import.meta.url));

/** DKIM and ARC verdicts of Debian's python3-dkim (dkimpy) for `message`, keys given. */
function dkimpy(
  records: Record<string, string>,
  message: Buffer,
): {
  dkim: boolean[];
  arc: { cv: string };
} {
  const r = spawnSync('/usr/bin/python3', [ORACLE], {
    input: JSON.stringify({ records, messages: [message.toString('base64')] }),
  });
  assert.equal(r.status, 0, r.stderr.toString());
  return (JSON.parse(r.stdout.toString()) as { dkim: boolean[]; arc: { cv: string } }[])[0]!;
}

/**
 * The reverse suites' gateway: gw.test, its receiver holding nmtp.gw.test with a short poll
 * window, the sender's key record known without DNS, legacy.test legacy-hosted, and the
 * given smarthost, queue backend and retry policy; `reverse` adds to the reverse section.
 */
export function reverseGatewayConfig(o: {
  readonly dir: string;
  readonly key: GatewayKey;
  readonly smarthostPort: number;
  readonly backend: 'embedded' | 'bullmq';
  readonly prefix: string;
  readonly retry: Record<string, number>;
  readonly reverse: Record<string, unknown>;
}): GatewayConfig {
  return validateConfig({
    gateway: { hostname: '127.0.0.1', domain: 'gw.test', selector: 'gw1', stateDir: o.dir },
    smtp: { listeners: [{ protocol: 'smtp', listen: '127.0.0.1:0' }] },
    nmtp: {
      receiver: {
        listen: '127.0.0.1:0',
        domains: ['nmtp.gw.test'],
        maildir: join(o.dir, 'maildir'),
        minPoll: 1,
        maxPoll: 2,
      },
    },
    reverse: { domains: ['legacy.test'], ...o.reverse },
    routing: { staticRecords: { txt: [{ name: o.key.keyName, value: o.key.keyRecord }] } },
    smarthost: { host: `127.0.0.1:${o.smarthostPort}`, tls: 'none' },
    queue: {
      ...(o.backend === 'bullmq'
        ? { backend: 'bullmq', prefix: o.prefix }
        : { dir: join(o.dir, 'queue') }),
      retry: o.retry,
    },
    admin: { listen: '' },
  });
}

export function reverseWithPostfix(backend: 'embedded' | 'bullmq'): void {
  let dir: string;
  let redis: RedisServer | undefined;
  let env: NodeJS.ProcessEnv = {};
  let pf: PostfixInstance;
  let gw: RunningGateway;
  let sender: Sender;
  let key: GatewayKey;
  let events: LogEvent[] = [];
  // The gateway's DKIM key (RSA: it also seals ARC), and its DNS record for the verifier.
  const dkim = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const dkimRecord = `v=DKIM1; k=rsa; p=${dkim.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gw-reverse-'));
    key = makeGatewayKey(dir, 'sender.test', 's1');
    const dkimFile = join(dir, 'dkim.pem');
    writeFileSync(dkimFile, dkim.privateKey.export({ type: 'pkcs8', format: 'pem' }), {
      mode: 0o600,
    });
    if (backend === 'bullmq') {
      redis = await startRedis();
      env = { NMTP_GATEWAY_REDIS_URL: redis.url };
    }
    pf = await startPostfix({
      localDomain: 'legacy.test',
      users: ['alice', 'bob'],
      mainCf: { smtpd_reject_unlisted_recipient: 'no' },
    });
    const rec = recordingLog();
    events = rec.events;
    gw = await startGateway(
      reverseGatewayConfig({
        dir: join(dir, 'gw'),
        key,
        smarthostPort: pf.returnPort,
        backend,
        prefix: 'gw-rev',
        retry: { initial: 1, maxInterval: 2, maxAge: 300 },
        reverse: {
          answerBudget: 0,
          dkim: { domain: 'gw.test', selector: 'dk1', keyFile: dkimFile },
        },
      }),
      { log: rec.log, env },
    );
    // Postfix's DSNs to the return path go to the gateway's smtp-in.
    await pf.setTransport({ 'gw.test': `smtp:[127.0.0.1]:${gw.ports['smtp:0']}` });
    sender = nmtpSender(key, () => gw.ports['nmtp']!);
  });

  after(async () => {
    await sender?.close();
    await gw?.close();
    await pf?.stop();
    await redis?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** Waits for the log's `reverse.report` of a DSN with this action. */
  const reported = (action: string): Promise<true> =>
    until(
      () =>
        events.some((e) => e.event === 'reverse.report' && e.action === action) ? true : undefined,
      `a reverse.report event with action ${action}`,
      30_000,
      () => tail(events),
    );

  const cookieOf = (r: Reply | undefined): string => {
    assert.equal(r?.code, 350, `deferred with a cookie: ${JSON.stringify(r)}`);
    return r!.params.cookie!;
  };

  test('accepted into the Postfix Maildir, with the signature verdicts in Authentication-Results', async () => {
    const answers = await sender.send(
      ['alice@legacy.test'],
      senderMessage(key, ['alice@legacy.test'], 'to alice'),
    );
    const cookie = cookieOf(answers.get('alice@legacy.test'));
    assert.match(cookie, /^gw-/);
    const [mail] = await pf.waitForMail('alice', 1);
    const text = mail!.raw.toString('utf8');
    assert.match(text, /^Subject: to alice\r?$/m);
    assert.match(text, /^Authentication-Results: 127\.0\.0\.1; nmtp=pass header\.d=sender\.test/m);
    assert.match(text, /^Received: from sender\.test \(\[127\.0\.0\.1\]\)/m);
    assert.match(text, /Hello from NMTP\./);
    // DKIM-signed and ARC-sealed by the gateway; verified by an independent implementation
    // on the octets Postfix delivered (its Return-Path and Delivered-To on top are unsigned).
    const verdict = dkimpy({ 'dk1._domainkey.gw.test': dkimRecord }, mail!.raw);
    assert.deepEqual(verdict.dkim, [true]);
    assert.equal(verdict.arc.cv, 'pass');
    assert.match(
      text,
      /^ARC-Authentication-Results: i=1; 127\.0\.0\.1; nmtp=pass header\.d=sender\.test/m,
    );
    // Postfix's success DSN (NOTIFY=SUCCESS) comes back to the return path: accepted.
    const final = await sender.settle(cookie);
    assert.equal(final.code, 250, JSON.stringify(final) + tail(events));
    assert.equal(final.params.state, 'accepted');
    // The DSN was consumed, never relayed: nothing but alice's message in any Maildir.
    assert.equal((await pf.readMail('alice')).length, 1);
    // The report is logged once the queue has stored it, which STATUS may read first.
    await reported('delivered');
  });

  test('a late DSN (accepted by Postfix, bounced afterwards) turns the cookie into rejected', async () => {
    // Postfix takes any recipient at RCPT (smtpd_reject_unlisted_recipient=no, as a relay
    // that does not know its users) and finds out at delivery: its bounce is the DSN.
    const answers = await sender.send(
      ['ghost@legacy.test'],
      senderMessage(key, ['ghost@legacy.test'], 'to ghost'),
    );
    const cookie = cookieOf(answers.get('ghost@legacy.test'));
    const final = await sender.settle(cookie);
    assert.equal(final.code, 550, JSON.stringify(final) + tail(events));
    assert.equal(final.params.state, 'rejected');
    assert.match(final.enhanced, /^5\.1\.1$/);
    await reported('failed');
    // The smarthost did accept it: the queue says so; the cookie says what happened after.
    // The report can reach the entry before smtp-out has recorded Postfix's 250 there (the
    // bounce races that write), so wait for the recipient to leave 'pending'.
    const id = cookie.split('-').slice(3).join('-');
    const state = await until(
      async () => {
        const s = (await gw.queue.get(id))?.recipients[0]?.state;
        return s === undefined || s === 'pending' ? undefined : s;
      },
      `the queue's record of the smarthost's answer for ${id}`,
      30_000,
      () => tail(events),
    );
    assert.equal(state, 'accepted');
  });

  test('no NMTP sender ever gets a bounce: a cookie from another client domain is unknown', async () => {
    const answers = await sender.send(
      ['bob@legacy.test'],
      senderMessage(key, ['bob@legacy.test'], 'to bob'),
    );
    const cookie = cookieOf(answers.get('bob@legacy.test'));
    // The same cookie with one character changed: unknown, like any other stranger's.
    const forged = cookie.replace(/-(\d+)-/, (_m, i: string) => `-${Number(i) + 1}-`);
    const r = await sender.status(forged);
    assert.equal(r.code, 550);
    assert.equal(r.params.err, 'NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN');
    assert.equal((await sender.settle(cookie)).params.state, 'accepted');
  });

  test('a recipient that is neither local nor legacy-hosted is refused at RCPT (no open relay)', async () => {
    const answers = await sender.send(
      ['x@elsewhere.test'],
      senderMessage(key, ['x@elsewhere.test'], 'relay?'),
    );
    const r = answers.get('x@elsewhere.test');
    assert.equal(r?.code, 550, JSON.stringify(r));
    assert.equal(r?.enhanced, '5.7.1');
  });

  test('SMTP smuggling variants inside NMTP messages: exactly one message out of Postfix per message in', async () => {
    const before = (await pf.readMail('bob')).length;
    let accepted = 0;
    let refused = 0;
    for (const [name, variant] of VARIANTS) {
      for (const placement of PLACEMENTS) {
        const [, payload] = payloads(variant)[0]!;
        const m = signedBy(key, ['bob@legacy.test'], placement.build(payload));
        const r = (await sender.send(['bob@legacy.test'], m)).get('bob@legacy.test')!;
        if (r.code === 350) {
          const final = await sender.settle(r.params.cookie!);
          assert.equal(
            final.params.state,
            'accepted',
            `${name} in ${placement.name}: ${JSON.stringify(final)}`,
          );
          accepted++;
        } else {
          // Refused with a code (a message/rfc822 leaf that is not clean cannot be sent).
          assert.equal(r.code, 550, `${name} in ${placement.name}: ${JSON.stringify(r)}`);
          assert.match(r.text, /NMTP_ERR_/);
          refused++;
        }
      }
    }
    assert.ok(accepted >= VARIANTS.length * 3, `accepted ${accepted}, refused ${refused}`);
    const mail = await pf.waitForMail('bob', before + accepted);
    assert.equal(mail.length, before + accepted, 'one Maildir message per accepted NMTP message');
    // Nothing Postfix logged was a second message's envelope.
    assert.doesNotMatch(await pf.logs(), /admin@victim\.example|ceo@victim\.example/);
  });
}
