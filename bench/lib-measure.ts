/**
 * What the Postfix-anchored benchmarks share (bench/gateway.bench.ts,
 * bench/gateway-reverse.bench.ts): Postfix's smtp-sink with its running counter, CPU and
 * memory of processes from /proc, smtp-source and a small SMTP latency generator, the
 * statistics and a CPU profile summary (and smtp-source's message body, which
 * bench/gateway-convert.bench.ts converts too). Moved here unchanged from gateway.bench.ts.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { connect } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { postfixProcesses, type PostfixInstance } from '../test/harness/postfix.ts';
import { freeTcpPort } from '../test/support/net.ts';

/** Concurrent sessions of the anchor's load (smtp-source -s 20). */
export const SESSIONS = 20;
/** smtp-source's envelope sender. */
export const FROM = 'a@src.test';
export const TICK = 100; // clock ticks per second in /proc/PID/stat (getconf CLK_TCK)

// ---------------------------------------------------------------------------------------
// Postfix's smtp-sink with its running counter (the anchor's next hop: accepts, discards)

export interface CountingSink {
  readonly port: number;
  readonly pid: number;
  /** Messages received so far ("." seen). */
  count(): number;
  /** Resolves once count() ≥ n, or with false after timeoutMs. */
  reach(n: number, timeoutMs: number): Promise<boolean>;
  stop(): Promise<void>;
}

/** `flags`: more smtp-sink options, e.g. ['-N'] (no DSN announced). */
export async function countingSink(flags: readonly string[] = []): Promise<CountingSink> {
  const port = await freeTcpPort();
  const args = ['-c', '-u', 'nobody', ...flags, `127.0.0.1:${port}`, '1000'];
  const proc = spawn('smtp-sink', args, {
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

export function greets(port: number): Promise<boolean> {
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
export function procCpu(pid: number): { self: number; children: number } | undefined {
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
export function mainThreadCpu(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'latin1');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICK;
  } catch {
    return 0;
  }
}

export function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'latin1').trim();
  } catch {
    return '';
  }
}

/** CPU seconds used so far by an instance's daemons: live ones, and those master reaped. */
export function postfixCpu(pf: PostfixInstance): number {
  let total = 0;
  for (const pid of postfixProcesses(pf.configDir)) {
    const c = procCpu(pid);
    if (c === undefined) continue;
    total += c.self + (comm(pid) === 'master' ? c.children : 0);
  }
  return total;
}

export function statusKb(pid: number, key: string): number {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(
      readFileSync(`/proc/${pid}/status`, 'latin1'),
    );
    return m === null ? 0 : Number(m[1]);
  } catch {
    return 0;
  }
}

export function pssKb(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1'));
    return m === null ? 0 : Number(m[1]);
  } catch {
    return 0;
  }
}

