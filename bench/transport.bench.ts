/**
 * NMTP transfer against SMTP (the legacy baseline), side by side in the same run: messages
 * per second, p50/p99 latency per message, and peak RSS of every process, for 4 KB and 1 MB
 * messages over TLS 1.3 on loopback with 1, 10 and 50 concurrent sessions.
 *
 *   node --import tsx bench/transport.bench.ts             # all six cells (≈ 2–3 min)
 *   node --import tsx bench/transport.bench.ts --quick     # smoke run (≈ 30 s)
 *   node --import tsx bench/transport.bench.ts --profile   # 4 KB and 1 MB × 10 sessions, every
 *                                                           process profiled, summaries printed
 *   options: --store <dir> (where receivers store; default os.tmpdir()), --rounds <n>,
 *            --only 4KBx10,1MBx50 (cells), --per-connection (NMTP: one job per connection),
 *            --keep-profiles (with --profile: keep the .cpuprofile files and print where),
 *            --cpu-prof <dir> (node's --cpu-prof in every child: a .cpuprofile per thread,
 *            the mailbox writer's included, covering the whole process, start-up too),
 *            --no-journal (the NMTP mailbox stores each message in its own fsync'd file, as
 *            the SMTP side does), --same-store (the SMTP receiver stores through the NMTP
 *            mailbox's journal): each separates what storage gains from the rest
 *
 * Fairness (the same for both sides):
 * - Each side runs in two fresh child processes per cell (receiver, sender), so the sender
 *   and the receiver each have a core, nothing of one side runs while the other is measured,
 *   and each process's peak RSS belongs to that cell alone.
 * - TLS 1.3 only (minVersion on both ends), the same self-signed Ed25519 certificate
 *   (generateSelfSigned), verified by the client against it as its only CA.
 * - Durable storage before the answer: NMTP = the reference mailbox (serveMailbox: a
 *   message up to 256 KiB is appended to its journal and answered once an fdatasync
 *   covers it — one for all messages that arrived meanwhile —, then written into new/ as
 *   `<id>.nmtp`, the message with its Received trace field, by the writer thread;
 *   src/server/mailbox-store.ts);
 *   SMTP = smtp-server's onData streamed to a temp file, fsync, rename into new/,
 *   directory fsync, then 250. (A journal for smtp-server would be a different server
 *   than the baseline users run; the baseline is smtp-server as its docs show it.)
 *   Stored messages are counted in new/ at the end of each cell, after the NMTP
 *   receiver's files are all written (Mailbox.settled).
 * - The same message: a framed NMTP message signed (ed25519, test key) for its recipient;
 *   SMTP sends the legacy form of the SAME message (adapters/legacy framedToLegacy, 8BITMIME
 *   peer), so both carry the same text; the octet counts are printed.
 * - Connection reuse: nodemailer with pool: true, maxConnections = sessions, maxMessages
 *   unlimited; NMTP with the client's TransferPool, maxPerDestination = sessions
 *   (`nmtpSender`; `--per-connection` measures one job per connection instead).
 * - The same number of messages per cell and side; warm-up excluded; rounds interleaved
 *   A B, B A, … so load from other jobs on the machine hits both sides.
 * - No DNS on either side: the NMTP receiver's TXT resolver (HELLO proof key, CSV record)
 *   is a local map; smtp-server does no lookups.
 * - Every receiver's stored messages are counted at the end of a cell: a message not stored
 *   counts as a failure, and any failure marks the figures invalid.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { Session } from 'node:inspector/promises';
import { open, rename } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { framedToLegacy } from '../adapters/legacy/index.ts';
import { decodeMessage, encodeMessage } from '../src/core/frame/index.ts';
import {
  domainKeyName,
  keyPairFromSeed,
  printDomainKeyRecord,
  type TxtAnswer,
} from '../src/core/keys/index.ts';
import { signMessage } from '../src/core/message/index.ts';
import {
  bytesSource,
  deliverJob,
  transferTo,
  TransferPool,
  type ClientIdentity,
  type JobResult,
} from '../src/client/transfer.ts';
import { generateSelfSigned } from '../src/server/certs.ts';
import { serveMailbox, type Serving } from '../src/server/serve.ts';
import { MailboxWriter } from '../src/server/mailbox-writer.ts';
import { fsyncDir } from '../src/store/durable.ts';
import { ForkedChild, childArgs, startProfiler, stopProfiler } from './lib-gateway.ts';

type Side = 'nmtp' | 'smtp';
type Role = 'recv' | 'send';
const SIZES = { '4 KB': 4 * 1024, '1 MB': 1024 * 1024 } as const;
type SizeName = keyof typeof SIZES;

const SEED = Buffer.alloc(32, 7);
const KEY = keyPairFromSeed(SEED);
const IDENTITY: ClientIdentity = { domain: 'example.org', selector: 's1', key: KEY };
const FROM = 'alice@example.org';
const RCPT = 'bob@example.net';
const SERVER_NAME = 'mx.example.net';
const HOST = '127.0.0.1';

// ---------------------------------------------------------------------------------------
// The messages

/**
 * The framed message of about `size` octets (a text/plain UTF-8 body of short lines),
 * signed for RCPT, and its legacy form. Deterministic (fixed key, salt and time) so that
 * every process builds the same octets.
 */
