/**
 * The gateway as a process, as an operator runs it: `nmtp-gateway start` with a config
 * file in a fresh directory delivers a first message and stops cleanly on SIGTERM; and a
 * gateway killed with SIGKILL while it is delivering, then started again on the same
 * directories, loses nothing it answered 250 for (at-least-once: every message arrives,
 * identified by its Message-ID). The reverse direction too: cookies given to NMTP senders
 * before a SIGKILL are still answered after the restart, and every message they were given
 * for reaches the legacy side.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { decodeAndValidate } from '../../src/core/message/index.ts';
import { getField } from '../../src/core/frame/index.ts';
import { RawSmtp } from '../harness/swaks.ts';
import { startSink } from '../adapters/smtp-sender/sink.ts';
import { makeGatewayKey, type GatewayKey } from '../support/gateway-e2e.ts';
import { nmtpSender, senderMessage } from './gateway-reverse.suite.ts';

const cli = fileURLToPath(new URL('../../src/cli/gateway.ts', import.meta.url));
const tsx = import.meta.resolve('tsx');

interface Child {
  readonly proc: ChildProcess;
  readonly ports: Record<string, number>;
  readonly exited: Promise<number | null>;
  readonly stderr: () => string;
}

/** Starts `nmtp-gateway start --config FILE` in `dir`; resolves with its bound ports. */
async function start(dir: string, config: string): Promise<Child> {
  const proc = spawn(process.execPath, ['--import', tsx, cli, 'start', '--config', config], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  // A death by signal is told in stderr() (the exit code alone is null).
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code, signal) => {
      if (signal !== null) err += `\n[exited on ${signal}]`;
      resolve(code);
    }),
  );
  const ports = await new Promise<Record<string, number>>((resolve, reject) => {
    proc.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /nmtp-gateway: ready \(([^;]*);/.exec(err);
      if (m) {
        resolve(
          Object.fromEntries(
            m[1]!.split(' ').map((kv) => {
              const [k, v] = kv.split('=');
              return [k!, Number(v)];
            }),
          ),
        );
      }
    });
    proc.once('exit', (code) => reject(new Error(`gateway exited ${code}:\n${err}`)));
  });
  return { proc, ports, exited, stderr: () => err };
}

function configIn(dir: string): string {
  const file = join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    stringify({
      smtp: { listeners: [{ protocol: 'smtp', listen: '127.0.0.1:0' }] },
      nmtp: { receiver: { listen: '127.0.0.1:0' } },
      admin: { listen: '127.0.0.1:0' },
      queue: { retry: { initial: 1, maxInterval: 1 } },
      log: { format: 'json', level: 'warn' },
    }),
  );
  return file;
}

async function send(port: number, n: number, tag: string): Promise<void> {
  const c = await RawSmtp.connect(port);
  try {
    assert.equal((await c.command('EHLO test.example')).code, 250);
    for (let i = 0; i < n; i++) {
      assert.equal((await c.command('MAIL FROM:<alice@example.org>')).code, 250);
      assert.equal((await c.command('RCPT TO:<bob@demo.nmtp.test>')).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      await c.send(
        Buffer.from(
          `From: alice@example.org\r\nTo: bob@demo.nmtp.test\r\nSubject: ${tag} ${i}\r\n` +
            `Message-ID: <${tag}-${i}@example.org>\r\n\r\n${'body line\r\n'.repeat(50)}.\r\n`,
        ),
      );
      const r = await c.reply();
      assert.equal(r.code, 250, r.raw);
    }
    await c.quit();
  } finally {
    c.close();
  }
}

/** Message-IDs of the messages in the demo maildir's new/. */
function delivered(dir: string): Set<string> {
  const newDir = join(dir, '.nmtp-run/gateway/maildir/new');
  const out = new Set<string>();
  let names: string[];
  try {
    names = readdirSync(newDir);
  } catch {
    return out;
  }
  for (const n of names) {
    const m = decodeAndValidate(new Uint8Array(readFileSync(join(newDir, n))));
    const id = getField(m.root.fields, 'Message-Id');
    if (id !== undefined) out.add(id);
  }
  return out;
}

async function until(ok: () => boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('nmtp-gateway start: a first message arrives in the NMTP mailbox; SIGTERM stops it cleanly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-proc-'));
  const g = await start(dir, configIn(dir));
  try {
    await send(g.ports['smtp:0']!, 1, 'first');
    await until(() => delivered(dir).has('<first-0@example.org>'), 'the first message');
  } finally {
    g.proc.kill('SIGTERM');
  }
  assert.equal(await g.exited, 0, g.stderr());
});

