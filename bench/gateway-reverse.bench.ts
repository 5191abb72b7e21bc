/**
 * The gateway's reverse direction end to end (NMTP in → SMTP out, docs/protocol.md §52.12)
 * against Postfix relaying the same load SMTP → SMTP, side by side in the same run (the
 * anchor: /work/shared/bench/postfix-relay.md): ingest and end-to-end msg/s, the ratio
 * gateway ÷ Postfix per round pair, latency p50/p99 per message, CPU per message and peak
 * memory of each side. Companion of bench/gateway.bench.ts (SMTP in → NMTP out); the
 * measuring helpers both use are in bench/lib-measure.ts.
 *
 *   node --import tsx bench/gateway-reverse.bench.ts     # 4 KB and 100 KB (≈ 4 min)
 *   npm run bench gateway-reverse
 *   options: --quick (smoke run), --rounds <n> (default 5), --sizes 4KB,100KB,
 *            --n <messages per round>, --latency <Postfix latency-pass messages, 0 = none>,
 *            --log info|silent (the gateway's log level; default info, its default),
 *            --reuse (smtp-source -d for Postfix: one connection per session, as the NMTP
 *            side keeps its sessions), --sink-dsn (the sinks announce DSN: see below),
 *            --warm <warm-up messages per side; default 3000 (a tenth with --quick):
 *            lib-gateway.ts's warmUp says why>,
 *            --answer-budget <s> (a diagnosis, not the default: 0 = every answer is a
 *            cookie at once, so ingest is nmtp-in + queue alone, delivery runs behind),
 *            --profile (the gateway's main thread profiled over the measured rounds, summary
 *            printed), --keep-profiles, --cpu-prof <dir> (node's --cpu-prof on the gateway
 *            process: every thread, start-up included), --store <dir> (default os.tmpdir())
 *
 * The two sides, each fresh per message size:
 * - gateway: startGateway() in its own child process (its RSS and CPU are its own), with its
 *   defaults but for ephemeral ports, no admin listener, `reverse.domains: [legacy.test]`,
 *   `smarthost.host` = a Postfix smtp-sink (accepts and discards), and the NMTP sender's key
 *   as a static TXT record. `reverse.answerBudget` is its default (5 s): the sender gets the
 *   smarthost's real answer in its NMTP session. Per message: the NMTP receiver (TLS 1.3,
 *   HELLO proof) → nmtp-in verifies the signature (and the replay rule), converts
 *   (adapters/legacy), adds Received and Authentication-Results, stores an 'smtp' entry in
 *   the embedded queue (fsync'd) → qmgr → smtp-out (nodemailer's SMTPConnection, pooled) → the sink; the
 *   receiver answers 250 once the queue records the sink's 250. It logs at its default
 *   level (info, JSON) into a file beside its queue.
 * - Postfix: a private instance (test/harness/postfix.ts, Debian's Postfix 3.7, queue files
 *   fsync'd as always), relayhost = another smtp-sink of the same kind,
 *   default_destination_concurrency_limit = 20, smtpd_peername_lookup = yes.
 *
 * DSN: Postfix's smtp-sink announces DSN unless started with -N. The gateway's default
 * `reverse.confirm: dsn` then treats the sink's 250 as "accepted, success DSN pending" and
 * waits for a DSN that a discarding sink never sends: every answer would be the 5 s budget
 * and a cookie (--sink-dsn shows it). So both sinks run with -N (no DSN announced), and the
 * gateway keeps its default configuration: a 250 from a peer without DSN is final at once
 * (state.ts). This is the sink telling the truth, not a setting the gateway needs; with a
 * real Postfix smarthost that offers DSN the answer would wait for Postfix's success DSN to
 * come back through smtp-in (one more SMTP transaction per message, not measured here).
 *
 * Load and throughput:
 * - gateway: 20 concurrent NMTP transfer clients, each a transferDeliver (src/queue/deliver.ts:
 *   the project's transfer client with its TransferPool, one session kept open, as a peer's
 *   gateway sends) in this process, one message per transfer, one recipient
 *   (b@legacy.test). Messages are built, signed (ed25519, for the recipient) and their
 *   layout computed before timing. Ingest = N ÷ time until every transfer has its final
 *   NMTP answer; end-to-end = N ÷ time until the sink has received the N-th message
 *   (smtp-sink -c). Latency per message: send → final answer, from every measured round.
 * - Postfix: smtp-source `-m N -s 20 -l SIZE` (a new connection per message, as the anchor;
 *   -d with --reuse). Ingest = N ÷ time until smtp-source returns; end-to-end = N ÷ time
 *   until its sink has the N-th message. Latency (smtp-source reports none): a separate
 *   pass with bench/lib-measure.ts's generator (20 sessions, one connection per message):
 *   connect → 250, and connect → delivered (the mtime of the message's file at a second
 *   smtp-sink with -d, reached through a transport_maps entry for lat.test).
 * - The message: the body is smtp-source's (lines of "0XXX…", SIZE octets); the gateway's
 *   framed message adds From, To, Subject, Date, Message-Id, Content-Type and the signature.
 *   The octets at each sink are printed per size.
 * Rounds are interleaved (gateway, Postfix, then Postfix, gateway, …) after one warm-up of
 * each; the ratio is taken per round pair and reported as median and range.
 *
 * CPU per message: utime + stime from /proc over each side's own rounds: the gateway process
 * (every thread); Postfix's daemons (live ones plus what master reaped); the sinks apart;
 * the NMTP load generator (this process, process.cpuUsage) apart — it shares the 2 vCPUs with
 * the gateway, as smtp-source does with Postfix. Memory: the gateway's VmHWM; Postfix's
 * processes' VmRSS and Pss summed, sampled every 500 ms, the peak of the sums.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { bytesSource, type MessageSource } from '../src/client/source.ts';
import { encodeMessage } from '../src/core/frame/index.ts';
import { signMessage } from '../src/core/message/index.ts';
import { transferDeliver, type ClosableDeliverFn } from '../src/queue/deliver.ts';
import { startPostfix, startSmtpSink, type SmtpSink } from '../test/harness/postfix.ts';
import { makeGatewayKey, type GatewayKey } from '../test/support/gateway-e2e.ts';
import {
  PostfixMemory,
  SESSIONS,
  TICK,
  countingSink,
  fmt,
  latencyPass,
  mainThreadCpu,
  median,
  percentile,
  postfixCpu,
  runBench,
  procCpu,
  smtpSource,
  sourceBody,
  spread,
  statusKb,
} from './lib-measure.ts';
import {
  GatewayProcess,
  benchGatewayConfig,
  childArgs,
  commonBenchOptions,
  serveGatewayChild,
  warmUp,
  type CommonBenchOptions,
} from './lib-gateway.ts';

type Side = 'gateway' | 'postfix';
const SIZES = { '4KB': 4096, '100KB': 102400 } as const;
type SizeName = keyof typeof SIZES;
const SENDER = 'sender.test';
const LEGACY_DOMAIN = 'legacy.test';
const GW_RCPT = `b@${LEGACY_DOMAIN}`;
const PF_RCPT = 'b@bench.test';
const PF_LAT_RCPT = 'b@lat.test';

// ---------------------------------------------------------------------------------------
// The gateway child

interface ChildArgs {
  dir: string;
  log: 'info' | 'silent';
  sinkPort: number;
  keyName: string;
  keyRecord: string;
  /** reverse.answerBudget; undefined = its default. */
  answerBudget: number | undefined;
}