function makeMessages(size: number): { framed: Uint8Array; legacy: Uint8Array } {
  const line = 'Grüße aus Köln — the quick brown fox jumps over the lazy dog 0123456789.\r\n';
  const lineBytes = Buffer.byteLength(line);
  // Leave room for the header block and the Signature trace field (≈ 400 octets).
  const body = Buffer.from(line.repeat(Math.max(1, Math.floor((size - 600) / lineBytes))));
  const t = Math.floor(Date.now() / 1000 / 86400) * 86400;
  const framed = signMessage(
    encodeMessage({
      trace: [],
      root: {
        fields: [
          { name: 'From', value: `Alice <${FROM}>` },
          { name: 'To', value: `<${RCPT}>` },
          { name: 'Subject', value: `Benchmark message of ${size} octets` },
          { name: 'Content-Type', value: 'text/plain; charset=utf-8' },
        ],
        body,
      },
    }),
    {
      key: KEY,
      domain: IDENTITY.domain,
      selector: IDENTITY.selector,
      recipients: [RCPT],
      signedAt: t,
      expiresAt: t + 7 * 86400,
      salt: Buffer.alloc(16, 1),
    },
  );
  const legacy = framedToLegacy(decodeMessage(framed), {
    smtputf8: false,
    eightBitMime: true,
    random: (n) => Buffer.alloc(n, 3),
  });
  return { framed, legacy };
}

// ---------------------------------------------------------------------------------------
// Child processes: receivers and senders

interface ChildArgs {
  side: Side;
  /** NMTP receiver: journal with group commit (default), or a fsync'd file per message. */
  journal: boolean;
  /** SMTP receiver: store through the same journal as the NMTP mailbox (--same-store). */
  sameStore: boolean;
  role: Role;
  dir: string;
  perConnection: boolean;
  profDir: string;
  certFile: string;
  keyFile: string;
}

/** Peak RSS, sampled every 20 ms (and at every report). */
let peakRss = 0;
function trackRss(): void {
  // process.memoryUsage.rss() reads one number (memoryUsage() walks the heap spaces too,
  // which showed up at 3 % of a profile); every 20 ms costs about 1 % of a core.
  const sample = (): void => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  };
  sample();
  setInterval(sample, 20).unref();
}
function rssReport(): { base: number; peak: number } {
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  return { base: baseRss, peak: peakRss };
}
let baseRss = 0;
function settleBase(): void {
  (globalThis as { gc?: () => void }).gc?.();
  baseRss = process.memoryUsage.rss();
  peakRss = baseRss;
}

/** The HELLO proof's key record and the client's CSV record, without DNS. */
function localTxt(name: string): TxtAnswer {
  if (name === domainKeyName(IDENTITY.selector, IDENTITY.domain)) {
    return {
      status: 'ok',
      records: [[printDomainKeyRecord({ publicKey: KEY.publicKey, flags: '' })]],
    };
  }
  if (name === `_nmtpclient.${IDENTITY.domain}`) {
    return { status: 'ok', records: [['v=NMTPCSV1; ip=127.0.0.1/32']] };
  }
  return { status: 'nxdomain' };
}

