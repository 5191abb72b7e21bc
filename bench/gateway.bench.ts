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
 *            --log info|silent (the gateway's log level; default info, its default),
 *            --log-to <file> (where its log goes; default a file beside its queue),
 *            --reuse (smtp-source -d: each session sends all its messages over one
 *            connection, as an MTA relays a backlog, instead of one connection per message),
 *            --profile (the gateway's main thread profiled over the measured rounds, summary
 *            printed), --keep-profiles, --cpu-prof <dir> (node's --cpu-prof on the gateway
 *            process: every thread, start-up included), --store <dir> (default os.tmpdir())
 *
 * The two sides, each fresh per message size:
 * - gateway: startGateway() in its own child process (so its RSS and CPU are its own), with
 *   its defaults (no admin listener) but for ephemeral ports: smtp-in (smtp-server) → the embedded queue (message
 *   and state files fsync'd before the 250) → the NMTP transfer client (TLS 1.3, pooled,
 *   20 per destination) → the gateway's own NMTP receiver for demo.nmtp.test, which stores
 *   durably (journal + fdatasync before its 250, then one file per message in new/). The
 *   message is converted (adapters/mime), signed (ed25519) and verified by the receiver.
 *   It logs at its default level (info, JSON) into a file, as `nmtp-gateway start 2>log`.
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
 * the gateway's maildir new/ holds every file, and until `postqueue -j` is empty.
 * Rounds are interleaved (gateway, Postfix, then Postfix, gateway, …); the ratio is taken
 * per round pair and reported as median and range.
 *
 * Latency: smtp-source reports none, so a small generator here (one connection per message
 * as smtp-source, no pipelining; 20 sessions under load, then 1 session for the unloaded
 * cost) records per message the time from connect to the final 250 and to delivery: the
 * mtime of the message's file at the next hop (the gateway's maildir new/ file; for
 * Postfix, a second smtp-sink that keeps each message in a file, reached through a
 * transport_maps entry for lat.test), found by its Message-Id. File times come from the
 * kernel's coarse clock (a few ms of resolution).
 *
 * CPU per message: the processes' utime + stime from /proc (every thread) over each side's
 * own rounds: the gateway process; Postfix's daemons (live ones plus what master reaped);
 * smtp-sink apart. Memory: the gateway's VmHWM; Postfix's processes' VmRSS and Pss summed,
 * sampled every 500 ms, the peak of the sums.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { Session } from 'node:inspector/promises';
import { connect } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startGateway } from '../src/cli/gateway-start.ts';
import { validateConfig } from '../src/gateway/config.ts';
import {
  postfixProcesses,
  startPostfix,
  startSmtpSink,
  type PostfixInstance,
  type SmtpSink,
} from '../test/harness/postfix.ts';
import { freeTcpPort } from '../test/support/net.ts';

type Side = 'gateway' | 'postfix';
const SIZES = { '4KB': 4096, '100KB': 102400 } as const;
type SizeName = keyof typeof SIZES;
const SESSIONS = 20;
const FROM = 'a@src.test';
const GW_RCPT = 'b@demo.nmtp.test';
const PF_RCPT = 'b@bench.test';
const PF_LAT_RCPT = 'b@lat.test';
const TICK = 100; // clock ticks per second in /proc/PID/stat (getconf CLK_TCK)

// ---------------------------------------------------------------------------------------
// The gateway child

interface ChildArgs {
  dir: string;
  log: 'info' | 'silent';
}

type ChildMsg =
  | { type: 'await'; accepted: number; timeoutMs: number }
  | { type: 'profile-start' }
  | { type: 'profile-stop'; file: string }
  | { type: 'exit' };

