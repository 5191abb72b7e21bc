/**
 * The reverse direction against an SMTP peer the test controls (a real smtp-server on
 * loopback, test/adapters/smtp-sender/sink.ts): what the sender sees for each answer the
 * legacy side can give, within the answer budget and after it.
 *
 *   ok@       250                        accepted in the NMTP session (the budget)
 *   bad@      550 5.1.1 at RCPT          rejected in the session, with the remote text
 *   slow@     451 four times, then 250   deferred (cookie), then STATUS flips to accepted
 *   never@    451 always                 deferred, then rejected 5.4.7 when the queue gives up
 *   held@     451 until released          GIVEUP: given-up, and never delivered afterwards
 *
 * and a second peer that offers neither SMTPUTF8 nor 8BITMIME: a non-ASCII local part is
 * refused at RCPT with its code; 8-bit text arrives 7-bit, decoded back to the same text by
 * Python's email package (an independent reader).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startGateway, type RunningGateway } from '../../src/cli/gateway-start.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import { startSink, type Sink } from '../adapters/smtp-sender/sink.ts';
import {
  makeGatewayKey,
  recordingLog,
  tail,
  type GatewayKey,
  type LogEvent,
} from '../support/gateway-e2e.ts';
import {
  nmtpSender,
  reverseGatewayConfig,
  senderMessage,
  type Sender,
} from './gateway-reverse.suite.ts';

export function reverseWithSink(backend: 'embedded' | 'bullmq'): void {
  let dir: string;
  let redis: RedisServer | undefined;
  let env: NodeJS.ProcessEnv = {};
  let key: GatewayKey;
  let full: Sink;
  let plain: Sink;
  let gwFull: RunningGateway;
  let gwPlain: RunningGateway;
  /** Retries two hours apart, and an answer budget of an hour. */
  let gwPatient: RunningGateway;
  let toFull: Sender;
  let toPlain: Sender;
  let toPatient: Sender;
  let events: LogEvent[] = [];
  const tries = new Map<string, number>();
  let released = false;

  const gateway = async (
    name: string,
    sink: Sink,
    rec: ReturnType<typeof recordingLog>,
    // One try a second; given up after 8 s (the "never" recipient).
    retry: Record<string, number> = { initial: 1, factor: 1, maxInterval: 1, maxAge: 8 },
    answerBudget = 3,
  ): Promise<RunningGateway> =>
    startGateway(
      reverseGatewayConfig({
        dir: join(dir, name),
        key,
        smarthostPort: sink.port,
        backend,
        prefix: `gw-${name}`,
        retry,
        reverse: { answerBudget },
      }),
      { log: rec.log, env },
    );

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gw-reverse-sink-'));
    key = makeGatewayKey(dir, 'sender.test', 's1');
    if (backend === 'bullmq') {
      redis = await startRedis();
      env = { NMTP_GATEWAY_REDIS_URL: redis.url };
    }
    full = await startSink({
      // No DSN: a 2xx is final at once (nothing would come back to wait for).
      dsn: false,
      rcpt: (a) => {
        const local = a.slice(0, a.indexOf('@'));
        const n = (tries.get(local) ?? 0) + 1;
        tries.set(local, n);
        if (local === 'bad') return '550 5.1.1 <bad@legacy.test>: no such user here';
        if (local === 'slow' && n <= 4) return '451 4.2.1 mailbox busy, try later';
        if (local === 'never' || local === 'greylisted') return '451 4.2.1 mailbox busy, try later';
        if (local === 'held' && !released) return '451 4.2.1 mailbox busy, try later';
        return undefined;
      },
    });
    plain = await startSink({ dsn: false, smtputf8: false, eightBitMime: false });
    const rec = recordingLog();
    events = rec.events;
    gwFull = await gateway('full', full, rec);
    gwPlain = await gateway('plain', plain, recordingLog());
    gwPatient = await gateway(
      'patient',
      full,
      recordingLog(),
      { initial: 7200, factor: 1, maxInterval: 7200, maxAge: 86400 },
      3600,
    );
    toFull = nmtpSender(key, () => gwFull.ports['nmtp']!);
    toPlain = nmtpSender(key, () => gwPlain.ports['nmtp']!);
    toPatient = nmtpSender(key, () => gwPatient.ports['nmtp']!);
  });

  after(async () => {
    await toFull?.close();
    await toPlain?.close();
    await toPatient?.close();
    await gwFull?.close();
    await gwPlain?.close();
    await gwPatient?.close();
    await full?.close();
    await plain?.close();
    await redis?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const send = async (s: Sender, rcpt: string, body?: string) =>
    (await s.send([rcpt], senderMessage(key, [rcpt], `to ${rcpt}`, body))).get(rcpt)!;

  test('the legacy side answers within the budget: accepted in the NMTP session', async () => {
    const r = await send(toFull, 'ok@legacy.test');
    assert.equal(r.code, 250, JSON.stringify(r) + tail(events));
    assert.equal(r.params.state ?? 'accepted', 'accepted');
    assert.match(r.params.id ?? '', /^r[a-z2-7]{26}$/);
    const t = full.transactions.find((x) => x.rcptTo.includes('ok@legacy.test'))!;
    // The return path names the entry (and a MAC); nothing else of the gateway's state.
    assert.match(t.mailFrom, /^nmtp-return\+r[a-z2-7]{26}\.[0-9a-f]{32}@gw\.test$/);
  });

  test('a 5xx at RCPT: rejected in the session with the remote text and enhanced code', async () => {
    const r = await send(toFull, 'bad@legacy.test');
    assert.equal(r.code, 550, JSON.stringify(r));
    assert.equal(r.enhanced, '5.1.1');
    assert.match(r.text, /no such user here/);
  });

  test('4xx past the budget: deferred with a cookie, then STATUS turns accepted', async () => {
    const r = await send(toFull, 'slow@legacy.test');
    assert.equal(r.code, 350, JSON.stringify(r) + tail(events));
    const final = await toFull.settle(r.params.cookie!);
    assert.equal(final.code, 250, JSON.stringify(final));
    assert.equal(final.params.state, 'accepted');
    assert.equal(full.transactions.filter((x) => x.rcptTo.includes('slow@legacy.test')).length, 1);
  });

  test('4xx with the next try after the budget: the cookie at once, not at the budget’s end', async () => {
    // The budget is an hour, the next try two: nothing final can come within the
    // budget, so the answer is sent now (§52.12.3). The bound only turns a wait for the
    // whole budget (the old behaviour) into a failure.
    const bound = new AbortController();
    const r = await Promise.race([
      send(toPatient, 'greylisted@legacy.test'),
      sleep(60_000, undefined, { signal: bound.signal }).then(() =>
        assert.fail('no answer: the session waits for the whole budget'),
      ),
    ]).finally(() => bound.abort());
    assert.equal(r.code, 350, JSON.stringify(r));
    assert.match(r.params.cookie ?? '', /^gw-/);
    assert.equal(tries.get('greylisted'), 1, 'one attempt, answered 451');
    assert.equal((await toPatient.status(r.params.cookie!)).code, 350);
  });

  test('4xx until the queue gives up: the cookie turns rejected 5.4.7 (expired)', async () => {
    const r = await send(toFull, 'never@legacy.test');
    assert.equal(r.code, 350, JSON.stringify(r));
    const final = await toFull.settle(r.params.cookie!, 30_000);
    assert.equal(final.code, 550, JSON.stringify(final));
    assert.equal(final.params.state, 'rejected');
    assert.equal(final.enhanced, '5.4.7');
  });

  test('GIVEUP before delivery: given-up, and the message never reaches the legacy side', async () => {
    const r = await send(toFull, 'held@legacy.test');
    assert.equal(r.code, 350, JSON.stringify(r));
    const g = await toFull.giveup(r.params.cookie!);
    assert.equal(g.code, 250, JSON.stringify(g));
    assert.equal(g.params.state, 'given-up');
    released = true;
    // Two retry intervals: the queue would have delivered it by now.
    await sleep(2500);
    const s = await toFull.status(r.params.cookie!);
    assert.equal(s.params.state, 'given-up', JSON.stringify(s));
    assert.equal(full.transactions.filter((x) => x.rcptTo.includes('held@legacy.test')).length, 0);
  });

  test('a peer without SMTPUTF8: a non-ASCII local part is refused at RCPT, with its code', async () => {
    const r = await send(toPlain, 'δοκιμή@legacy.test');
    assert.equal(r.code, 550, JSON.stringify(r));
    assert.equal(r.enhanced, '5.6.7');
    assert.match(r.text, /NMTP_ERR_GW_SMTPUTF8_NOT_OFFERED/);
    assert.equal(plain.transactions.length, 0);
  });

  test('a peer without 8BITMIME: 8-bit text arrives 7-bit and decodes to the same text', async () => {
    const text = 'Grüße aus Köln — ½ € 😀\r\n';
    const r = await send(toPlain, 'carol@legacy.test', text);
    assert.equal(r.code, 250, JSON.stringify(r));
    const t = plain.transactions.find((x) => x.rcptTo.includes('carol@legacy.test'))!;
    assert.ok(
      t.data.every((b) => b < 0x80),
      'every octet is 7-bit',
    );
    assert.equal(t.mailArgs['BODY'], undefined);
    const decoded = execFileSync(
      'python3',
      [
        '-c',
        'import sys,email,email.policy;m=email.message_from_bytes(sys.stdin.buffer.read(),policy=email.policy.default);sys.stdout.buffer.write(m.get_content().encode())',
      ],
      { input: t.data },
    ).toString('utf8');
    assert.equal(decoded.replace(/\r?\n/g, '\r\n'), text);
  });
}