/** The NMTP receiver, to wait for its files in new/ before counting them. */
let nmtpServing: Serving | undefined;
/** With --same-store, the SMTP receiver stores through the NMTP mailbox's journal. */
let smtpJournal: MailboxWriter | undefined;

async function startReceiver(a: ChildArgs): Promise<number> {
  if (a.side === 'nmtp') {
    const s = await serveMailbox({
      host: HOST,
      port: 0,
      certFile: a.certFile,
      keyFile: a.keyFile,
      serverName: SERVER_NAME,
      maildir: a.dir,
      resolveTxt: localTxt,
      // Every session comes from 127.0.0.1: lift the per-address limit (default 20).
      maxPerIp: 1000,
      journal: a.journal,
      onError: (e) => console.error('nmtp receiver:', e),
    });
    nmtpServing = s;
    return s.port;
  }
  for (const d of ['tmp', 'new']) mkdirSync(join(a.dir, d), { recursive: true, mode: 0o700 });
  if (a.sameStore) smtpJournal = await MailboxWriter.start(a.dir, (e) => console.error(e));
  const server = new SMTPServer({
    secure: true,
    key: readFileSync(a.keyFile),
    cert: readFileSync(a.certFile),
    minVersion: 'TLSv1.3',
    name: SERVER_NAME,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    // No DNS on either side (smtp-server would reverse-resolve every client address).
    disableReverseLookup: true,
    maxClients: 1000,
    size: 64 * 1024 * 1024,
    onData(stream, session, callback) {
      void (async () => {
        if (smtpJournal !== undefined) {
          // --same-store: the NMTP mailbox's own journal, so only protocol and server differ.
          const chunks: Buffer[] = [];
          for await (const chunk of stream) chunks.push(chunk as Buffer);
          if (stream.sizeExceeded) throw new Error('message too big');
          const id = randomUUID();
          // The legacy message with its own trace header first, as the NMTP copy gets its
          // Received field (the mailbox stores a non-framed body as given: field '').
          const received = `Received: from ${session.hostNameAppearsAs} ([${session.remoteAddress}]) by ${SERVER_NAME} for <${RCPT}>; ${new Date().toUTCString()}\r\n`;
          await smtpJournal.store({
            ids: [id],
            fields: [''],
            body: Buffer.concat([Buffer.from(received), ...chunks]),
          });
          return id;
        }
        const id = randomUUID();
        const tmp = join(a.dir, 'tmp', id);
        const h = await open(tmp, 'wx', 0o600);
        try {
          for await (const chunk of stream) await h.write(chunk as Buffer);
          await h.sync();
        } finally {
          await h.close();
        }
        if (stream.sizeExceeded) throw new Error('message too big');
        await rename(tmp, join(a.dir, 'new', id));
        await fsyncDir(join(a.dir, 'new'));
        return id;
      })().then(
        (id) => callback(null, `queued as ${id}`),
        (e: unknown) => callback(e as Error),
      );
    },
  });
  server.on('error', (e) => console.error('smtp receiver:', e));
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const addr = server.server.address();
  return typeof addr === 'object' && addr !== null ? addr.port : 0;
}

/** How a side sends one message; resolves true when the recipient was accepted. */
interface Sender {
  readonly mode: string;
  send(): Promise<boolean>;
  close(): void;
}

/**
 * The NMTP sender: the client's connection pool (src/client/pool.ts, at most `sessions`
 * sessions kept open, one job at a time on each), or with `--per-connection` one job per
 * connection (connect, TLS handshake, greeting, HELLO with proof, RCPT, DATA, chunks,
 * answers, QUIT). The job (its announcement: size, digest, signers) and the message source
 * are made once, as a queue would keep them with the message.
 */