test('SIGKILL while delivering, then a restart: every message answered 250 arrives', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-kill-'));
  const config = configIn(dir);
  const g = await start(dir, config);
  const n = 30;
  // Three sessions at once; the gateway delivers while it receives.
  await Promise.all([0, 1, 2].map((k) => send(g.ports['smtp:0']!, n / 3, `kill${k}`)));
  g.proc.kill('SIGKILL');
  await g.exited;
  const before = delivered(dir).size;
  const g2 = await start(dir, config);
  try {
    const want = [0, 1, 2].flatMap((k) =>
      Array.from({ length: n / 3 }, (_, i) => `<kill${k}-${i}@example.org>`),
    );
    await until(() => {
      const got = delivered(dir);
      return want.every((id) => got.has(id));
    }, `all ${n} messages (had ${before} at the kill)`);
  } finally {
    g2.proc.kill('SIGTERM');
  }
  assert.equal(await g2.exited, 0, g2.stderr());
});

/**
 * Sends until the connection fails, recording the Message-ID of every message answered 250
 * (the kill comes at any point of a transaction: what was not answered 250 may or may not
 * arrive; what was must).
 */
async function sendUntilCut(port: number, tag: string, acked: string[]): Promise<void> {
  let c: RawSmtp;
  try {
    c = await RawSmtp.connect(port);
  } catch {
    return;
  }
  try {
    if ((await c.command('EHLO test.example')).code !== 250) return;
    for (let i = 0; ; i++) {
      if ((await c.command('MAIL FROM:<alice@example.org>')).code !== 250) return;
      if ((await c.command('RCPT TO:<bob@demo.nmtp.test>')).code !== 250) return;
      if ((await c.command('DATA')).code !== 354) return;
      const id = `<${tag}-${i}@example.org>`;
      await c.send(
        Buffer.from(
          `From: alice@example.org\r\nTo: bob@demo.nmtp.test\r\nSubject: ${tag} ${i}\r\n` +
            `Message-ID: ${id}\r\n\r\n${'body line\r\n'.repeat(50)}.\r\n`,
        ),
      );
      if ((await c.reply()).code !== 250) return;
      acked.push(id);
    }
  } catch {
    // The gateway is gone: the connection ended mid-transaction.
  } finally {
    c.close();
  }
}

test('SIGKILL under load, in the middle of transactions: every message answered 250 arrives', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-kill-load-'));
  const config = configIn(dir);
  const g = await start(dir, config);
  const acked: string[] = [];
  // Ten sessions sending without pause; the kill comes once 150 were answered, with
  // transactions in flight, deliveries running and files still to be written behind.
  const senders = Array.from({ length: 10 }, (_, k) =>
    sendUntilCut(g.ports['smtp:0']!, `load${k}`, acked),
  );
  await until(() => acked.length >= 150, '150 messages answered 250');
  g.proc.kill('SIGKILL');
  await g.exited;
  await Promise.all(senders);
  const want = [...acked];
  const g2 = await start(dir, config);
  try {
    await until(() => {
      const got = delivered(dir);
      return want.every((id) => got.has(id));
    }, `all ${want.length} messages answered 250`);
  } finally {
    g2.proc.kill('SIGTERM');
  }
  assert.equal(await g2.exited, 0, g2.stderr());
});

/**
 * A gateway config in `dir` for the reverse direction: NMTP for legacy.test delivered to
 * the sink at `smarthostPort`, the sender's key record static, retries `retry` s apart.
 */
function reverseConfigIn(
  dir: string,
  key: GatewayKey,
  smarthostPort: number,
  reverse: Record<string, unknown>,
  retry: number,
): string {
  const file = join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    stringify({
      smtp: { listeners: [{ protocol: 'smtp', listen: '127.0.0.1:0' }] },
      nmtp: { receiver: { listen: '127.0.0.1:0', minPoll: 1, maxPoll: 2 } },
      reverse: { domains: ['legacy.test'], ...reverse },
      routing: { staticRecords: { txt: [{ name: key.keyName, value: key.keyRecord }] } },
      smarthost: { host: `127.0.0.1:${smarthostPort}`, tls: 'none' },
      admin: { listen: '' },
      queue: { retry: { initial: retry, maxInterval: retry } },
      log: { format: 'json', level: 'warn' },
    }),
  );
  return file;
}

