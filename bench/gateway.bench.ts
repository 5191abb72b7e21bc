/**
 * The gateway end to end (SMTP in → NMTP out) against Postfix relaying the same load
 * SMTP → SMTP, side by side in the same run (the anchor: /work/shared/bench/postfix-relay.md):
 * ingest and end-to-end msg/s, the ratio gateway ÷ Postfix per round, latency p50/p99 per
 * message, CPU per message and peak memory of each side.
 *
 *   node --import tsx bench/gateway.bench.ts            # 4 KB and 100 KB (≈ 3 min)
 *   npm run bench gateway                               # this and bench/gateway-convert.bench.ts
 *   options: --quick (smoke run, ≈ 1 min), --rounds <n> (default 5), --sizes 4KB,100KB,
 *            --n <messages per round>, --latency <messages per side, 0 = no latency pass>,
 *            --warm <warm-up messages per side; default 3000 (a tenth with --quick):
 *            lib-gateway.ts's warmUp says why>,
 *            --log info|silent (the gateway's log level; default info, its default),
 *            --log-to <file> (where its log goes; default a file beside its queue),
 *            --reuse (smtp-source -d: each session sends all its messages over one
 *            connection, as an MTA relays a backlog, instead of one connection per message),
 *            --profile (the gateway's main thread profiled over the measured rounds, summary
 *            printed), --keep-profiles, --cpu-prof <dir> (node's --cpu-prof on the gateway
 *            process and the separate receiver: every thread, start-up included), --store <dir> (default os.tmpdir()),
 *            --receiver separate|same (the gateway's next hop; default separate: below)
 *
 * The two sides, each fresh per message size:
 * - gateway: startGateway() in its own child process (so its RSS and CPU are its own), with
 *   its defaults (no admin listener) but for ephemeral ports: smtp-in (smtp-server) → the
 *   embedded queue (message and state files made durable by its journal's fdatasync before
 *   the 250) → the NMTP transfer client (TLS 1.3, pooled, 20 per destination) → the next
 *   hop, an NMTP receiver that stores durably (the reference mailbox: journal + fdatasync
 *   before its 250, then one file per message in new/). The message is converted
 *   (adapters/mime) and signed (ed25519); the receiver checks the gateway's HELLO proof
 *   against its key record and the frame and content digest of each message (the mailbox
 *   does not verify the message signature itself, in either mode). The gateway logs at its
 *   default level (info, JSON) into a file, as `nmtp-gateway start 2>log`.
 *   The next hop, `--receiver`:
 *   - separate (default): `nmtp serve` (src/cli/nmtp.ts) in its own process, as Postfix's
 *     smtp-sink is its own, so the gateway's CPU and memory exclude the receiver's, which
 *     are reported apart. It listens on an ephemeral loopback port with its own certificate
 *     (naming 127.0.0.1) and knows the gateway's key record (--key-record); the gateway has
 *     no receiver of its own (no local NMTP domain) and routes nmtp.bench.test to it by a
 *     static SRV record, trusting its certificate (nmtp.peerCa) as a peer's CA.
 *   - same (every run in bench/results-gateway.md before this option): the gateway's own
 *     receiver for demo.nmtp.test, in the gateway's process: its figures carry the
 *     receiver's work (TLS server side, proof check, the mailbox's journal and files).
 * - Postfix: a private instance (test/harness/postfix.ts, Debian's Postfix 3.7, queue
 *   files fsync'd as always), relayhost = Postfix's smtp-sink (accepts and discards),
 *   default_destination_concurrency_limit = 20, smtpd_peername_lookup = yes (its default, as
 *   the gateway's listener looks up client names too). It logs through postlogd to a file.
 *
 * Throughput: Postfix's own smtp-source (`-m N -s 20 -l SIZE`, a new connection per message)
 * against each side. Ingest = N ÷ time until smtp-source returns. End-to-end = N ÷ time
 * until the last message is delivered: for the gateway, until its queue's counts() show
 * every recipient `accepted` (the NMTP receiver answered 250, i.e. its journal fdatasync
 * covered the message, and the queue recorded that durably); for Postfix, until smtp-sink
 * has received the last message (its running counter, `smtp-sink -c`). Also shown: until
 * the receiver's maildir new/ holds every file as well (written after its 250; counted by
 * listing new/), and until `postqueue -j` is empty.
 * Rounds are interleaved (gateway, Postfix, then Postfix, gateway, …); the ratio is taken
 * per round pair and reported as median and range.
 *
 * Latency: smtp-source reports none, so a small generator here (one connection per message
 * as smtp-source, no pipelining; 20 sessions under load, then 1 session for the unloaded
 * cost) records per message the time from connect to the final 250 and to delivery: the
 * mtime of the message's file at the next hop (the receiver's maildir new/ file; for
 * Postfix, a second smtp-sink that keeps each message in a file, reached through a
 * transport_maps entry for lat.test), found by its Message-Id. File times come from the
 * kernel's coarse clock (a few ms of resolution).
 *
 * CPU per message: the processes' utime + stime from /proc (every thread) over each side's
 * own rounds: the gateway process; Postfix's daemons (live ones plus what master reaped);
 * the next hops apart: smtp-sink, and with `--receiver separate` the `nmtp serve` process
 * (counted until new/ is complete, as it writes each file after its 250). Memory: the
 * gateway's and the receiver's VmHWM; Postfix's processes' VmRSS and Pss summed, sampled
 * every 500 ms, the peak of the sums.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startPostfix, startSmtpSink, type SmtpSink } from '../test/harness/postfix.ts';
import {
  PostfixMemory,
  SESSIONS,
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
  spread,
  statusKb,
  untilCount,
} from './lib-measure.ts';
import { makeGatewayKey } from '../test/support/gateway-e2e.ts';
import {
  GatewayProcess,
  benchGatewayConfig,
  childArgs,
  commonBenchOptions,
  serveGatewayChild,
  startNmtpReceiver,
  warmUp,
  type CommonBenchOptions,
  type NmtpReceiver,
} from './lib-gateway.ts';

type Side = 'gateway' | 'postfix';
const SIZES = { '4KB': 4096, '100KB': 102400 } as const;
type SizeName = keyof typeof SIZES;
/** Where the gateway's NMTP deliveries go: its own receiver, or `nmtp serve` apart. */
type ReceiverMode = 'separate' | 'same';
/** The gateway's demo domain, held by its own receiver (`same`). */
const SAME_DOMAIN = 'demo.nmtp.test';
/** The domain `nmtp serve` holds (`separate`): a static SRV record in the gateway's config. */
const SEPARATE_DOMAIN = 'nmtp.bench.test';
/** The gateway's signing identity (its defaults), its key made here so the receiver knows it. */
const GW_DOMAIN = 'gateway.nmtp.test';
const GW_SELECTOR = 'gw1';
const PF_RCPT = 'b@bench.test';
const PF_LAT_RCPT = 'b@lat.test';