function nmtpSender(
  port: number,
  sessions: number,
  framed: Uint8Array,
  ca: Buffer,
  perConnection: boolean,
): Sender {
  const job = deliverJob([RCPT], framed);
  // One source for every send: its layout (a decode with full validation) is computed once.
  // (bytesSource keeps one source per Uint8Array, so passing `framed` itself is the same.)
  const source = bytesSource(framed);
  const endpoint = { host: HOST, port };
  const accepted = (r: JobResult): boolean =>
    r.failure === undefined && r.recipients.length === 1 && r.recipients[0]!.reply.code === 250;
  if (perConnection) {
    return {
      mode: 'one job per connection (transferTo)',
      send: async () => accepted(await transferTo(endpoint, IDENTITY, job, source, { ca })),
      close() {},
    };
  }
  const pool = new TransferPool(IDENTITY, { ca, maxPerDestination: sessions });
  return {
    mode: 'TransferPool (maxPerDestination = sessions)',
    send: async () => accepted(await pool.run(endpoint, job, source)),
    close() {
      void pool.close();
    },
  };
}

function smtpSender(port: number, sessions: number, legacy: Uint8Array, ca: Buffer): Sender {
  const transport = nodemailer.createTransport({
    host: HOST,
    port,
    secure: true,
    pool: true,
    maxConnections: sessions,
    maxMessages: Infinity,
    tls: { ca, minVersion: 'TLSv1.3', servername: '' },
    name: 'client.example.org',
  });
  const raw = Buffer.from(legacy);
  return {
    mode: 'nodemailer pool (maxConnections = sessions, maxMessages ∞)',
    async send() {
      const info = await transport.sendMail({
        envelope: { from: FROM, to: [RCPT] },
        raw,
      });
      return info.accepted.length === 1;
    },
    close() {
      transport.close();
    },
  };
}

interface RunResult {
  latencies: number[];
  elapsedMs: number;
  failures: number;
}

/** Sends `n` messages with `sessions` workers, each sending one message after another. */
async function runLoad(sender: Sender, n: number, sessions: number): Promise<RunResult> {
  const latencies: number[] = [];
  let next = 0;
  let failures = 0;
  const start = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      const t0 = process.hrtime.bigint();
      let ok = false;
      try {
        ok = await sender.send();
      } catch (e) {
        if (failures === 0) console.error(String(e));
      }
      if (!ok) failures++;
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  await Promise.all(Array.from({ length: sessions }, worker));
  return { latencies, elapsedMs: Number(process.hrtime.bigint() - start) / 1e6, failures };
}

type ParentMsg =
  | { type: 'init'; port: number; size: number; sessions: number }
  | { type: 'run'; n: number }
  | { type: 'rss' }
  | { type: 'profile-start' }
  | { type: 'profile-stop'; tag: string }
  | { type: 'cpu' }
  | { type: 'exit' };

async function child(a: ChildArgs): Promise<void> {
  trackRss();
  const reply = (m: unknown): void => void process.send!(m);
  if (a.role === 'recv') {
    const port = await startReceiver(a);
    settleBase();
    reply({ type: 'ready', port });
  } else {
    reply({ type: 'ready', port: 0 });
  }
  let sender: Sender | undefined;
  let sessions = 1;
  let profiler: Session | undefined;
  process.on('message', (m: ParentMsg) => {
    void (async () => {
      switch (m.type) {
        case 'init': {
          const { framed, legacy } = makeMessages(m.size);
          const ca = readFileSync(a.certFile);
          sessions = m.sessions;
          sender =
            a.side === 'nmtp'
              ? nmtpSender(m.port, m.sessions, framed, ca, a.perConnection)
              : smtpSender(m.port, m.sessions, legacy, ca);
          // The sender's base includes the message it holds: growth is what sending costs.
          settleBase();
          reply({
            type: 'inited',
            mode: sender.mode,
            octets: (a.side === 'nmtp' ? framed : legacy).length,
          });
          return;
        }
        case 'run':
          reply({ type: 'done', ...(await runLoad(sender!, m.n, sessions)) });
          return;
        case 'cpu': {
          // CPU time of the whole process, every thread (the mailbox writer's too), µs.
          const c = process.cpuUsage();
          reply({ type: 'cpu', us: c.user + c.system });
          return;
        }
        case 'rss': {
          // The receiver's count of stored messages, to check that every one arrived (a
          // journalled message's files appear in new/ moments after its answer).
          await nmtpServing?.mailbox.settled();
          await smtpJournal?.settled();
          const stored = a.role === 'recv' ? readdirSync(join(a.dir, 'new')).length : 0;
          reply({ type: 'rss', ...rssReport(), stored });
          return;
        }
        case 'profile-start':
          profiler = await startProfiler();
          reply({ type: 'ok' });
          return;
        case 'profile-stop':
          await stopProfiler(profiler!, join(a.profDir, `${m.tag} ${a.side} ${a.role}.cpuprofile`));
          reply({ type: 'ok' });
          return;
        case 'exit':
          sender?.close();
          process.exit(0);
      }
    })().catch((e: unknown) => {
      console.error(e);
      process.exit(1);
    });
  });
}

