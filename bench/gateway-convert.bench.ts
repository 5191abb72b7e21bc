/**
 * What the gateway's smtp-in pays per 4 KB message to turn legacy mail into signed NMTP,
 * against mailparser's simpleParser on the same octets (what a naive gateway pays just to
 * parse): same process, interleaved rounds, ops/s and the ratio per round.
 *
 *   node --import tsx bench/gateway-convert.bench.ts [--rounds 8] [--seconds 0.5]
 *   npm run bench gateway          (runs this and bench/gateway.bench.ts)
 *
 * Measured, each on the same octets:
 * - "convert + sign": legacyToFramed (adapters/mime), encodeMessage, signMessage with the
 *   options smtp-in's convertAndSign passes (envelope, provenance, limits, ed25519 key);
 * - "smtp-in DATA": SmtpIn.data(), the whole DATA path of src/gateway/smtp-in.ts (bare
 *   line end scan, size and header checks, envelope meta, convert + sign, the queue call,
 *   log events to a silent logger), with a queue that stores nothing and answers at once,
 *   so what is left is the CPU smtp-in spends before the queue's fsync;
 * - "simpleParser": mailparser's simpleParser(octets).
 * Rounds rotate the order (A B C, C B A, …) so load from other jobs hits every side.
 */
import { cpus, loadavg } from 'node:os';
import { simpleParser } from 'mailparser';
import { legacyToFramed, type ConvertOptions } from '../adapters/mime/index.ts';
import { encodeMessage } from '../src/core/frame/index.ts';
import { keyPairFromSeed } from '../src/core/keys/index.ts';
import { signMessage } from '../src/core/message/index.ts';
import { validateConfig } from '../src/gateway/config.ts';
import { silentLog } from '../src/gateway/observe/log.ts';
import type { AcceptedRcpt, MailFrom, Router, SmtpSession } from '../src/gateway/ports.ts';
import { SmtpIn } from '../src/gateway/smtp-in.ts';
import type { QueueBackend } from '../src/queue/port.ts';
import type { QueuedSubmission } from '../src/queue/types.ts';
import { sourceBody } from './lib-measure.ts';

const FROM = 'a@src.test';
const RCPT = 'b@demo.nmtp.test';
const KEY = keyPairFromSeed(new Uint8Array(32).fill(5));
const CONFIG = validateConfig({});

// ---------------------------------------------------------------------------------------
// Inputs: about 4 KB each, CRLF

/** What `smtp-source -l 4096` sends (bench/gateway.bench.ts's load): four header lines, 'X' lines. */
function smtpSourceMessage(size: number): Buffer {
  const head =
    `From: <${FROM}>\r\nTo: <${RCPT}>\r\nDate: Mon,  7 Dec 2026 14:07:01 +0000 (UTC)\r\n` +
    `Message-Id: <0938.0003.0001@vm>\r\n\r\n`;
  return Buffer.from(head + sourceBody(size));
}

const HEAD =
  'From: "Ålice Müller" <alice@example.com>\r\nTo: Bob <b@demo.nmtp.test>\r\n' +
  'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\nDate: Mon, 07 Dec 2026 14:00:00 +0100\r\n' +
  'Message-ID: <bench-4k@example.com>\r\nMIME-Version: 1.0\r\n';

/** A UTF-8 text/plain message sent 8bit (bench/convert.bench.ts's 4 KB input). */
function textMessage(): Buffer {
  const text = 'Grüße aus Köln — 12345 lorem ipsum dolor sit amet.\r\n'.repeat(72);
  return Buffer.from(
    `${HEAD}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${text}`,
  );
}