// ---------------------------------------------------------------------------------------
// The gateway child

// A type, not an interface: the child's arguments are a JSON record (GatewayProcess's).
type ChildArgs = {
  dir: string;
  log: 'info' | 'silent';
  /** `separate`: the next hop (`nmtp serve`) and what the gateway needs to reach it. */
  receiver?: { port: number; certFile: string; keyFile: string };
};

function child(a: ChildArgs): Promise<void> {
  const r = a.receiver;
  // `separate`: no NMTP receiver of its own (no local NMTP domain); SEPARATE_DOMAIN routed
  // by a static SRV record to `nmtp serve`, whose certificate is the CA it trusts for it.
  const more =
    r === undefined
      ? {}
      : {
          gateway: {
            stateDir: join(a.dir, 'state'),
            domain: GW_DOMAIN,
            selector: GW_SELECTOR,
            keyFile: r.keyFile,
          },
          nmtp: { receiver: { enabled: false }, peerCa: r.certFile },
          routing: {
            staticRecords: {
              srv: [{ domain: SEPARATE_DOMAIN, target: '127.0.0.1', port: r.port }],
            },
          },
        };
  // 'await' is in the timing (end-to-end ends when it answers): it looks every 10 ms.
  return serveGatewayChild(benchGatewayConfig(a.dir, a.log, more), 10);
}