async function child(a: ChildArgs): Promise<void> {
  const config = validateConfig({
    gateway: { stateDir: join(a.dir, 'state') },
    smtp: { listeners: [{ protocol: 'smtp', listen: '127.0.0.1:0' }] },
    nmtp: { receiver: { listen: '127.0.0.1:0', maildir: join(a.dir, 'maildir') } },
    queue: { dir: join(a.dir, 'queue') },
    admin: { listen: '' },
    log: { level: a.log },
  });
  const gw = await startGateway(config);
  const reply = (m: unknown): void => void process.send!(m);
  reply({ type: 'ready', ports: gw.ports });
  let profiler: Session | undefined;
  process.on('message', (m: ChildMsg) => {
    void (async () => {
      switch (m.type) {
        case 'await': {
          // Polled in this process (no round trip per look), only once smtp-source has
          // returned; counts() walks every entry in memory, so not too often.
          const end = Date.now() + m.timeoutMs;
          for (;;) {
            const c = await gw.queue.counts();
            const final = c.accepted + c.rejected + c['given-up'];
            if (final >= m.accepted || Date.now() > end) {
              reply({ type: 'reached', counts: c, ok: c.accepted >= m.accepted });
              return;
            }
            await sleep(10);
          }
        }
        case 'profile-start':
          profiler = new Session();
          profiler.connect();
          await profiler.post('Profiler.enable');
          await profiler.post('Profiler.start');
          reply({ type: 'ok' });
          return;
        case 'profile-stop': {
          const { profile } = await profiler!.post('Profiler.stop');
          profiler!.disconnect();
          writeFileSync(m.file, JSON.stringify(profile));
          reply({ type: 'ok' });
          return;
        }
        case 'exit':
          await gw.close();
          process.exit(0);
      }
    })().catch((e: unknown) => {
      console.error(e);
      process.exit(1);
    });
  });
}

class GatewayProcess {
  readonly proc: ChildProcess;
  private waiting: ((m: Record<string, unknown>) => void)[] = [];
  private inbox: Record<string, unknown>[] = [];

  constructor(args: ChildArgs, logFd: number, cpuProf: string | undefined) {
    this.proc = fork(fileURLToPath(import.meta.url), ['--child', JSON.stringify(args)], {
      execArgv: [
        '--import',
        'tsx',
        ...(cpuProf === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', cpuProf]),
      ],
      stdio: ['ignore', 'inherit', logFd, 'ipc'],
    });
    this.proc.on('message', (m: Record<string, unknown>) => {
      const w = this.waiting.shift();
      if (w) w(m);
      else this.inbox.push(m);
    });
    this.proc.on('exit', (code) => {
      if (code === 0) return;
      console.error(`gateway process exited ${code} (its log: ${args.dir}/gateway.log)`);
      process.exit(1);
    });
  }

  next(): Promise<Record<string, unknown>> {
    const m = this.inbox.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  ask(m: ChildMsg): Promise<Record<string, unknown>> {
    const p = this.next();
    this.proc.send(m);
    return p;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (this.proc.exitCode !== null) return resolve();
      this.proc.once('exit', () => resolve());
      this.proc.send({ type: 'exit' });
    });
  }
}

// ---------------------------------------------------------------------------------------
// Postfix's smtp-sink with its running counter (the anchor's next hop: accepts, discards)

interface CountingSink {
  readonly port: number;
  readonly pid: number;
  /** Messages received so far ("." seen). */
  count(): number;
  /** Resolves once count() ≥ n, or with false after timeoutMs. */
  reach(n: number, timeoutMs: number): Promise<boolean>;
  stop(): Promise<void>;
}