function child(a: ChildArgs): Promise<void> {
  const config = benchGatewayConfig(a.dir, a.log, {
    reverse: {
      domains: [LEGACY_DOMAIN],
      ...(a.answerBudget === undefined ? {} : { answerBudget: a.answerBudget }),
    },
    routing: { staticRecords: { txt: [{ name: a.keyName, value: a.keyRecord }] } },
    smarthost: { host: `127.0.0.1:${a.sinkPort}` },
  });
  // 'await' is a check after the timing, not a measurement: every 20 ms is enough.
  return serveGatewayChild(config, 20);
}

// ---------------------------------------------------------------------------------------
// The NMTP load: signed messages, 20 transfer clients

const utf8 = new TextEncoder();

interface Prepared {
  readonly source: MessageSource;
  readonly job: {
    kind: 'deliver';
    recipients: readonly string[];
    size: number;
    digest: string;
    signers: readonly string[];
  };
}

/** A framed message from sender.test to `rcpt`, signed, with its layout computed. */
async function prepare(key: GatewayKey, rcpt: string, body: string): Promise<Prepared> {
  const now = Math.floor(Date.now() / 1000);
  const message = signMessage(
    encodeMessage({
      trace: [],
      root: {
        fields: [
          { name: 'From', value: `<a@${SENDER}>` },
          { name: 'To', value: `<${rcpt}>` },
          { name: 'Subject', value: 'reverse bench' },
          { name: 'Date', value: new Date().toISOString().replace(/\.\d+Z$/, 'Z') },
          { name: 'Message-Id', value: `<${randomBytes(10).toString('hex')}@${SENDER}>` },
          { name: 'Content-Type', value: 'text/plain' },
        ],
        body: utf8.encode(body),
      },
    }),
    {
      key: key.key,
      domain: SENDER,
      selector: 's1',
      recipients: [rcpt],
      signedAt: now,
      expiresAt: now + 86400,
      salt: randomBytes(16),
    },
  );
  const source = bytesSource(message);
  const layout = await source.layout();
  return {
    source,
    job: {
      kind: 'deliver',
      recipients: [rcpt],
      size: layout.size,
      digest: layout.digest,
      signers: layout.signers,
    },
  };
}