// ---------------------------------------------------------------------------------------
// The parent: cells, rounds, tables

/** --cpu-prof <dir>: node's own profiler in every child, one profile per thread. */
let cpuProfDir: string | undefined;

class Peer extends ForkedChild<ParentMsg> {
  constructor(args: ChildArgs) {
    super({
      module: import.meta.url,
      args,
      execArgv: ['--expose-gc'],
      stderr: 'inherit',
      cpuProf: cpuProfDir,
      exitMessage: (code) => `${args.side} ${args.role} exited ${code}`,
    });
  }
}

interface Totals {
  latencies: number[];
  elapsedMs: number;
  failures: number;
  n: number;
  /** msg/s of each round, in order (how much the machine's noise moved them). */
  rounds: number[];
}

interface CellResult {
  size: SizeName;
  sessions: number;
  octets: Record<Side, number>;
  mode: Record<Side, string>;
  totals: Record<Side, Totals>;
  rss: Record<Side, Record<Role, { base: number; peak: number }>>;
  /** CPU µs (all threads) each process used during the measured rounds. */
  cpu: Record<Side, Record<Role, number>>;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function runCell(
  o: Options,
  cert: { certFile: string; keyFile: string },
  size: SizeName,
  sessions: number,
  n: number,
  warm: number,
): Promise<CellResult> {
  const sides: Side[] = ['nmtp', 'smtp'];
  const peers = {} as Record<Side, Record<Role, Peer>>;
  const dirs: string[] = [];
  for (const side of sides) {
    const dir = mkdtempSync(join(o.store, `nmtp-bench-${side}-`));
    dirs.push(dir);
    const common = {
      side,
      dir,
      perConnection: o.perConnection,
      journal: o.journal,
      sameStore: o.sameStore,
      profDir: o.profDir,
      ...cert,
    };
    peers[side] = {
      recv: new Peer({ ...common, role: 'recv' }),
      send: new Peer({ ...common, role: 'send' }),
    };
  }
  const octets = {} as Record<Side, number>;
  const mode = {} as Record<Side, string>;
  for (const side of sides) {
    const [recv] = await Promise.all([peers[side].recv.next(), peers[side].send.next()]);
    const port = recv!.port as number;
    const r = await peers[side].send.ask({ type: 'init', port, size: SIZES[size], sessions });
    octets[side] = r.octets as number;
    mode[side] = r.mode as string;
  }
  const totals = {} as Record<Side, Totals>;
  for (const side of sides) {
    totals[side] = { latencies: [], elapsedMs: 0, failures: 0, n: 0, rounds: [] };
    await peers[side].send.ask({ type: 'run', n: warm }); // warm-up: JIT, pooled connections
  }
  const all = sides.flatMap((side) => [peers[side].recv, peers[side].send]);
  const cpuNow = async (): Promise<number[]> =>
    (await Promise.all(all.map((p) => p.ask({ type: 'cpu' })))).map((r) => r.us as number);
  const cpuBefore = await cpuNow();
  // Profiles cover the measured rounds only (not start-up, module loading or warm-up).
  if (o.profile) await Promise.all(all.map((p) => p.ask({ type: 'profile-start' })));
  for (let round = 0; round < o.rounds; round++) {
    const order = round % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) {
      const r = (await peers[side].send.ask({ type: 'run', n })) as unknown as RunResult;
      const t = totals[side];
      t.latencies.push(...r.latencies);
      t.elapsedMs += r.elapsedMs;
      t.failures += r.failures;
      t.n += n;
      t.rounds.push((n * 1000) / r.elapsedMs);
    }
  }
  const cpuAfter = await cpuNow();
  const used = cpuAfter.map((x, i) => x - cpuBefore[i]!);
  const cpu = {
    nmtp: { recv: used[0]!, send: used[1]! },
    smtp: { recv: used[2]!, send: used[3]! },
  };
  if (o.profile)
    await Promise.all(
      all.map((p) => p.ask({ type: 'profile-stop', tag: `${size.replace(' ', '')}x${sessions}` })),
    );
  const rss = {} as CellResult['rss'];
  for (const side of sides) {
    const recv = (await peers[side].recv.ask({ type: 'rss' })) as unknown as {
      base: number;
      peak: number;
      stored: number;
    };
    const sent = warm + o.rounds * n;
    if (recv.stored !== sent) {
      console.error(`${side} ${size} × ${sessions}: ${recv.stored} stored of ${sent} sent`);
      totals[side].failures += Math.abs(sent - recv.stored);
    }
    const send = (await peers[side].send.ask({ type: 'rss' })) as unknown as {
      base: number;
      peak: number;
    };
    rss[side] = { recv, send };
  }
  await Promise.all(sides.flatMap((s) => [peers[s].send.stop(), peers[s].recv.stop()]));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  for (const side of sides) totals[side].latencies.sort((x, y) => x - y);
  return { size, sessions, octets, mode, totals, rss, cpu };
}