async function countingSink(): Promise<CountingSink> {
  const port = await freeTcpPort();
  const proc = spawn('smtp-sink', ['-c', '-u', 'nobody', `127.0.0.1:${port}`, '1000'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let mesg = 0;
  let tail = '';
  let waiter: { n: number; resolve: (ok: boolean) => void } | undefined;
  proc.stdout!.on('data', (d: Buffer) => {
    // "sess=3 quit=3 mesg=4\r", rewritten at every session end, QUIT and ".".
    tail += d.toString('latin1');
    const all = [...tail.matchAll(/mesg=(\d+)\r/g)];
    if (all.length > 0) {
      mesg = Number(all[all.length - 1]![1]);
      tail = tail.slice(tail.lastIndexOf('\r') + 1);
    }
    if (waiter !== undefined && mesg >= waiter.n) {
      waiter.resolve(true);
      waiter = undefined;
    }
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  // Ready when it greets.
  for (let i = 0; ; i++) {
    if (await greets(port)) break;
    if (i > 100 || proc.exitCode !== null) throw new Error('smtp-sink did not start');
    await sleep(20);
  }
  return {
    port,
    pid: proc.pid!,
    count: () => mesg,
    reach: (n, timeoutMs) =>
      new Promise((resolve) => {
        if (mesg >= n) return resolve(true);
        const t = setTimeout(() => {
          waiter = undefined;
          resolve(false);
        }, timeoutMs);
        waiter = {
          n,
          resolve: (ok) => {
            clearTimeout(t);
            resolve(ok);
          },
        };
      }),
    async stop() {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.on('error', () => done(false));
    s.once('data', (d: Buffer) => {
      const ok = d.toString('latin1').startsWith('220');
      if (ok) s.write('QUIT\r\n');
      done(ok);
    });
  });
}

// ---------------------------------------------------------------------------------------
// /proc: CPU and memory of a set of processes

/** utime + stime and cutime + cstime of a process, in seconds; undefined if gone. */
function procCpu(pid: number): { self: number; children: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // Fields after "(comm)": state is field 3; utime 14, stime 15, cutime 16, cstime 17.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const n = (i: number): number => Number(f[i - 3]);
  return { self: (n(14) + n(15)) / TICK, children: (n(16) + n(17)) / TICK };
}

/** CPU seconds of a process's main thread (its first task) alone. */
function mainThreadCpu(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'latin1');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICK;
  } catch {
    return 0;
  }
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'latin1').trim();
  } catch {
    return '';
  }
}

/** CPU seconds used so far by an instance's daemons: live ones, and those master reaped. */
function postfixCpu(pf: PostfixInstance): number {
  let total = 0;
  for (const pid of postfixProcesses(pf.configDir)) {
    const c = procCpu(pid);
    if (c === undefined) continue;
    total += c.self + (comm(pid) === 'master' ? c.children : 0);
  }
  return total;
}

function statusKb(pid: number, key: string): number {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(
      readFileSync(`/proc/${pid}/status`, 'latin1'),
    );
    return m === null ? 0 : Number(m[1]);
  } catch {
    return 0;
  }
}

function pssKb(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1'));
    return m === null ? 0 : Number(m[1]);
  } catch {
    return 0;
  }
}

/** Peak of the summed VmRSS and Pss of Postfix's processes, sampled every 500 ms. */
class PostfixMemory {
  peakRss = 0;
  peakPss = 0;
  peakProcs = 0;
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly pf: PostfixInstance) {}
  sample(): void {
    const pids = postfixProcesses(this.pf.configDir);
    let rss = 0;
    let pss = 0;
    for (const pid of pids) {
      rss += statusKb(pid, 'VmRSS');
      pss += pssKb(pid);
    }
    this.peakRss = Math.max(this.peakRss, rss);
    this.peakPss = Math.max(this.peakPss, pss);
    this.peakProcs = Math.max(this.peakProcs, pids.length);
  }
  start(): void {
    this.sample();
    this.timer ??= setInterval(() => this.sample(), 500);
  }
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
  }
}

// ---------------------------------------------------------------------------------------
// Load: smtp-source, and the latency generator

interface SourceResult {
  ms: number;
  ok: boolean;
  detail: string;
}