/** The 20 NMTP senders: each its own transfer client (pool) holding one session. */
class NmtpLoad {
  private readonly clients: ClosableDeliverFn[];
  constructor(key: GatewayKey, port: number, sessions: number) {
    this.clients = Array.from({ length: sessions }, () =>
      transferDeliver({
        identity: { domain: SENDER, selector: 's1', key: key.key },
        srv: () =>
          Promise.resolve({
            status: 'ok',
            targets: [{ name: '127.0.0.1', port, priority: 0, weight: 0 }],
          }),
        // The gateway's demo certificate, trusted as a peer's would be by its CA.
        connect: { insecureTls: true },
      }),
    );
  }

  /**
   * Sends every message, one per transfer, `sessions` at a time; the latency of each from
   * the call to its final answer. `answers` counts the final replies by code.
   */
  async run(
    messages: readonly Prepared[],
    sessions = this.clients.length,
  ): Promise<{ ms: number; latency: number[]; answers: Map<string, number> }> {
    const latency: number[] = [];
    const answers = new Map<string, number>();
    let next = 0;
    const t0 = performance.now();
    const worker = async (fn: ClosableDeliverFn): Promise<void> => {
      while (next < messages.length) {
        const m = messages[next++]!;
        const start = performance.now();
        const out = await fn({ domain: LEGACY_DOMAIN, job: m.job, message: m.source });
        latency.push(performance.now() - start);
        const r = out.recipients[0]?.reply;
        const k =
          r === undefined
            ? `none (${JSON.stringify(out.failure).slice(0, 120)})`
            : `${r.code}${r.code === 250 ? '' : ` ${r.text.slice(0, 120)}`}`;
        answers.set(k, (answers.get(k) ?? 0) + 1);
      }
    };
    await Promise.all(this.clients.slice(0, sessions).map(worker));
    return { ms: performance.now() - t0, latency, answers };
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
  }
}

// ---------------------------------------------------------------------------------------
// One cell: one message size, both sides fresh