interface Options {
  quick: boolean;
  profile: boolean;
  perConnection: boolean;
  /** Cells to run, e.g. ["4KBx10", "1MBx50"]; default all (a subset with --quick). */
  only: string[] | undefined;
  rounds: number;
  store: string;
  profDir: string;
  keepProfiles: boolean;
  journal: boolean;
  sameStore: boolean;
  cpuProf: string | undefined;
}

function parseOptions(argv: readonly string[]): Options {
  const at = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i < 0 ? undefined : argv[i + 1];
  };
  const quick = argv.includes('--quick');
  const profile = argv.includes('--profile');
  return {
    quick,
    profile,
    perConnection: argv.includes('--per-connection'),
    only: at('--only')?.split(','),
    rounds: Number(at('--rounds') ?? (quick ? 2 : 4)),
    store: at('--store') ?? tmpdir(),
    profDir: mkdtempSync(join(tmpdir(), 'nmtp-bench-prof-')),
    keepProfiles: argv.includes('--keep-profiles'),
    journal: !argv.includes('--no-journal'),
    sameStore: argv.includes('--same-store'),
    cpuProf: at('--cpu-prof'),
  };
}

const mb = (n: number): string => (n / 1048576).toFixed(0);
const fmt = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : '—');

function printTables(results: readonly CellResult[]): void {
  console.log(
    '\n| message | sessions | NMTP msg/s | SMTP msg/s | **NMTP ÷ SMTP** | NMTP p50 ms | SMTP p50 ms | NMTP p99 ms | SMTP p99 ms |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const rate = (s: Side): number => (r.totals[s].n * 1000) / r.totals[s].elapsedMs;
    const p = (s: Side, q: number): string => fmt(percentile(r.totals[s].latencies, q));
    console.log(
      `| ${r.size} | ${r.sessions} | ${fmt(rate('nmtp'))} | ${fmt(rate('smtp'))} | **${fmt(rate('nmtp') / rate('smtp'), 2)}×** | ${p('nmtp', 50)} | ${p('smtp', 50)} | ${p('nmtp', 99)} | ${p('smtp', 99)} |`,
    );
  }
  // CPU per message: less noisy than a rate on a shared machine (a stolen core slows a
  // run down but does not add CPU time to it).
  console.log(
    '\n| message | sessions | CPU µs/msg: NMTP receiver | NMTP sender | SMTP receiver | SMTP sender | **NMTP ÷ SMTP, both ends** |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const per = (s: Side, role: Role): number => r.cpu[s][role] / r.totals[s].n;
    const total = (s: Side): number => per(s, 'recv') + per(s, 'send');
    console.log(
      `| ${r.size} | ${r.sessions} | ${fmt(per('nmtp', 'recv'), 0)} | ${fmt(per('nmtp', 'send'), 0)} | ${fmt(per('smtp', 'recv'), 0)} | ${fmt(per('smtp', 'send'), 0)} | **${fmt(total('nmtp') / total('smtp'), 2)}×** |`,
    );
  }
  console.log(
    '\n| message | sessions | NMTP receiver RSS MB (base → peak) | NMTP sender | SMTP receiver | SMTP sender |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const cell = (s: Side, role: Role): string =>
      `${mb(r.rss[s][role].base)} → ${mb(r.rss[s][role].peak)}`;
    console.log(
      `| ${r.size} | ${r.sessions} | ${cell('nmtp', 'recv')} | ${cell('nmtp', 'send')} | ${cell('smtp', 'recv')} | ${cell('smtp', 'send')} |`,
    );
  }
  // "Memory flat with message size": growth of each process (peak − base) at 1 MB against
  // 4 KB, same session count.
  const growth = (r: CellResult, s: Side, role: Role): number =>
    r.rss[s][role].peak - r.rss[s][role].base;
  const pairs = results
    .filter((r) => r.size === '4 KB')
    .map((k) => [k, results.find((m) => m.size === '1 MB' && m.sessions === k.sessions)] as const)
    .filter((p): p is readonly [CellResult, CellResult] => p[1] !== undefined);
  if (pairs.length > 0) {
    console.log(
      '\n| sessions | RSS growth MB, 4 KB → 1 MB: NMTP receiver | NMTP sender | SMTP receiver | SMTP sender |',
    );
    console.log('| ---: | ---: | ---: | ---: | ---: |');
    for (const [k, m] of pairs) {
      const g = (s: Side, role: Role): string =>
        `${mb(growth(k, s, role))} → ${mb(growth(m, s, role))}`;
      console.log(
        `| ${k.sessions} | ${g('nmtp', 'recv')} | ${g('nmtp', 'send')} | ${g('smtp', 'recv')} | ${g('smtp', 'send')} |`,
      );
    }
  }
  const failures = results.reduce((s, r) => s + r.totals.nmtp.failures + r.totals.smtp.failures, 0);
  if (failures > 0) console.log(`\n**${failures} messages failed** (see stderr): figures invalid.`);
}