test('reverse direction: SIGKILL, then a restart: every cookie is still answered, nothing is lost', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-kill-rev-'));
  const key = makeGatewayKey(dir, 'sender.test', 's1');
  let open = false;
  // The legacy side defers everything until the restart: every answer is a cookie.
  const sink = await startSink({
    dsn: false,
    rcpt: () => (open ? undefined : '451 4.3.0 not now'),
  });
  const config = reverseConfigIn(dir, key, sink.port, { answerBudget: 0 }, 1);
  const g = await start(dir, config);
  let port = g.ports['nmtp']!;
  const sender = nmtpSender(key, () => port);
  try {
    const n = 20;
    const rcpts = Array.from({ length: n }, (_, i) => `user${i}@legacy.test`);
    const answers = await Promise.all(
      rcpts.map(async (r) =>
        (await sender.send([r], senderMessage(key, [r], `kill ${r}`))).get(r)!,
      ),
    );
    const cookies = answers.map((a) => {
      assert.equal(a.code, 350, JSON.stringify(a));
      return a.params.cookie!;
    });
    g.proc.kill('SIGKILL');
    await g.exited;
    await sender.close();
    const g2 = await start(dir, config);
    port = g2.ports['nmtp']!;
    try {
      for (const c of cookies) {
        const r = await sender.status(c);
        assert.ok(
          r.code === 350 || r.code === 250,
          `cookie ${c} after the restart: ${JSON.stringify(r)}`,
        );
      }
      open = true;
      for (const c of cookies) {
        const r = await sender.settle(c, 60_000);
        assert.equal(r.params.state, 'accepted', `${c}: ${JSON.stringify(r)}`);
      }
      // At least once (a kill mid-transaction may repeat one), never zero.
      for (const r of rcpts) {
        assert.ok(
          sink.transactions.some((t) => t.rcptTo.includes(r)),
          `${r} delivered`,
        );
      }
    } finally {
      await sender.close();
      g2.proc.kill('SIGTERM');
      assert.equal(await g2.exited, 0, g2.stderr());
    }
  } finally {
    await sink.close();
  }
});

test('reverse direction, SIGKILL under load: every 250 reached the legacy side, every cookie is answered after the restart and delivered', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-kill-rev-load-'));
  const key = makeGatewayKey(dir, 'sender.test', 's1');
  // Every fifth recipient is deferred by the legacy side until the restart: its sender gets
  // a cookie in the session; the others get the legacy side's 250.
  let open = false;
  const sink = await startSink({
    dsn: false,
    rcpt: (a) => (!open && /x\d*[05]@/.test(a) ? '451 4.3.0 not now' : undefined),
  });
  // A deferred recipient's next try comes after the answer budget (5 s): its sender gets
  // the cookie at once (§52.12.3); after the restart the retries deliver it.
  const config = reverseConfigIn(dir, key, sink.port, {}, 8);
  const g = await start(dir, config);
  let port = g.ports['nmtp']!;
  const sender = nmtpSender(key, () => port);
  const answered: { rcpt: string; code: number; cookie?: string }[] = [];
  // Ten NMTP sessions sending without pause; the kill comes once 120 were answered, with
  // transfers in flight and SMTP deliveries running.
  const loop = async (k: number): Promise<void> => {
    for (let i = 0; ; i++) {
      const rcpt = `u${k}x${i}@legacy.test`;
      let reply;
      try {
        reply = (await sender.send([rcpt], senderMessage(key, [rcpt], `load ${rcpt}`))).get(rcpt);
      } catch {
        return; // the gateway is gone: this transfer was cut off
      }
      if (reply === undefined) return;
      assert.ok(reply.code === 250 || reply.code === 350, `${rcpt}: ${JSON.stringify(reply)}`);
      answered.push({
        rcpt,
        code: reply.code,
        ...(reply.params.cookie === undefined ? {} : { cookie: reply.params.cookie }),
      });
    }
  };
  const loops = Array.from({ length: 10 }, (_, k) => loop(k));
  try {
    await until(() => answered.length >= 120, '120 transfers answered');
    g.proc.kill('SIGKILL');
    await g.exited;
    await Promise.all(loops);
    await sender.close();
    const delivered = answered.filter((a) => a.code === 250);
    const cookies = answered.filter((a) => a.code === 350);
    assert.ok(
      cookies.length > 0 && delivered.length > 0,
      `${delivered.length} / ${cookies.length}`,
    );
    // A 250 is the legacy side's own answer: the message is there already.
    for (const a of delivered) {
      assert.ok(
        sink.transactions.some((t) => t.rcptTo.includes(a.rcpt)),
        `${a.rcpt} at the sink`,
      );
    }
    const g2 = await start(dir, config);
    port = g2.ports['nmtp']!;
    try {
      open = true;
      for (const a of cookies) {
        const r = await sender.settle(a.cookie!, 60_000);
        assert.equal(r.params.state, 'accepted', `${a.rcpt} ${a.cookie}: ${JSON.stringify(r)}`);
        assert.ok(
          sink.transactions.some((t) => t.rcptTo.includes(a.rcpt)),
          `${a.rcpt} delivered`,
        );
      }
    } finally {
      await sender.close();
      g2.proc.kill('SIGTERM');
      assert.equal(await g2.exited, 0, g2.stderr());
    }
  } finally {
    await sink.close();
  }
});