/** multipart/alternative: quoted-printable text and HTML, as mail clients send. */
function alternativeMessage(): Buffer {
  const words = 'Grüße aus Köln, schöne Tage — lorem ipsum dolor sit amet, consectetur. ';
  const qp = (s: string): string =>
    Buffer.from(s, 'utf8')
      .toString('latin1')
      .replace(/[^\x20-\x3c\x3e-\x7e]/g, (c) => `=${c.charCodeAt(0).toString(16).toUpperCase()}`)
      .replace(/.{72}/g, '$&=\r\n');
  const text = qp(words.repeat(22));
  const html = qp(`<html><body><p>${words.repeat(14)}</p><p>Bob</p></body></html>`);
  return Buffer.from(
    `${HEAD}Content-Type: multipart/alternative; boundary="=_alt_="\r\n\r\n` +
      `--=_alt_=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${text}\r\n` +
      `--=_alt_=\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${html}\r\n` +
      `--=_alt_=--\r\n`,
  );
}

const INPUTS: Record<string, () => Buffer> = {
  'smtp-source 4 KB (ASCII, no MIME)': () => smtpSourceMessage(4096),
  '4 KB text/plain UTF-8 8bit': textMessage,
  '4 KB multipart/alternative QP': alternativeMessage,
};

// ---------------------------------------------------------------------------------------
// The three paths

const SESSION: SmtpSession = {
  id: 'bench',
  protocol: 'smtp',
  remoteAddress: '127.0.0.1',
  remotePort: 40000,
  helo: 'vm',
  tls: false,
};
const MAIL: MailFrom = { address: FROM, smtputf8: false };

function convertOptions(now: number): ConvertOptions {
  return {
    gateway: CONFIG.gateway.domain,
    now,
    envelope: { mailFrom: FROM, rcptTo: [RCPT], clientIp: '127.0.0.1', helo: 'vm' },
    limits: {
      maxMessageBytes: CONFIG.smtp.limits.messageSize,
      maxDepth: Math.min(CONFIG.smtp.limits.mimeDepth, 30),
      maxHeaderBytes: CONFIG.smtp.limits.headerSize,
    },
  };
}

function sign(framed: Uint8Array, now: number): Uint8Array {
  const t = Math.floor(now / 1000);
  return signMessage(framed, {
    key: KEY,
    domain: CONFIG.gateway.domain,
    selector: CONFIG.gateway.selector,
    recipients: [RCPT],
    signedAt: t,
    expiresAt: t + CONFIG.queue.retry.maxAge + 2 * 86400,
    salt: new Uint8Array(16).fill(1),
  });
}

/** smtp-in's convertAndSign, step for step (src/gateway/smtp-in.ts). */
async function convertAndSign(raw: Buffer): Promise<number> {
  const now = Date.now();
  const { message } = await legacyToFramed(raw, convertOptions(now));
  return sign(encodeMessage(message), now).length;
}

/** The three steps of convert + sign alone, each on its own input made once. */
async function steps(raw: Buffer): Promise<[string, (b: Buffer) => Promise<number>][]> {
  const now = Date.now();
  const { message } = await legacyToFramed(raw, convertOptions(now));
  const framed = encodeMessage(message);
  return [
    ['legacyToFramed', async (b) => (await legacyToFramed(b, convertOptions(now))).warnings.length],
    ['encodeMessage', async () => encodeMessage(message).length],
    ['signMessage', async () => sign(framed, now).length],
  ];
}

/** SmtpIn over a queue that keeps nothing: the DATA path up to the queue's fsync. */
async function smtpInPath(): Promise<(raw: Buffer) => Promise<number>> {
  const router: Router = {
    route: async (address) => ({ transport: 'nmtp', address, via: 'static-srv', why: 'bench' }),
  };
  let stored = 0;
  const queue = {
    backend: 'none',
    add: async (n: { message: Uint8Array }) => {
      stored += n.message.length;
      return {} as QueuedSubmission;
    },
    delete: async () => true,
  } as unknown as QueueBackend;
  const smtpIn = new SmtpIn({ config: CONFIG, router, queue, key: KEY, log: silentLog() });
  const r = await smtpIn.rcptTo(SESSION, MAIL, { address: RCPT }, []);
  if (!('note' in r)) throw new Error(`RCPT refused: ${JSON.stringify(r)}`);
  const rcpts: AcceptedRcpt[] = [{ address: RCPT, note: r.note }];
  return async (raw) => {
    // As the listener hands DATA over: smtp-server's chunks (at most 64 KiB each).
    async function* body(): AsyncIterable<Uint8Array> {
      for (let i = 0; i < raw.length; i += 65536) yield raw.subarray(i, i + 65536);
    }
    const reply = await smtpIn.data(SESSION, MAIL, rcpts, body());
    if (Array.isArray(reply) || (reply as { code: number }).code !== 250) {
      throw new Error(`DATA refused: ${JSON.stringify(reply)}`);
    }
    return stored;
  };
}