// ---------------------------------------------------------------------------------------
// One cell: one message size, both sides fresh

interface Round {
  side: Side;
  ingest: number;
  e2e: number;
  /** Gateway: every file in maildir new/; Postfix: `postqueue -j` empty. */
  settled: number;
  cpu: number;
  /**
   * Gateway: its main thread's share of `cpu` (the event loop: smtp-in, queue, client, and
   * with `--receiver same` its receiver's sessions).
   */
  mainCpu: number;
  sinkCpu: number;
  /** Gateway with `--receiver separate`: the `nmtp serve` process, ms per message. */
  rcvCpu: number;
}

interface CellResult {
  size: SizeName;
  n: number;
  rounds: Round[];
  failures: string[];
  latency: ({ sessions: number } & Record<Side, { toReply: number[]; toDelivery: number[] }>)[];
  gwRss: { start: number; hwm: number };
  /** `--receiver separate`: the `nmtp serve` process. */
  rcvRss: { start: number; hwm: number } | undefined;
  /** What `nmtp serve` wrote on stderr (shown after the tables, not a failure by itself). */
  rcvStderr: string;
  pfMem: { start: number; peakRss: number; peakPss: number; procs: number };
  logLines: number;
}

async function runCell(o: Options, size: SizeName): Promise<CellResult> {
  const bytes = SIZES[size];
  const n = o.n ?? (o.quick ? (size === '4KB' ? 300 : 100) : size === '4KB' ? 1000 : 500);
  const warm = warmUp(size, o);
  const latN = o.latency ?? (o.quick ? 100 : size === '4KB' ? 400 : 200);
  const failures: string[] = [];
  const dir = mkdtempSync(join(o.store, 'nmtp-bench-gw-'));
  const logFile = o.logTo ?? join(dir, 'gateway.log');
  const logFd = openSync(logFile, 'w');
  // `separate`: the next hop first (the gateway's child needs its port), knowing the
  // gateway's key record as a peer would from DNS: it checks the gateway's HELLO proof.
  let rcv: NmtpReceiver | undefined;
  const args: ChildArgs = { dir, log: o.log };
  if (o.receiver === 'separate') {
    const key = makeGatewayKey(dir, GW_DOMAIN, GW_SELECTOR);
    rcv = await startNmtpReceiver({
      dir: join(dir, 'receiver'),
      keyRecords: [{ name: key.keyName, value: key.keyRecord }],
      cpuProf: o.cpuProf,
    });
    args.receiver = { port: rcv.port, certFile: rcv.certFile, keyFile: key.keyFile };
  }
  const rcpt = `b@${rcv === undefined ? SAME_DOMAIN : SEPARATE_DOMAIN}`;
  const gw = new GatewayProcess(import.meta.url, args, logFd, o.cpuProf);
  const sink = await countingSink();
  const latSink: SmtpSink = await startSmtpSink();
  const pf = await startPostfix({
    relayhost: `[127.0.0.1]:${sink.port}`,
    transport: { 'lat.test': `smtp:[127.0.0.1]:${latSink.port}` },
    messageSizeLimit: 10_240_000,
    mainCf: { default_destination_concurrency_limit: '20', smtpd_peername_lookup: 'yes' },
  });
  const pfMem = new PostfixMemory(pf);
  const ready = await gw.next();
  const ports = ready.ports as Record<string, number>;
  const gwPort = ports['smtp:0']!;
  const gwPid = gw.proc.pid!;
  const newDir = join(rcv?.maildir ?? join(dir, 'maildir'), 'new');
  const gwStartRss = statusKb(gwPid, 'VmRSS');
  const rcvStartRss = rcv === undefined ? 0 : statusKb(rcv.pid, 'VmRSS');
  pfMem.sample();
  const pfStart = pfMem.peakRss;

  let gwSent = 0;
  let pfSent = 0;
  const runSide = async (side: Side, count: number): Promise<Round> => {
    if (side === 'gateway') {
      const cpu0 = procCpu(gwPid)!.self;
      const main0 = mainThreadCpu(gwPid);
      const rcv0 = rcv === undefined ? 0 : procCpu(rcv.pid)!.self;
      const r = await smtpSource(gwPort, count, bytes, rcpt, o.reuse);
      if (!r.ok) failures.push(`gateway smtp-source: ${r.detail}`);
      gwSent += count;
      const t0 = performance.now() - r.ms;
      const got = await gw.ask({ type: 'await', accepted: gwSent, timeoutMs: 300_000 });
      const e2e = performance.now() - t0;
      const cpu = procCpu(gwPid)!.self - cpu0;
      const mainCpu = mainThreadCpu(gwPid) - main0;
      if (got.ok !== true) failures.push(`gateway queue: ${JSON.stringify(got.counts)}`);
      if (!(await untilCount(newDir, gwSent, 60_000))) failures.push('gateway maildir short');
      const settled = performance.now() - t0;
      // After new/ is complete: the receiver writes each file after its 250.
      const rcvCpu = rcv === undefined ? 0 : procCpu(rcv.pid)!.self - rcv0;
      return {
        side,
        ingest: (count * 1000) / r.ms,
        e2e: (count * 1000) / e2e,
        settled: (count * 1000) / settled,
        cpu: (cpu * 1000) / count,
        mainCpu: (mainCpu * 1000) / count,
        sinkCpu: 0,
        rcvCpu: (rcvCpu * 1000) / count,
      };
    }
    pfMem.start();
    const cpu0 = postfixCpu(pf);
    const sink0 = procCpu(sink.pid)!.self;
    const r = await smtpSource(pf.port, count, bytes, PF_RCPT, o.reuse);
    if (!r.ok) failures.push(`postfix smtp-source: ${r.detail}`);
    pfSent += count;
    const t0 = performance.now() - r.ms;
    if (!(await sink.reach(pfSent, 300_000))) failures.push(`smtp-sink: ${sink.count()}`);
    const e2e = performance.now() - t0;
    const cpu = postfixCpu(pf) - cpu0;
    const sinkCpu = procCpu(sink.pid)!.self - sink0;
    await pf.waitForQueue((q) => q.length === 0, 60_000);
    const settled = performance.now() - t0;
    pfMem.stop();
    return {
      side,
      ingest: (count * 1000) / r.ms,
      e2e: (count * 1000) / e2e,
      settled: (count * 1000) / settled,
      cpu: (cpu * 1000) / count,
      mainCpu: 0,
      sinkCpu: (sinkCpu * 1000) / count,
      rcvCpu: 0,
    };
  };

  // Warm-up (JIT, Postfix's daemons started), not counted.
  await runSide('gateway', warm);
  await runSide('postfix', warm);
  const rounds: Round[] = [];
  if (o.profile) await gw.ask({ type: 'profile-start' });
  for (let i = 0; i < o.rounds; i++) {
    const order: Side[] = i % 2 === 0 ? ['gateway', 'postfix'] : ['postfix', 'gateway'];
    for (const side of order) {
      const r = await runSide(side, n);
      rounds.push(r);
      console.log(
        `  ${size} round ${i + 1} ${side.padEnd(7)} ingest ${r.ingest.toFixed(0).padStart(4)} msg/s, ` +
          `end-to-end ${r.e2e.toFixed(0).padStart(4)} msg/s, CPU ${r.cpu.toFixed(2)} ms/msg` +
          (side === 'gateway' ? ` (main thread ${r.mainCpu.toFixed(2)})` : '') +
          (side === 'gateway' && rcv !== undefined
            ? `, receiver ${r.rcvCpu.toFixed(2)} ms/msg`
            : ''),
      );
    }
  }
  if (o.profile) {
    await gw.ask({ type: 'profile-stop', file: join(o.profDir, `gateway ${size}.cpuprofile`) });
  }

  // Latency passes: the generator, one side after the other; under load (20 sessions, as
  // smtp-source), then one session at a time (what a message costs without queueing).
  const latency: CellResult['latency'] = [];
  for (const [sessions, count] of [
    [SESSIONS, latN],
    [1, Math.min(latN, 50)],
  ] as const) {
    if (count <= 0) continue;
    const common = { count, bytes, sessions, failures };
    const gateway = await latencyPass({
      ...common,
      side: 'gateway',
      port: gwPort,
      rcpt,
      prefix: `lat-gateway-${size}-${sessions}`,
      target: newDir,
    });
    gwSent += gateway.sent;
    const postfix = await latencyPass({
      ...common,
      side: 'postfix',
      port: pf.port,
      rcpt: PF_LAT_RCPT,
      prefix: `lat-postfix-${size}-${sessions}`,
      target: join(latSink.dir, 'dumps'),
      mem: pfMem,
    });
    latency.push({ sessions, gateway, postfix });
  }

  const gwHwm = statusKb(gwPid, 'VmHWM');
  const rcvHwm = rcv === undefined ? 0 : statusKb(rcv.pid, 'VmHWM');
  const stored = readdirSync(newDir).length;
  if (stored !== gwSent) failures.push(`gateway: ${stored} files in new/ for ${gwSent} sent`);
  if (sink.count() !== pfSent) failures.push(`smtp-sink: ${sink.count()} for ${pfSent} sent`);
  await gw.stop();
  // After the gateway: its transfer sessions end first, as an operator would stop them.
  const rcvStderr = (await rcv?.stop()) ?? '';
  closeSync(logFd);
  const logLines =
    o.logTo === undefined ? readFileSync(logFile, 'utf8').split('\n').length - 1 : NaN;
  await pf.stop();
  await sink.stop();
  await latSink.stop();
  rmSync(dir, { recursive: true, force: true });
  return {
    size,
    n,
    rounds,
    failures,
    latency,
    gwRss: { start: gwStartRss, hwm: gwHwm },
    rcvRss: rcv === undefined ? undefined : { start: rcvStartRss, hwm: rcvHwm },
    rcvStderr,
    pfMem: {
      start: pfStart,
      peakRss: pfMem.peakRss,
      peakPss: pfMem.peakPss,
      procs: pfMem.peakProcs,
    },
    logLines: logLines / Math.max(1, gwSent),
  };
}