interface Round {
  side: Side;
  ingest: number;
  e2e: number;
  cpu: number;
  /** Gateway: its main thread's share of `cpu`. */
  mainCpu: number;
  /** Gateway: the kernel's share of `cpu` (stime: file writes, fsync, sockets). */
  sysCpu: number;
  sinkCpu: number;
  /** Gateway: the NMTP load generator (this process), ms per message. */
  loadCpu: number;
}

interface CellResult {
  size: SizeName;
  n: number;
  rounds: Round[];
  failures: string[];
  /** Gateway: send → final NMTP answer, every measured message (20 sessions), sorted. */
  gwLatency: number[];
  /** Gateway at one session (the cost without queueing), sorted. */
  gwLatency1: number[];
  /** Postfix's latency pass: 20 sessions, then 1. */
  pfLatency: { sessions: number; toReply: number[]; toDelivery: number[] }[];
  octets: { gateway: number; postfix: number };
  gwRss: { start: number; hwm: number };
  pfMem: { start: number; peakRss: number; peakPss: number; procs: number };
}

async function runCell(o: Options, size: SizeName): Promise<CellResult> {
  const bytes = SIZES[size];
  const n = o.n ?? (o.quick ? (size === '4KB' ? 300 : 100) : size === '4KB' ? 1000 : 400);
  const warm = warmUp(size, o);
  const latN = o.latency ?? (o.quick ? 100 : size === '4KB' ? 400 : 200);
  const failures: string[] = [];
  const dir = mkdtempSync(join(o.store, 'nmtp-bench-gwrev-'));
  const key = makeGatewayKey(dir, SENDER, 's1');
  const sinkFlags = o.sinkDsn ? [] : ['-N'];
  const gwSink = await countingSink(sinkFlags);
  const pfSink = await countingSink(sinkFlags);
  const latSink: SmtpSink = await startSmtpSink();
  const logFd = openSync(join(dir, 'gateway.log'), 'w');
  const gw = new GatewayProcess(
    import.meta.url,
    {
      dir,
      log: o.log,
      sinkPort: gwSink.port,
      keyName: key.keyName,
      keyRecord: key.keyRecord,
      answerBudget: o.answerBudget,
    },
    logFd,
    o.cpuProf,
  );
  const pf = await startPostfix({
    relayhost: `[127.0.0.1]:${pfSink.port}`,
    transport: { 'lat.test': `smtp:[127.0.0.1]:${latSink.port}` },
    messageSizeLimit: 10_240_000,
    mainCf: { default_destination_concurrency_limit: '20', smtpd_peername_lookup: 'yes' },
  });
  const pfMem = new PostfixMemory(pf);
  const ready = await gw.next();
  const ports = ready.ports as Record<string, number>;
  const gwPid = gw.proc.pid!;
  const gwStartRss = statusKb(gwPid, 'VmRSS');
  pfMem.sample();
  const pfStart = pfMem.peakRss;
  const load = new NmtpLoad(key, ports['nmtp']!, SESSIONS);

  // Every message the gateway side sends, signed before any timing.
  const body = sourceBody(bytes);
  const lat1 = o.quick ? 20 : 50;
  const total = 2 * warm + o.rounds * n + lat1;
  const prepared: Prepared[] = [];
  for (let i = 0; i < total; i++) prepared.push(await prepare(key, GW_RCPT, body));
  let taken = 0;
  const take = (count: number): Prepared[] => prepared.slice(taken, (taken += count));

  // With --answer-budget 0 every answer is a cookie (350), by design.
  const answered = (a: Map<string, number>): number =>
    (a.get('250') ?? 0) +
    (o.answerBudget === 0
      ? [...a].filter(([k]) => k.startsWith('350')).reduce((t, [, c]) => t + c, 0)
      : 0);
  let gwSent = 0;
  let pfSent = 0;
  const gwLatency: number[] = [];
  const runSide = async (side: Side, count: number, measured: boolean): Promise<Round> => {
    if (side === 'gateway') {
      const msgs = take(count);
      const cpu0 = procCpu(gwPid)!.self;
      const main0 = mainThreadCpu(gwPid);
      const sys0 = stime(gwPid);
      const sink0 = procCpu(gwSink.pid)!.self;
      const load0 = process.cpuUsage();
      const r = await load.run(msgs);
      gwSent += count;
      const t0 = performance.now() - r.ms;
      if (!(await gwSink.reach(gwSent, 300_000))) {
        failures.push(`gateway's smtp-sink: ${gwSink.count()} of ${gwSent}`);
      }
      const e2e = performance.now() - t0;
      const cpu = procCpu(gwPid)!.self - cpu0;
      const mainCpu = mainThreadCpu(gwPid) - main0;
      const sysCpu = stime(gwPid) - sys0;
      const sinkCpu = procCpu(gwSink.pid)!.self - sink0;
      const loadUse = process.cpuUsage(load0);
      const ok = answered(r.answers);
      if (ok !== count) failures.push(`gateway answers: ${JSON.stringify([...r.answers])}`);
      if (measured) gwLatency.push(...r.latency);
      return {
        side,
        ingest: (count * 1000) / r.ms,
        e2e: (count * 1000) / e2e,
        cpu: (cpu * 1000) / count,
        mainCpu: (mainCpu * 1000) / count,
        sysCpu: (sysCpu * 1000) / count,
        sinkCpu: (sinkCpu * 1000) / count,
        loadCpu: (loadUse.user + loadUse.system) / 1000 / count,
      };
    }
    pfMem.start();
    const cpu0 = postfixCpu(pf);
    const sink0 = procCpu(pfSink.pid)!.self;
    const r = await smtpSource(pf.port, count, bytes, PF_RCPT, o.reuse);
    if (!r.ok) failures.push(`postfix smtp-source: ${r.detail}`);
    pfSent += count;
    const t0 = performance.now() - r.ms;
    if (!(await pfSink.reach(pfSent, 300_000))) {
      failures.push(`Postfix's smtp-sink: ${pfSink.count()} of ${pfSent}`);
    }
    const e2e = performance.now() - t0;
    const cpu = postfixCpu(pf) - cpu0;
    const sinkCpu = procCpu(pfSink.pid)!.self - sink0;
    pfMem.stop();
    return {
      side,
      ingest: (count * 1000) / r.ms,
      e2e: (count * 1000) / e2e,
      cpu: (cpu * 1000) / count,
      mainCpu: 0,
      sysCpu: 0,
      sinkCpu: (sinkCpu * 1000) / count,
      loadCpu: 0,
    };
  };

  // Warm-up (JIT, sessions opened, Postfix's daemons started), not counted.
  await runSide('gateway', warm, false);
  await runSide('postfix', warm, false);
  const rounds: Round[] = [];
  if (o.profile) await gw.ask({ type: 'profile-start' });
  for (let i = 0; i < o.rounds; i++) {
    const order: Side[] = i % 2 === 0 ? ['gateway', 'postfix'] : ['postfix', 'gateway'];
    for (const side of order) {
      const r = await runSide(side, n, true);
      rounds.push(r);
      console.log(
        `  ${size} round ${i + 1} ${side.padEnd(7)} ingest ${r.ingest.toFixed(0).padStart(4)} msg/s, ` +
          `end-to-end ${r.e2e.toFixed(0).padStart(4)} msg/s, CPU ${r.cpu.toFixed(2)} ms/msg` +
          (side === 'gateway'
            ? ` (main thread ${r.mainCpu.toFixed(2)}, kernel ${r.sysCpu.toFixed(2)}; load generator ${r.loadCpu.toFixed(2)})`
            : ''),
      );
    }
  }
  if (o.profile) {
    await gw.ask({
      type: 'profile-stop',
      file: join(o.profDir, `gateway-reverse ${size}.cpuprofile`),
    });
  }
  gwLatency.sort((a, b) => a - b);

  // The gateway at one session: what a message costs without queueing.
  const one = await load.run(take(lat1), 1);
  gwSent += lat1;
  if (answered(one.answers) !== lat1) {
    failures.push(`gateway answers (1 session): ${JSON.stringify([...one.answers])}`);
  }
  const gwLatency1 = one.latency.sort((a, b) => a - b);
  if (!(await gwSink.reach(gwSent, 60_000))) failures.push(`gateway's smtp-sink short`);

  // Postfix's latency passes: the generator, 20 sessions then 1.
  const pfLatency: CellResult['pfLatency'] = [];
  for (const [sessions, count] of [
    [SESSIONS, latN],
    [1, Math.min(latN, lat1)],
  ] as const) {
    if (count <= 0) continue;
    pfLatency.push({
      sessions,
      ...(await latencyPass({
        side: 'postfix',
        port: pf.port,
        rcpt: PF_LAT_RCPT,
        prefix: `lat-${size}-${sessions}`,
        count,
        bytes,
        sessions,
        target: join(latSink.dir, 'dumps'),
        failures,
        mem: pfMem,
      })),
    });
  }

  // What smtp-out sent per message: the size nmtp-in logs (reverse.queued, at info).
  const done = await gw.ask({ type: 'await', accepted: gwSent, timeoutMs: 60_000 });
  if (done.ok !== true) failures.push(`gateway queue: ${JSON.stringify(done.counts)}`);
  const octets = { gateway: legacySize(join(dir, 'gateway.log')), postfix: bytes };

  const gwHwm = statusKb(gwPid, 'VmHWM');
  if (gwSink.count() !== gwSent) failures.push(`gateway sink: ${gwSink.count()} for ${gwSent}`);
  if (pfSink.count() !== pfSent) failures.push(`Postfix sink: ${pfSink.count()} for ${pfSent}`);
  await load.close();
  await gw.stop();
  closeSync(logFd);
  await pf.stop();
  await gwSink.stop();
  await pfSink.stop();
  await latSink.stop();
  rmSync(dir, { recursive: true, force: true });
  return {
    size,
    n,
    rounds,
    failures,
    gwLatency,
    gwLatency1,
    pfLatency,
    octets,
    gwRss: { start: gwStartRss, hwm: gwHwm },
    pfMem: {
      start: pfStart,
      peakRss: pfMem.peakRss,
      peakPss: pfMem.peakPss,
      procs: pfMem.peakProcs,
    },
  };
}