/** Where a profile frame's code lives: a project file, a package, or a node module. */
function codeFile(url: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const own = /\/((?:src|adapters|bench)\/.*)$/.exec(url);
  if (own) return own[1]!;
  return url;
}

/**
 * Each process's profile of the measured rounds: the share of its busy time (samples not
 * idle) spent in each file, inclusive (a file counts once per sample if any of its
 * functions is on the stack), and the functions with the most self time.
 */
function summariseProfiles(dir: string): void {
  interface Node {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }
  interface Profile {
    nodes: Node[];
    samples: number[];
    timeDeltas: number[];
  }
  for (const f of readdirSync(dir)
    .filter((x) => x.endsWith('.cpuprofile'))
    .sort()) {
    const prof = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Profile;
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const fn = (n: Node): string => {
      const file = codeFile(n.callFrame.url);
      return `${n.callFrame.functionName || '(anonymous)'}${file ? ` ${file}:${n.callFrame.lineNumber + 1}` : ''}`;
    };
    const self = new Map<string, number>();
    const files = new Map<string, number>();
    let total = 0;
    let idle = 0;
    prof.samples.forEach((id, i) => {
      const dt = prof.timeDeltas[i] ?? 0;
      const leaf = byId.get(id)!;
      const stack: Node[] = [];
      for (let n: Node | undefined = leaf; n; n = byId.get(parent.get(n.id) ?? -1)) stack.push(n);
      // The profiler's own stop (serialising the profile) is not the workload.
      if (stack.some((n) => n.callFrame.url === 'node:inspector')) return;
      total += dt;
      if (leaf.callFrame.functionName === '(idle)') {
        idle += dt;
        return;
      }
      self.set(fn(leaf), (self.get(fn(leaf)) ?? 0) + dt);
      const seen = new Set<string>();
      for (const n of stack) {
        const k = codeFile(n.callFrame.url) || n.callFrame.functionName;
        if (k === '(root)' || seen.has(k)) continue;
        seen.add(k);
        files.set(k, (files.get(k) ?? 0) + dt);
      }
    });
    const busy = total - idle;
    const top = (m: Map<string, number>, k: number): string =>
      [...m]
        .sort((x, y) => y[1] - x[1])
        .slice(0, k)
        .map(([n, t]) => `  ${((100 * t) / busy).toFixed(1).padStart(5)} %  ${n}`)
        .join('\n');
    console.log(
      `\n${f.replace('.cpuprofile', '')}: busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s` +
        `\n files (inclusive, % of busy):\n${top(files, 30)}\n functions (self, % of busy):\n${top(self, 20)}`,
    );
  }
}