// ---------------------------------------------------------------------------------------
// Options, tables, profiles

interface Options extends CommonBenchOptions<SizeName> {
  /** The gateway's next hop: `nmtp serve` in its own process, or its own receiver. */
  receiver: ReceiverMode;
  /** Where the gateway's log (its stderr) goes; default gateway.log in the cell's directory. */
  logTo: string | undefined;
}

function parseOptions(argv: readonly string[]): Options {
  const { common, at } = commonBenchOptions(
    argv,
    Object.keys(SIZES) as SizeName[],
    'nmtp-bench-gw-prof-',
  );
  const receiver = at('--receiver') ?? 'separate';
  if (receiver !== 'separate' && receiver !== 'same') {
    throw new Error('--receiver: separate or same');
  }
  return { ...common, receiver, logTo: at('--log-to') };
}

function printTables(results: readonly CellResult[], o: Options): void {
  const by = (r: CellResult, s: Side): Round[] => r.rounds.filter((x) => x.side === s);
  const ratios = (r: CellResult, k: 'ingest' | 'e2e' | 'settled' | 'cpu'): number[] => {
    const g = by(r, 'gateway');
    const p = by(r, 'postfix');
    return g.map((x, i) => x[k] / p[i]![k]);
  };
  console.log(
    `\n| message | rounds × N | ingest msg/s gateway | Postfix | **ingest gateway ÷ Postfix** median (range) | end-to-end msg/s gateway | Postfix | **end-to-end gateway ÷ Postfix** median (range) |`,
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const m = (s: Side, k: 'ingest' | 'e2e'): string => fmt(median(by(r, s).map((x) => x[k])));
    console.log(
      `| ${r.size} | ${o.rounds} × ${r.n} | ${m('gateway', 'ingest')} | ${m('postfix', 'ingest')} | ${spread(ratios(r, 'ingest'))} | ${m('gateway', 'e2e')} | ${m('postfix', 'e2e')} | ${spread(ratios(r, 'e2e'))} |`,
    );
  }
  console.log(
    `\n| message | until the receiver's new/ complete: gateway msg/s | until \`postqueue\` empty: Postfix msg/s | ratio median (range) | CPU ms/msg gateway, all threads (main thread) | NMTP receiver | Postfix daemons | smtp-sink | **CPU gateway ÷ Postfix** median (range) |`,
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const m = (s: Side, k: 'settled' | 'cpu' | 'mainCpu' | 'sinkCpu' | 'rcvCpu', d = 0): string =>
      fmt(median(by(r, s).map((x) => x[k])), d);
    // `same`: the receiver's work is in the gateway's figures, not apart.
    const rcvCpu = o.receiver === 'separate' ? m('gateway', 'rcvCpu', 2) : 'in the gateway';
    console.log(
      `| ${r.size} | ${m('gateway', 'settled')} | ${m('postfix', 'settled')} | ${spread(ratios(r, 'settled'))} | ${m('gateway', 'cpu', 2)} (${m('gateway', 'mainCpu', 2)}) | ${rcvCpu} | ${m('postfix', 'cpu', 2)} | ${m('postfix', 'sinkCpu', 2)} | ${spread(ratios(r, 'cpu'), 1)} |`,
    );
  }
  if (results.some((r) => r.latency.length > 0)) {
    console.log(
      `\n| message | sessions | messages per side | connect → 250 p50 / p99 ms: gateway | Postfix | connect → delivered p50 / p99 ms: gateway (the receiver's new/) | Postfix (smtp-sink's file) |`,
    );
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of results) {
      for (const pass of r.latency) {
        const l = (s: Side, k: 'toReply' | 'toDelivery'): string =>
          `${fmt(percentile(pass[s][k], 50), 1)} / ${fmt(percentile(pass[s][k], 99), 1)}`;
        console.log(
          `| ${r.size} | ${pass.sessions} | ${pass.gateway.toReply.length} | ${l('gateway', 'toReply')} | ${l('postfix', 'toReply')} | ${l('gateway', 'toDelivery')} | ${l('postfix', 'toDelivery')} |`,
        );
      }
    }
  }
  const mb = (kb: number): string => (kb / 1024).toFixed(0);
  console.log(
    `\n| message | gateway VmRSS at start → VmHWM MB | NMTP receiver VmRSS at start → VmHWM MB | Postfix summed VmRSS at start → peak MB | Postfix summed Pss peak MB | Postfix processes (peak) | gateway log lines per message |`,
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const rcv =
      r.rcvRss === undefined ? 'in the gateway' : `${mb(r.rcvRss.start)} → ${mb(r.rcvRss.hwm)}`;
    console.log(
      `| ${r.size} | ${mb(r.gwRss.start)} → ${mb(r.gwRss.hwm)} | ${rcv} | ${mb(r.pfMem.start)} → ${mb(r.pfMem.peakRss)} | ${mb(r.pfMem.peakPss)} | ${r.pfMem.procs} | ${fmt(r.logLines, 1)} |`,
    );
  }
  for (const r of results) {
    const lines = r.rcvStderr
      .trim()
      .split('\n')
      .filter((l) => l !== '');
    if (lines.length === 0) continue;
    console.log(
      `\n${r.size}: nmtp serve's stderr (${lines.length} lines):\n${lines.slice(0, 10).join('\n')}`,
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
    `receiver ${o.receiver} (${
      o.receiver === 'separate'
        ? 'the next hop is `nmtp serve` in its own process'
        : "the next hop is the gateway's own receiver, in its process"
    }), ` +
      `gateway log ${o.log} to ${o.logTo ?? 'a file'}, ` +
      `smtp-source ${o.reuse ? '-d (connections reused)' : '(a connection per message)'}`,
    (size) => runCell(o, size),
    (results) => printTables(results, o),
  );
}

await main();