/** Peak of the summed VmRSS and Pss of Postfix's processes, sampled every 500 ms. */
export class PostfixMemory {
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

export interface SourceResult {
  ms: number;
  ok: boolean;
  detail: string;
}

export function smtpSource(
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
export const wallMs = (): number => performance.timeOrigin + performance.now();

/** smtp-source's body: numbered lines of X, `size` octets or a little more. */
export function sourceBody(size: number): string {
  const lines: string[] = [];
  let n = 0;
  for (let i = 0; n < size; i++) {
    const line = `${i % 10}${'X'.repeat(78)}\r\n`;
    lines.push(line);
    n += line.length;
  }
  return lines.join('');
}

/** A message as smtp-source builds it, with our Message-Id to find it at the next hop. */
export function latencyMessage(rcpt: string, id: string, size: number): Buffer {
  const head =
    `From: <${FROM}>\r\nTo: <${rcpt}>\r\nDate: ${new Date().toUTCString()}\r\n` +
    `Message-Id: <${id}>\r\n\r\n`;
  return Buffer.from(`${head}${sourceBody(size)}.\r\n`);
}

/** One SMTP transaction on a new connection; resolves with the final reply's time. */
export function sendOne(port: number, rcpt: string, data: Buffer): Promise<number> {
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

export interface LatencySample {
  id: string;
  start: number;
  answered: number;
}

export async function latencyLoad(
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

/** One latency pass's figures, each sorted: connect → 250, connect → at the next hop. */
export interface LatencyPass {
  /** Messages the generator got a 250 for. */
  sent: number;
  toReply: number[];
  toDelivery: number[];
}

/**
 * One latency pass of the generator against `port`: `count` messages over `sessions`
 * sessions, each found at the next hop by its Message-Id among the files of `target`.
 * `side` names it in `failures`; `mem` (Postfix's sampler) runs over the pass.
 */
export async function latencyPass(p: {
  side: string;
  port: number;
  rcpt: string;
  prefix: string;
  count: number;
  bytes: number;
  sessions: number;
  target: string;
  failures: string[];
  mem?: PostfixMemory;
}): Promise<LatencyPass> {
  const before = new Set(readdirSync(p.target));
  p.mem?.start();
  let samples: LatencySample[] = [];
  try {
    samples = await latencyLoad(p.port, p.rcpt, p.prefix, p.count, p.bytes, p.sessions);
  } catch (e) {
    p.failures.push(`${p.side} latency load: ${String(e)}`);
  }
  if (!(await untilCount(p.target, before.size + samples.length, 60_000))) {
    p.failures.push(`${p.side} latency: not every message delivered`);
  }
  // smtp-sink closes its file after the final dot: give it a moment.
  await sleep(300);
  p.mem?.stop();
  const at = deliveredAt(p.target, before);
  const pass: LatencyPass = { sent: samples.length, toReply: [], toDelivery: [] };
  for (const x of samples) {
    pass.toReply.push(x.answered - x.start);
    const d = at.get(x.id);
    if (d === undefined) p.failures.push(`${p.side} latency: ${x.id} not found`);
    else pass.toDelivery.push(d - x.start);
  }
  pass.toReply.sort((a, b) => a - b);
  pass.toDelivery.sort((a, b) => a - b);
  return pass;
}

/** Message-Id → mtime of the files in `dir` whose names are not in `skip`. */
export function deliveredAt(dir: string, skip: ReadonlySet<string>): Map<string, number> {
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

export async function untilCount(dir: string, n: number, timeoutMs: number): Promise<boolean> {
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

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
export const percentile = (sorted: readonly number[], p: number): number =>
  sorted.length === 0
    ? NaN
    : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
export const fmt = (x: number, d = 0): string => (Number.isFinite(x) ? x.toFixed(d) : '—');
export const spread = (xs: readonly number[], d = 2): string =>
  `**${fmt(median(xs), d)}×** (${fmt(Math.min(...xs), d)}–${fmt(Math.max(...xs), d)})`;

/** Where a profile frame's code lives: a project file, a package, or a node module. */
export function codeFile(url: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const own = /\/((?:src|adapters|bench|test)\/.*)$/.exec(url);
  if (own) return own[1]!;
  return url;
}

/** Busy time of a profile by file (inclusive) and by function (self and inclusive). */
export function summariseProfile(file: string): void {
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

// ---------------------------------------------------------------------------------------
// A run: the machine, the cells, the tables, the profiles

const loads = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

/**
 * Prints the machine line (ending with `setting`: what this run's options chose), runs
 * every size's cell, prints the tables and the time taken, then the profiles' summaries
 * (--profile) and keeps (--keep-profiles) or removes them.
 */
export async function runBench<S, R>(
  o: {
    sizes: readonly S[];
    store: string;
    profile: boolean;
    keepProfiles: boolean;
    profDir: string;
  },
  setting: string,
  runCell: (size: S) => Promise<R>,
  printTables: (results: readonly R[]) => void,
): Promise<void> {
  const pfVersion = execFileSync('postconf', ['-d', '-h', 'mail_version'], {
    encoding: 'utf8',
  }).trim();
  console.log(
    `node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} threads), ` +
      `Postfix ${pfVersion}, load average ${loads()}, store ${o.store}, ${setting}`,
  );
  const start = Date.now();
  const results: R[] = [];
  for (const size of o.sizes) results.push(await runCell(size));
  printTables(results);
  console.log(`\n${((Date.now() - start) / 1000).toFixed(0)} s; load average now ${loads()}`);
  if (o.profile) {
    for (const f of readdirSync(o.profDir).sort()) summariseProfile(join(o.profDir, f));
  }
  if (o.keepProfiles) console.log(`\nprofiles (.cpuprofile, for DevTools) kept in ${o.profDir}`);
  else rmSync(o.profDir, { recursive: true, force: true });
}