async function parse(raw: Buffer): Promise<number> {
  const m = await simpleParser(raw);
  return m.text?.length ?? 0;
}

// ---------------------------------------------------------------------------------------

async function rate(fn: (b: Buffer) => Promise<number>, raw: Buffer, seconds: number) {
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < seconds || n < 5) {
    await fn(raw);
    n++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  }
  return n / elapsed;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const at = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i < 0 ? undefined : argv[i + 1];
  };
  const rounds = Number(at('--rounds') ?? 8);
  const seconds = Number(at('--seconds') ?? 0.5);
  console.log(
    `node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} threads), ` +
      `load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}; ${rounds} rounds × ${seconds} s per path`,
  );
  const paths: [string, (b: Buffer) => Promise<number>][] = [
    ['convert + sign', convertAndSign],
    ['smtp-in DATA', await smtpInPath()],
    ['simpleParser', parse],
  ];
  const rows = [
    '| input | octets | convert + sign msg/s | smtp-in DATA msg/s | simpleParser msg/s | **convert + sign ÷ simpleParser** median (range) | **smtp-in DATA ÷ simpleParser** median (range) | µs/msg: convert + sign / smtp-in DATA / simpleParser |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const breakdown = [
    '| input | legacyToFramed µs | encodeMessage µs | signMessage µs | sum µs |',
    '| --- | ---: | ---: | ---: | ---: |',
  ];
  for (const [name, make] of Object.entries(INPUTS)) {
    const raw = make();
    // Warm-up: JIT and mailparser's lazy modules, every path.
    for (const [, fn] of paths) for (let i = 0; i < 200; i++) await fn(raw);
    const got = paths.map(() => [] as number[]);
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? [0, 1, 2] : [2, 1, 0];
      for (const i of order) got[i]!.push(await rate(paths[i]![1], raw, seconds));
    }
    const ratio = (i: number): string => {
      const per = got[i]!.map((x, r) => x / got[2]![r]!);
      return `**${median(per).toFixed(2)}×** (${Math.min(...per).toFixed(2)}–${Math.max(...per).toFixed(2)})`;
    };
    const med = got.map(median);
    console.log(
      `${name}: ${raw.length} octets; msg/s by round: ` +
        paths.map(([p], i) => `${p} ${got[i]!.map((x) => x.toFixed(0)).join(' ')}`).join('; '),
    );
    rows.push(
      `| ${name} | ${raw.length} | ${med[0]!.toFixed(0)} | ${med[1]!.toFixed(0)} | ${med[2]!.toFixed(0)} | ${ratio(0)} | ${ratio(1)} | ${med.map((x) => (1e6 / x).toFixed(0)).join(' / ')} |`,
    );
    // Where convert + sign's time goes: each step alone, rounds rotated as above.
    const parts = await steps(raw);
    for (const [, fn] of parts) for (let i = 0; i < 200; i++) await fn(raw);
    const per = parts.map(() => [] as number[]);
    for (let r = 0; r < Math.max(2, rounds >> 1); r++) {
      const order = r % 2 === 0 ? [0, 1, 2] : [2, 1, 0];
      for (const i of order) per[i]!.push(1e6 / (await rate(parts[i]![1], raw, seconds)));
    }
    const us = per.map(median);
    breakdown.push(
      `| ${name} | ${us.map((x) => x.toFixed(0)).join(' | ')} | ${us.reduce((a, b) => a + b, 0).toFixed(0)} |`,
    );
  }
  console.log(`\n${rows.join('\n')}\n\n${breakdown.join('\n')}`);
}

await main();
