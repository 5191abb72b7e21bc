/**
 * The gateway with its BullMQ queue backend on a real, private Redis (AOF, appendfsync
 * always), beside a real Postfix, every part real:
 *
 *   swaks ──▶ Postfix ──nmtp-lmtp / nmtp-smtp──▶ gateway (queue.backend: bullmq) ──NMTP──▶
 *             ▲                                   │            G's receiver (demo.nmtp.test,
 *             └──── DSNs (smtp-out) ◀─────────────┘            via-smtp.nmtp.test)
 *                                                              late.nmtp.test: a receiver
 *                                                              that starts only at the end
 *
 * A message delivered end to end; a recipient refused after the gateway's SMTP 250 comes
 * back as the gateway's own DSN (queued in Redis, delivered by smtp-out) through Postfix;
 * a message answered 250 while its receiver is down survives a kill -9 of Redis and is
 * delivered once Redis and the receiver are back; and the gateway refuses to start on a
 * Redis without AOF (NMTP_ERR_QUEUE_NOT_DURABLE).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDsn } from '../../adapters/dsn/index.ts';
import { startGateway, type RunningGateway } from '../../src/cli/gateway-start.ts';
import { NmtpError } from '../../src/core/errors/index.ts';
import { getField } from '../../src/core/frame/index.ts';
import { verifyMessage } from '../../src/core/message/index.ts';
import { staticTxtResolver } from '../../src/dns/txt.ts';
import { validateConfig, type GatewayConfig } from '../../src/gateway/config.ts';
import { generateSelfSigned } from '../../src/server/certs.ts';
import { serveMailbox, type Serving } from '../../src/server/serve.ts';
import { startPostfix, type PostfixInstance } from '../harness/postfix.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import { swaks } from '../harness/swaks.ts';
import {
  dsnEntriesAbout,
  entriesFrom,
  makeGatewayKey,
  recordingLog,
  settledState,
  storedWithId,
  tail,
  until,
  type GatewayKey,
  type LogEvent,
} from '../support/gateway-e2e.ts';
import { freeTcpPort } from '../support/net.ts';

const ENV = 'NMTP_GATEWAY_REDIS_URL';

let dir: string;
let redis: RedisServer;
let pf: PostfixInstance;
let key: GatewayKey;
let gw: RunningGateway;
let late: Serving | undefined;
let latePort: number;
let lateCert: { certFile: string; keyFile: string };
let maildir: string;
let lateMaildir: string;
let events: LogEvent[] = [];

function config(over: { prefix: string; stateDir: string; maildir: string }): GatewayConfig {
  return validateConfig({
    gateway: { keyFile: key.keyFile, stateDir: over.stateDir },
    smtp: {
      listeners: [
        { protocol: 'lmtp', listen: '127.0.0.1:0' },
        { protocol: 'smtp', listen: '127.0.0.1:0' },
      ],
    },
    nmtp: {
      receiver: {
        listen: '127.0.0.1:0',
        domains: ['demo.nmtp.test', 'via-smtp.nmtp.test'],
        maildir: over.maildir,
      },
      peerCa: lateCert.certFile,
    },
    routing: {
      staticRecords: {
        srv: [{ domain: 'late.nmtp.test', target: '127.0.0.1', port: latePort }],
      },
    },
    smarthost: { host: `127.0.0.1:${pf.returnPort}`, tls: 'none' },
    queue: {
      backend: 'bullmq',
      prefix: over.prefix,
      retry: { initial: 1, factor: 1, maxInterval: 1, maxAge: 300 },
    },
    admin: { listen: '' },
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gw-bullmq-'));
  maildir = join(dir, 'maildir');
  lateMaildir = join(dir, 'late-maildir');
  mkdirSync(maildir, { recursive: true });
  writeFileSync(
    join(maildir, 'policy.json'),
    JSON.stringify({ reject: ['nobody@via-smtp.nmtp.test'] }),
  );
  [redis, pf] = await Promise.all([
    startRedis(),
    startPostfix({ users: ['bsender', 'brej', 'bkill'] }),
  ]);
  key = makeGatewayKey(dir, 'gateway.nmtp.test', 'gw1');
  lateCert = generateSelfSigned(join(dir, 'late-tls'), '127.0.0.1');
  latePort = await freeTcpPort();
  const rec = recordingLog();
  events = rec.events;
  gw = await startGateway(
    config({
      prefix: `gw-${randomBytes(4).toString('hex')}`,
      stateDir: join(dir, 'state'),
      maildir,
    }),
    { log: rec.log, env: { [ENV]: redis.url } },
  );
  await pf.setTransport({
    'demo.nmtp.test': `nmtp-lmtp:inet:127.0.0.1:${gw.ports['lmtp:0']}`,
    'via-smtp.nmtp.test': `nmtp-smtp:[127.0.0.1]:${gw.ports['smtp:1']}`,
    'late.nmtp.test': `nmtp-smtp:[127.0.0.1]:${gw.ports['smtp:1']}`,
  });
});

after(async () => {
  await gw?.close();
  await late?.close();
  await pf?.stop();
  await redis?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const context = (): string => `--- gateway ---\n${tail(events)}`;

async function send(from: string, to: string, id: string): Promise<void> {
  const r = await swaks({
    server: { port: pf.port },
    from,
    to,
    data: `From: ${from}\nTo: ${to}\nSubject: ${id} ✓ über Redis\nMessage-ID: <${id}@local.test>\n\nHello.\n`,
  });
  assert.equal(r.code, 0, r.transcript);
}

test('the BullMQ backend: swaks → Postfix → LMTP → gateway → NMTP → mailbox, signature valid', async () => {
  assert.equal(gw.queue.backend, 'bullmq');
  await send('bsender@local.test', 'bob@demo.nmtp.test', 'bull-1');
  const [stored] = await until(
    () => {
      const m = storedWithId(maildir, '<bull-1@local.test>');
      return m.length > 0 ? m : undefined;
    },
    'the message in the mailbox',
    30_000,
    context,
  );
  assert.equal(getField(stored!.message.root.fields, 'Subject'), 'bull-1 ✓ über Redis');
  const v = await verifyMessage(stored!.bytes, {
    resolveTxt: staticTxtResolver(new Map([[key.keyName, [key.keyRecord]]])),
    now: Math.floor(Date.now() / 1000),
    recipient: 'bob@demo.nmtp.test',
  });
  assert.deepEqual(
    v.signatures.map((s) => s.status),
    ['valid'],
  );
  assert.equal(
    await settledState(gw.queue, 'bsender@local.test', 'bob@demo.nmtp.test', context),
    'accepted',
  );
});

test('the BullMQ backend: a recipient refused after the SMTP 250 → the gateway’s DSN through Postfix', async () => {
  await send('brej@local.test', 'nobody@via-smtp.nmtp.test', 'bull-rej');
  const mail = await pf.waitForMail('brej', 1, 30_000);
  assert.equal(mail.length, 1);
  const dsn = parseDsn(new Uint8Array(mail[0]!.raw));
  // Written by the gateway (its Reporting-MTA), queued in Redis, delivered by smtp-out.
  assert.equal(dsn.reportingMta, 'localhost');
  assert.equal(dsn.outcomes.length, 1);
  assert.equal(dsn.outcomes[0]!.action, 'failed');
  assert.match(dsn.outcomes[0]!.status, /^5\./);
  const [entry] = await entriesFrom(gw.queue, 'brej@local.test');
  assert.ok(entry !== undefined);
  assert.equal((await dsnEntriesAbout(gw.queue, entry.id)).length, 1);
});

test('Redis killed -9 and restarted after the 250: the message is still delivered', async () => {
  await send('bkill@local.test', 'kim@late.nmtp.test', 'bull-kill');
  // Answered 250 and queued in Redis; its receiver is down, so it waits for a retry.
  const [entry] = await until(
    async () => {
      const e = await entriesFrom(gw.queue, 'bkill@local.test');
      return e.length > 0 && e[0]!.recipients[0]!.attempts >= 1 ? e : undefined;
    },
    'a failed first attempt',
    30_000,
    context,
  );
  assert.equal(entry!.recipients[0]!.state, 'pending');
  await pf.waitForQueue((q) => q.length === 0, 30_000);

  await redis.kill9();
  await redis.restart();
  late = await serveMailbox({
    host: '127.0.0.1',
    port: latePort,
    ...lateCert,
    serverName: '127.0.0.1',
    maildir: lateMaildir,
    resolveTxt: staticTxtResolver(new Map([[key.keyName, [key.keyRecord]]])),
  });
  await until(
    () => (storedWithId(lateMaildir, '<bull-kill@local.test>').length > 0 ? true : undefined),
    'the message at the late receiver after the Redis restart',
    40_000,
    context,
  );
  const done = await until(
    async () => {
      const [e] = await entriesFrom(gw.queue, 'bkill@local.test');
      return e?.recipients[0]?.state === 'accepted' ? e : undefined;
    },
    'the entry accepted',
    20_000,
    context,
  );
  assert.equal(done.id, entry!.id);
  assert.equal(storedWithId(lateMaildir, '<bull-kill@local.test>').length, 1);
});

test('the gateway refuses to start on a Redis without AOF', async () => {
  const volatile = await startRedis({ config: { appendonly: 'no' } });
  try {
    const d = mkdtempSync(join(dir, 'refused-'));
    await assert.rejects(
      startGateway(
        config({ prefix: 'refused', stateDir: join(d, 'state'), maildir: join(d, 'maildir') }),
        { log: recordingLog().log, env: { [ENV]: volatile.url } },
      ),
      (e: unknown) => e instanceof NmtpError && e.code === 'NMTP_ERR_QUEUE_NOT_DURABLE',
    );
  } finally {
    await volatile.stop();
  }
});