/** Kernel CPU seconds (stime, every thread) of a process. */
function stime(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  // Fields after "(comm)": state is field 3; stime is field 15.
  return Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[12]) / TICK;
}

/** The legacy message's size as nmtp-in logged it (reverse.queued size=), if logged. */
function legacySize(logFile: string): number {
  try {
    const text = readFileSync(logFile, 'utf8');
    const m = /"event":"reverse\.queued"[^\n]*?"size":(\d+)/.exec(text);
    return m === null ? NaN : Number(m[1]);
  } catch {
    return NaN;
  }
}

// ---------------------------------------------------------------------------------------
// Options, tables

interface Options extends CommonBenchOptions<SizeName> {
  sinkDsn: boolean;
  answerBudget: number | undefined;
}

function parseOptions(argv: readonly string[]): Options {
  const { common, num } = commonBenchOptions(
    argv,
    Object.keys(SIZES) as SizeName[],
    'nmtp-bench-gwrev-prof-',
  );
  return { ...common, sinkDsn: argv.includes('--sink-dsn'), answerBudget: num('--answer-budget') };
}

function printTables(results: readonly CellResult[], o: Options): void {
  const by = (r: CellResult, s: Side): Round[] => r.rounds.filter((x) => x.side === s);
  const ratios = (r: CellResult, k: 'ingest' | 'e2e' | 'cpu'): number[] => {
    const g = by(r, 'gateway');
    const p = by(r, 'postfix');
    return g.map((x, i) => x[k] / p[i]![k]);
  };
  const m = (r: CellResult, s: Side, k: Exclude<keyof Round, 'side'>, d = 0): string =>
    fmt(median(by(r, s).map((x) => x[k])), d);
  console.log(
    `\n| message | rounds × N | ingest msg/s gateway | Postfix | **ingest gateway ÷ Postfix** median (range) | end-to-end msg/s gateway | Postfix | **end-to-end gateway ÷ Postfix** median (range) |`,
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    console.log(
      `| ${r.size} | ${o.rounds} × ${r.n} | ${m(r, 'gateway', 'ingest')} | ${m(r, 'postfix', 'ingest')} | ${spread(ratios(r, 'ingest'))} | ${m(r, 'gateway', 'e2e')} | ${m(r, 'postfix', 'e2e')} | ${spread(ratios(r, 'e2e'))} |`,
    );
  }
  console.log(
    `\n| message | CPU ms/msg gateway, all threads (main thread; kernel) | Postfix daemons | **CPU gateway ÷ Postfix** median (range) | sink: gateway's / Postfix's | NMTP load generator (this process) |`,
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    console.log(
      `| ${r.size} | ${m(r, 'gateway', 'cpu', 2)} (${m(r, 'gateway', 'mainCpu', 2)}; ${m(r, 'gateway', 'sysCpu', 2)}) | ${m(r, 'postfix', 'cpu', 2)} | ${spread(ratios(r, 'cpu'), 1)} | ${m(r, 'gateway', 'sinkCpu', 2)} / ${m(r, 'postfix', 'sinkCpu', 2)} | ${m(r, 'gateway', 'loadCpu', 2)} |`,
    );
  }
  const pq = (xs: readonly number[]): string =>
    `${fmt(percentile(xs, 50), 1)} / ${fmt(percentile(xs, 99), 1)}`;
  console.log(
    `\n| message | sessions | gateway: messages | send → final NMTP answer p50 / p99 ms (the sink's 250 is in it) | Postfix: messages | connect → 250 p50 / p99 ms | connect → at the sink p50 / p99 ms |`,
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    for (const [sessions, gwl] of [
      [SESSIONS, r.gwLatency],
      [1, r.gwLatency1],
    ] as const) {
      const p = r.pfLatency.find((x) => x.sessions === sessions);
      console.log(
        `| ${r.size} | ${sessions} | ${gwl.length} | ${pq(gwl)} | ${p?.toReply.length ?? 0} | ${p === undefined ? '—' : pq(p.toReply)} | ${p === undefined ? '—' : pq(p.toDelivery)} |`,
      );
    }
  }
  const mb = (kb: number): string => (kb / 1024).toFixed(0);
  console.log(
    `\n| message | octets at the sink: gateway / Postfix (body) | gateway VmRSS at start → VmHWM MB | Postfix summed VmRSS at start → peak MB | Postfix summed Pss peak MB | Postfix processes (peak) |`,
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    console.log(
      `| ${r.size} | ${fmt(r.octets.gateway)} / ${r.octets.postfix} | ${mb(r.gwRss.start)} → ${mb(r.gwRss.hwm)} | ${mb(r.pfMem.start)} → ${mb(r.pfMem.peakRss)} | ${mb(r.pfMem.peakPss)} | ${r.pfMem.procs} |`,
    );
  }
  const failures = results.flatMap((r) => r.failures.map((f) => `${r.size}: ${f}`));
  if (failures.length > 0) {
    console.log(`\n**${failures.length} failures: figures invalid**\n${failures.join('\n')}`);
  }
}

async function main(): Promise<void> {
  const args = childArgs<ChildArgs>();
  if (args !== undefined) return child(args);
  const o = parseOptions(process.argv.slice(2));
  await runBench(
    o,
    `gateway log ${o.log}, ` +
      `smtp-source ${o.reuse ? '-d (connections reused)' : '(a connection per message)'}, ` +
      `sinks ${o.sinkDsn ? 'announce DSN' : '-N (no DSN)'}, ` +
      `reverse.answerBudget ${o.answerBudget ?? 'default (5 s)'}`,
    (size) => runCell(o, size),
    (results) => printTables(results, o),
  );
}

await main();