function smtpSource(
  port: number,
  n: number,
  size: number,
  rcpt: string,
  reuse: boolean,
): Promise<SourceResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const args = ['-m', String(n), '-s', String(SESSIONS), '-l', String(size)];
    if (reuse) args.push('-d');
    const p = spawn('smtp-source', [...args, '-f', FROM, '-t', rcpt, `127.0.0.1:${port}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => {
      const ms = performance.now() - t0;
      resolve({ ms, ok: code === 0 && out.trim() === '', detail: out.trim().slice(0, 500) });
    });
  });
}

/** Wall clock in ms with sub-ms resolution (what file mtimes are compared with). */
const wallMs = (): number => performance.timeOrigin + performance.now();

/** A message as smtp-source builds it, with our Message-Id to find it at the next hop. */
function latencyMessage(rcpt: string, id: string, size: number): Buffer {
  const head =
    `From: <${FROM}>\r\nTo: <${rcpt}>\r\nDate: ${new Date().toUTCString()}\r\n` +
    `Message-Id: <${id}>\r\n\r\n`;
  const lines: string[] = [];
  let n = 0;
  for (let i = 0; n < size; i++) {
    const line = `${i % 10}${'X'.repeat(78)}\r\n`;
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(`${head}${lines.join('')}.\r\n`);
}

/** One SMTP transaction on a new connection; resolves with the final reply's time. */
function sendOne(port: number, rcpt: string, data: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    s.setNoDelay(true);
    const script = [
      'EHLO lat.src.test\r\n',
      `MAIL FROM:<${FROM}>\r\n`,
      `RCPT TO:<${rcpt}>\r\n`,
      'DATA\r\n',
      data,
      'QUIT\r\n',
    ];
    const expect = [220, 250, 250, 250, 354, 250, 221];
    let step = 0;
    let buf = '';
    let done = 0;
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line[3] === '-') continue; // a multi-line reply goes on
        const code = Number(line.slice(0, 3));
        if (code !== expect[step]) {
          s.destroy();
          return reject(new Error(`step ${step}: ${line.trim()}`));
        }
        if (step === 5) done = wallMs();
        if (step === 6) {
          s.end();
          return resolve(done);
        }
        s.write(script[step]!);
        step++;
      }
    });
  });
}

interface LatencySample {
  id: string;
  start: number;
  answered: number;
}

async function latencyLoad(
  port: number,
  rcpt: string,
  prefix: string,
  count: number,
  size: number,
  sessions: number,
): Promise<LatencySample[]> {
  const out: LatencySample[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const id = `${prefix}-${next++}@src.test`;
      const data = latencyMessage(rcpt, id, size);
      const start = wallMs();
      const answered = await sendOne(port, rcpt, data);
      out.push({ id, start, answered });
    }
  };
  await Promise.all(Array.from({ length: sessions }, worker));
  return out;
}

/** Message-Id → mtime of the files in `dir` whose names are not in `skip`. */
function deliveredAt(dir: string, skip: ReadonlySet<string>): Map<string, number> {
  const m = new Map<string, number>();
  const head = Buffer.alloc(8192);
  for (const name of readdirSync(dir)) {
    if (skip.has(name)) continue;
    const file = join(dir, name);
    const fd = openSync(file, 'r');
    let n: number;
    try {
      n = readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
    const id = /^Message-Id: <([^>]+)>/im.exec(head.subarray(0, n).toString('latin1'))?.[1];
    if (id !== undefined) m.set(id, statSync(file).mtimeMs);
  }
  return m;
}

async function untilCount(dir: string, n: number, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    let have = 0;
    try {
      have = readdirSync(dir).length;
    } catch {
      // Not made yet.
    }
    if (have >= n) return true;
    if (Date.now() > end) return false;
    await sleep(10);
  }
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
  /** Gateway: its main thread's share of `cpu` (the event loop: smtp-in, queue, client, receiver). */
  mainCpu: number;
  sinkCpu: number;
}

interface CellResult {
  size: SizeName;
  n: number;
  rounds: Round[];
  failures: string[];
  latency: ({ sessions: number } & Record<Side, { toReply: number[]; toDelivery: number[] }>)[];
  gwRss: { start: number; hwm: number };
  pfMem: { start: number; peakRss: number; peakPss: number; procs: number };
  logLines: number;
}

async function runCell(o: Options, size: SizeName): Promise<CellResult> {
  const bytes = SIZES[size];
  const n = o.n ?? (o.quick ? (size === '4KB' ? 300 : 100) : size === '4KB' ? 1000 : 500);
  const warm = size === '4KB' ? 200 : 60;
  const latN = o.latency ?? (o.quick ? 100 : size === '4KB' ? 400 : 200);
  const failures: string[] = [];
  const dir = mkdtempSync(join(o.store, 'nmtp-bench-gw-'));
  const logFile = o.logTo ?? join(dir, 'gateway.log');
  const logFd = openSync(logFile, 'w');
  const gw = new GatewayProcess({ dir, log: o.log }, logFd, o.cpuProf);
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
  const newDir = join(dir, 'maildir', 'new');
  const gwStartRss = statusKb(gwPid, 'VmRSS');
  pfMem.sample();
  const pfStart = pfMem.peakRss;

  let gwSent = 0;
  let pfSent = 0;
  const runSide = async (side: Side, count: number): Promise<Round> => {
    if (side === 'gateway') {
      const cpu0 = procCpu(gwPid)!.self;
      const main0 = mainThreadCpu(gwPid);
      const r = await smtpSource(gwPort, count, bytes, GW_RCPT, o.reuse);
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
      return {
        side,
        ingest: (count * 1000) / r.ms,
        e2e: (count * 1000) / e2e,
        settled: (count * 1000) / settled,
        cpu: (cpu * 1000) / count,
        mainCpu: (mainCpu * 1000) / count,
        sinkCpu: 0,
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
          (side === 'gateway' ? ` (main thread ${r.mainCpu.toFixed(2)})` : ''),
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
    const pass = {
      sessions,
      gateway: { toReply: [] as number[], toDelivery: [] as number[] },
      postfix: { toReply: [] as number[], toDelivery: [] as number[] },
    };
    latency.push(pass);
    for (const side of ['gateway', 'postfix'] as const) {
      const target = side === 'gateway' ? newDir : join(latSink.dir, 'dumps');
      const before = new Set(readdirSync(target));
      if (side === 'postfix') pfMem.start();
      let samples: LatencySample[] = [];
      const prefix = `lat-${side}-${size}-${sessions}`;
      try {
        samples =
          side === 'gateway'
            ? await latencyLoad(gwPort, GW_RCPT, prefix, count, bytes, sessions)
            : await latencyLoad(pf.port, PF_LAT_RCPT, prefix, count, bytes, sessions);
      } catch (e) {
        failures.push(`${side} latency load: ${String(e)}`);
      }
      if (side === 'gateway') gwSent += samples.length;
      if (!(await untilCount(target, before.size + samples.length, 60_000))) {
        failures.push(`${side} latency: not every message delivered`);
      }
      // smtp-sink closes its file after the final dot: give it a moment.
      await sleep(300);
      if (side === 'postfix') pfMem.stop();
      const at = deliveredAt(target, before);
      const l = pass[side];
      for (const x of samples) {
        l.toReply.push(x.answered - x.start);
        const d = at.get(x.id);
        if (d === undefined) failures.push(`${side} latency: ${x.id} not found`);
        else l.toDelivery.push(d - x.start);
      }
      l.toReply.sort((a, b) => a - b);
      l.toDelivery.sort((a, b) => a - b);
    }
  }

  const gwHwm = statusKb(gwPid, 'VmHWM');
  const stored = readdirSync(newDir).length;
  if (stored !== gwSent) failures.push(`gateway: ${stored} files in new/ for ${gwSent} sent`);
  if (sink.count() !== pfSent) failures.push(`smtp-sink: ${sink.count()} for ${pfSent} sent`);
  await gw.stop();
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

interface Options {
  quick: boolean;
  rounds: number;
  sizes: SizeName[];
  n: number | undefined;
  latency: number | undefined;
  /** smtp-source -d: each session sends its messages over one connection. */
  reuse: boolean;
  log: 'info' | 'silent';
  /** Where the gateway's log (its stderr) goes; default gateway.log in the cell's directory. */
  logTo: string | undefined;
  profile: boolean;
  keepProfiles: boolean;
  cpuProf: string | undefined;
  store: string;
  profDir: string;
}

function parseOptions(argv: readonly string[]): Options {
  const at = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i < 0 ? undefined : argv[i + 1];
  };
  const quick = argv.includes('--quick');
  const sizes = (at('--sizes')?.split(',') ?? Object.keys(SIZES)) as SizeName[];
  for (const s of sizes) if (!(s in SIZES)) throw new Error(`--sizes: unknown size ${s}`);
  const log = at('--log') ?? 'info';
  if (log !== 'info' && log !== 'silent') throw new Error('--log: info or silent');
  return {
    quick,
    rounds: Number(at('--rounds') ?? (quick ? 1 : 5)),
    sizes,
    n: at('--n') === undefined ? undefined : Number(at('--n')),
    latency: at('--latency') === undefined ? undefined : Number(at('--latency')),
    reuse: argv.includes('--reuse'),
    log,
    logTo: at('--log-to'),
    profile: argv.includes('--profile'),
    keepProfiles: argv.includes('--keep-profiles'),
    cpuProf: at('--cpu-prof'),
    store: at('--store') ?? tmpdir(),
    profDir: mkdtempSync(join(tmpdir(), 'nmtp-bench-gw-prof-')),
  };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const percentile = (sorted: readonly number[], p: number): number =>
  sorted.length === 0
    ? NaN
    : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
const fmt = (x: number, d = 0): string => (Number.isFinite(x) ? x.toFixed(d) : '—');
const spread = (xs: readonly number[], d = 2): string =>
  `**${fmt(median(xs), d)}×** (${fmt(Math.min(...xs), d)}–${fmt(Math.max(...xs), d)})`;

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
    `\n| message | until maildir new/ complete: gateway msg/s | until \`postqueue\` empty: Postfix msg/s | ratio median (range) | CPU ms/msg gateway, all threads (main thread) | Postfix daemons | smtp-sink | **CPU gateway ÷ Postfix** median (range) |`,
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const m = (s: Side, k: 'settled' | 'cpu' | 'mainCpu' | 'sinkCpu', d = 0): string =>
      fmt(median(by(r, s).map((x) => x[k])), d);
    console.log(
      `| ${r.size} | ${m('gateway', 'settled')} | ${m('postfix', 'settled')} | ${spread(ratios(r, 'settled'))} | ${m('gateway', 'cpu', 2)} (${m('gateway', 'mainCpu', 2)}) | ${m('postfix', 'cpu', 2)} | ${m('postfix', 'sinkCpu', 2)} | ${spread(ratios(r, 'cpu'), 1)} |`,
    );
  }
  if (results.some((r) => r.latency.length > 0)) {
    console.log(
      `\n| message | sessions | messages per side | connect → 250 p50 / p99 ms: gateway | Postfix | connect → delivered p50 / p99 ms: gateway (maildir new/) | Postfix (smtp-sink's file) |`,
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
    `\n| message | gateway VmRSS at start → VmHWM MB | Postfix summed VmRSS at start → peak MB | Postfix summed Pss peak MB | Postfix processes (peak) | gateway log lines per message |`,
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    console.log(
      `| ${r.size} | ${mb(r.gwRss.start)} → ${mb(r.gwRss.hwm)} | ${mb(r.pfMem.start)} → ${mb(r.pfMem.peakRss)} | ${mb(r.pfMem.peakPss)} | ${r.pfMem.procs} | ${fmt(r.logLines, 1)} |`,
    );
  }
  const failures = results.flatMap((r) => r.failures.map((f) => `${r.size}: ${f}`));
  if (failures.length > 0) {
    console.log(`\n**${failures.length} failures: figures invalid**\n${failures.join('\n')}`);
  }
}

/** Where a profile frame's code lives: a project file, a package, or a node module. */
function codeFile(url: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const own = /\/((?:src|adapters|bench|test)\/.*)$/.exec(url);
  if (own) return own[1]!;
  return url;
}

/** Busy time of a profile by file (inclusive) and by function (self and inclusive). */
function summariseProfile(file: string): void {
  interface Node {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }
  const prof = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: Node[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(prof.nodes.map((x) => [x.id, x]));
  const parent = new Map<number, number>();
  for (const x of prof.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
  const fn = (x: Node): string => {
    const f = codeFile(x.callFrame.url);
    return `${x.callFrame.functionName || '(anonymous)'}${f ? ` ${f}:${x.callFrame.lineNumber + 1}` : ''}`;
  };
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const files = new Map<string, number>();
  let total = 0;
  let idle = 0;
  const add = (m: Map<string, number>, k: string, dt: number): void => {
    m.set(k, (m.get(k) ?? 0) + dt);
  };
  prof.samples.forEach((id, i) => {
    const dt = prof.timeDeltas[i] ?? 0;
    const leaf = byId.get(id)!;
    const stack: Node[] = [];
    for (let x: Node | undefined = leaf; x; x = byId.get(parent.get(x.id) ?? -1)) stack.push(x);
    if (stack.some((x) => x.callFrame.url === 'node:inspector')) return;
    total += dt;
    if (leaf.callFrame.functionName === '(idle)') {
      idle += dt;
      return;
    }
    add(self, fn(leaf), dt);
    const seenF = new Set<string>();
    const seenK = new Set<string>();
    for (const x of stack) {
      const f = codeFile(x.callFrame.url) || x.callFrame.functionName;
      if (f !== '(root)' && !seenF.has(f)) {
        seenF.add(f);
        add(files, f, dt);
      }
      const k = fn(x);
      if (k !== '(root)' && !seenK.has(k)) {
        seenK.add(k);
        add(incl, k, dt);
      }
    }
  });
  const busy = total - idle;
  const top = (m: Map<string, number>, k: number): string =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([x, t]) => `  ${((100 * t) / busy).toFixed(1).padStart(5)} %  ${x}`)
      .join('\n');
  console.log(
    `\n${file.replace(/.*\//, '')}: busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s` +
      `\n files (inclusive, % of busy):\n${top(files, 30)}` +
      `\n functions (self, % of busy):\n${top(self, 25)}` +
      `\n functions (inclusive, % of busy):\n${top(incl, 40)}`,
  );
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return child(JSON.parse(process.argv[3]!) as ChildArgs);
  const o = parseOptions(process.argv.slice(2));
  const pfVersion = execFileSync('postconf', ['-d', '-h', 'mail_version'], {
    encoding: 'utf8',
  }).trim();
  console.log(
    `node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} threads), ` +
      `Postfix ${pfVersion}, load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}, store ${o.store}, gateway log ${o.log} to ${o.logTo ?? 'a file'}, ` +
      `smtp-source ${o.reuse ? '-d (connections reused)' : '(a connection per message)'}`,
  );
  const start = Date.now();
  const results: CellResult[] = [];
  for (const size of o.sizes) results.push(await runCell(o, size));
  printTables(results, o);
  console.log(
    `\n${((Date.now() - start) / 1000).toFixed(0)} s; load average now ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  if (o.profile) {
    for (const f of readdirSync(o.profDir).sort()) summariseProfile(join(o.profDir, f));
  }
  if (o.keepProfiles) console.log(`\nprofiles (.cpuprofile, for DevTools) kept in ${o.profDir}`);
  else rmSync(o.profDir, { recursive: true, force: true });
}

await main();