async function main(): Promise<void> {
  const args = childArgs<ChildArgs>();
  if (args !== undefined) return child(args);
  const o = parseOptions(process.argv.slice(2));
  cpuProfDir = o.cpuProf;
  const certDir = mkdtempSync(join(tmpdir(), 'nmtp-bench-cert-'));
  const cert = generateSelfSigned(certDir, HOST);
  console.log(
    `node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} threads), ` +
      `load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}, store ${o.store}`,
  );
  const all: [SizeName, number][] = [
    ['4 KB', 1],
    ['4 KB', 10],
    ['4 KB', 50],
    ['1 MB', 1],
    ['1 MB', 10],
    ['1 MB', 50],
  ];
  const label = ([size, sessions]: [SizeName, number]): string =>
    `${size.replace(' ', '')}x${sessions}`;
  const chosen =
    o.only ??
    (o.profile ? ['4KBx10', '1MBx10'] : o.quick ? ['4KBx1', '4KBx10', '1MBx10'] : undefined);
  const plan = all.filter((c) => chosen === undefined || chosen.includes(label(c)));
  // Messages per round and side: enough for every session to send several (the pool
  // stays busy), few enough for the whole run to stay under 3 minutes on 2 vCPUs.
  const count = (size: SizeName, sessions: number): { n: number; warm: number } => {
    const n =
      size === '4 KB'
        ? Math.max(o.quick ? 100 : 200, sessions * 4)
        : Math.max(o.quick ? 20 : 30, sessions * 2);
    return { n, warm: Math.max(sessions * 2, size === '4 KB' ? 50 : 10) };
  };
  const results: CellResult[] = [];
  const start = Date.now();
  for (const [size, sessions] of plan) {
    const { n, warm } = count(size, sessions);
    const r = await runCell(o, cert, size, sessions, n, warm);
    results.push(r);
    console.log(
      `${size} × ${sessions}: ${r.totals.nmtp.n} messages per side (${o.rounds} × ${n}, after ${warm} warm-up), ` +
        `NMTP ${r.octets.nmtp} octets, SMTP ${r.octets.smtp} octets; msg/s by round: ` +
        `NMTP ${r.totals.nmtp.rounds.map((x) => x.toFixed(0)).join(' ')}, ` +
        `SMTP ${r.totals.smtp.rounds.map((x) => x.toFixed(0)).join(' ')}`,
    );
  }
  const first = results[0]!;
  console.log(`\nNMTP sender: ${first.mode.nmtp}\nSMTP sender: ${first.mode.smtp}`);
  console.log(
    `NMTP receiver stores: ${o.journal ? 'journal, group commit (default)' : "a fsync'd file per message (--no-journal)"}`,
  );
  console.log(
    `SMTP receiver stores: ${o.sameStore ? "the NMTP mailbox's journal (--same-store)" : "a fsync'd file per message, directory fsync'd (default)"}`,
  );
  printTables(results);
  console.log(
    `\n${((Date.now() - start) / 1000).toFixed(0)} s; load average now ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  if (o.profile) summariseProfiles(o.profDir);
  if (o.keepProfiles) console.log(`\nprofiles (.cpuprofile, for DevTools) kept in ${o.profDir}`);
  else rmSync(o.profDir, { recursive: true, force: true });
  rmSync(certDir, { recursive: true, force: true });
}

await main();
