/**
 * The gateway in its own child process, as bench/gateway.bench.ts (SMTP in → NMTP out) and
 * bench/gateway-reverse.bench.ts (NMTP in → SMTP out) run it, so that its RSS and CPU are
 * its own; and the forked-child plumbing under it (a bench file forks itself with
 * `--child <json args>` and talks to it over IPC), which bench/transport.bench.ts's peers
 * use too. Moved here unchanged from those files; what differs between the benches (the
 * configuration, how often 'await' looks) is a parameter. And the gateway's next hop in its
 * own process (`nmtp serve`), when a bench keeps the receiver's work out of the gateway's.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startGateway } from '../src/cli/gateway-start.ts';
import { validateConfig, type GatewayConfig } from '../src/gateway/config.ts';
import { generateSelfSigned } from '../src/server/certs.ts';

// ---------------------------------------------------------------------------------------
// The options both gateway benches take (each bench's header lists them)

export interface CommonBenchOptions<S extends string> {
  quick: boolean;
  rounds: number;
  sizes: S[];
  n: number | undefined;
  latency: number | undefined;
  reuse: boolean;
  log: 'info' | 'silent';
  profile: boolean;
  keepProfiles: boolean;
  cpuProf: string | undefined;
  store: string;
  profDir: string;
  /** --warm: warm-up messages per side before the rounds; default `warmUp(size)`. */
  warm: number | undefined;
}

/**
 * Warm-up messages per side before the measured rounds (--quick: a tenth). The gateway is a
 * long-running process whose JavaScript V8 compiles while it runs: over its first few
 * thousand messages its CPU per message falls by a third or more (100 KB: 6.4 ms per
 * message in a round after 1000 warm-up messages, 3.1–3.6 after 3000). The rounds measure
 * the steady state, as a daemon runs; Postfix gets the same messages first. `--warm 200`
 * gives the colder figures.
 */
export function warmUp(_size: string, o: { quick: boolean; warm: number | undefined }): number {
  const full = 3000;
  return o.warm ?? (o.quick ? full / 10 : full);
}

/** The common options, and readers for a bench's own (`at`: a flag's value, `num`: as a number). */
export function commonBenchOptions<S extends string>(
  argv: readonly string[],
  sizeNames: readonly S[],
  profPrefix: string,
): {
  common: CommonBenchOptions<S>;
  at(flag: string): string | undefined;
  num(flag: string): number | undefined;
} {
  const at = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i < 0 ? undefined : argv[i + 1];
  };
  const num = (flag: string): number | undefined =>
    at(flag) === undefined ? undefined : Number(at(flag));
  const quick = argv.includes('--quick');
  const sizes = (at('--sizes')?.split(',') ?? [...sizeNames]) as S[];
  for (const s of sizes) if (!sizeNames.includes(s)) throw new Error(`--sizes: unknown size ${s}`);
  const log = at('--log') ?? 'info';
  if (log !== 'info' && log !== 'silent') throw new Error('--log: info or silent');
  const common: CommonBenchOptions<S> = {
    quick,
    rounds: Number(at('--rounds') ?? (quick ? 1 : 5)),
    sizes,
    n: num('--n'),
    latency: num('--latency'),
    reuse: argv.includes('--reuse'),
    log,
    profile: argv.includes('--profile'),
    keepProfiles: argv.includes('--keep-profiles'),
    cpuProf: at('--cpu-prof'),
    store: at('--store') ?? tmpdir(),
    profDir: mkdtempSync(join(tmpdir(), profPrefix)),
    warm: num('--warm'),
  };
  return { common, at, num };
}

// ---------------------------------------------------------------------------------------
// A forked child and its messages

/** The JSON arguments a bench file's child was forked with, if this process is one. */
export function childArgs<T>(): T | undefined {
  return process.argv[2] === '--child' ? (JSON.parse(process.argv[3]!) as T) : undefined;
}

export interface ForkOptions {
  /** The bench file's import.meta.url: it forks itself, its main() sees childArgs(). */
  module: string;
  args: unknown;
  /** Node options before `--import tsx`. */
  execArgv?: readonly string[];
  /** The child's stderr: a file descriptor (e.g. the gateway's log) or the parent's. */
  stderr: number | 'inherit';
  /** --cpu-prof <dir>: node's own profiler in the child, one profile per thread. */
  cpuProf: string | undefined;
  /** What to print when the child dies (non-zero exit code). */
  exitMessage: (code: number | null) => string;
}

/** A child process answering one message at a time: `ask` sends and waits for the reply. */
export class ForkedChild<Msg extends { type: string }> {
  readonly proc: ChildProcess;
  private waiting: ((m: Record<string, unknown>) => void)[] = [];
  private inbox: Record<string, unknown>[] = [];

  constructor(o: ForkOptions) {
    this.proc = fork(fileURLToPath(o.module), ['--child', JSON.stringify(o.args)], {
      execArgv: [
        ...(o.execArgv ?? []),
        '--import',
        'tsx',
        ...(o.cpuProf === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', o.cpuProf]),
      ],
      stdio: ['ignore', 'inherit', o.stderr, 'ipc'],
    });
    this.proc.on('message', (m: Record<string, unknown>) => {
      const w = this.waiting.shift();
      if (w) w(m);
      else this.inbox.push(m);
    });
    this.proc.on('exit', (code) => {
      if (code === 0) return;
      // A dead child would leave the run waiting forever: stop here.
      console.error(o.exitMessage(code));
      process.exit(1);
    });
  }

  next(): Promise<Record<string, unknown>> {
    const m = this.inbox.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  ask(m: Msg): Promise<Record<string, unknown>> {
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

/** The child's main thread profiled from here on (the inspector in-process). */
export async function startProfiler(): Promise<Session> {
  const profiler = new Session();
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.start');
  return profiler;
}

/** Stops a startProfiler() session and writes its .cpuprofile to `file`. */
export async function stopProfiler(profiler: Session, file: string): Promise<void> {
  const { profile } = await profiler.post('Profiler.stop');
  profiler.disconnect();
  writeFileSync(file, JSON.stringify(profile));
}

// ---------------------------------------------------------------------------------------
// The gateway child

export type GatewayChildMsg =
  | { type: 'await'; accepted: number; timeoutMs: number }
  | { type: 'profile-start' }
  | { type: 'profile-stop'; file: string }
  | { type: 'exit' };

/**
 * The gateway's configuration in a bench: its defaults but for ephemeral ports, no admin
 * listener, its state, queue and maildir under `dir`; `more` adds what a bench needs.
 */
export function benchGatewayConfig(
  dir: string,
  log: 'info' | 'silent',
  more: Record<string, unknown> = {},
): GatewayConfig {
  return validateConfig({
    gateway: { stateDir: join(dir, 'state') },
    smtp: { listeners: [{ protocol: 'smtp', listen: '127.0.0.1:0' }] },
    nmtp: { receiver: { listen: '127.0.0.1:0', maildir: join(dir, 'maildir') } },
    ...more,
    queue: { dir: join(dir, 'queue') },
    admin: { listen: '' },
    log: { level: log },
  });
}

/**
 * The child's side: starts the gateway, replies `{ type: 'ready', ports }`, then serves
 * the parent's messages. 'await' polls the queue in this process (no round trip per look)
 * every `pollMs` until every entry's recipient is final; counts() walks every entry in
 * memory, so not too often.
 */
export async function serveGatewayChild(config: GatewayConfig, pollMs: number): Promise<void> {
  const gw = await startGateway(config);
  const reply = (m: unknown): void => void process.send!(m);
  reply({ type: 'ready', ports: gw.ports });
  let profiler: Session | undefined;
  process.on('message', (m: GatewayChildMsg) => {
    void (async () => {
      switch (m.type) {
        case 'await': {
          const end = Date.now() + m.timeoutMs;
          for (;;) {
            const c = await gw.queue.counts();
            const final = c.accepted + c.rejected + c['given-up'];
            if (final >= m.accepted || Date.now() > end) {
              reply({ type: 'reached', counts: c, ok: c.accepted >= m.accepted });
              return;
            }
            await sleep(pollMs);
          }
        }
        case 'profile-start':
          profiler = await startProfiler();
          reply({ type: 'ok' });
          return;
        case 'profile-stop':
          await stopProfiler(profiler!, m.file);
          reply({ type: 'ok' });
          return;
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

/** The parent's side: the gateway child, its stderr (its log) into `logFd`. */
export class GatewayProcess extends ForkedChild<GatewayChildMsg> {
  constructor(
    module: string,
    args: { readonly dir: string; readonly [more: string]: unknown },
    logFd: number,
    cpuProf: string | undefined,
  ) {
    super({
      module,
      args,
      stderr: logFd,
      cpuProf,
      exitMessage: (code) => `gateway process exited ${code} (its log: ${args.dir}/gateway.log)`,
    });
  }
}

// ---------------------------------------------------------------------------------------
// The next hop in its own process: `nmtp serve`, the reference mailbox receiver

export interface NmtpReceiver {
  readonly port: number;
  readonly pid: number;
  /** Its maildir: each accepted message is a file in new/ once stored. */
  readonly maildir: string;
  /** The CA a client trusts for it: its self-signed certificate, naming 127.0.0.1. */
  readonly certFile: string;
  /** What it wrote on stderr (its onError lines, a crash recovery), at stop(). */
  stop(): Promise<string>;
}

const cliNmtp = fileURLToPath(new URL('../src/cli/nmtp.ts', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * `nmtp serve` as an operator starts it (README, "Two endpoints"), in its own process on an
 * ephemeral loopback port: the transfer host in front of the reference mailbox, which stores
 * durably (journal + fdatasync before its 250, then a file per recipient in new/). Its
 * server name and certificate are 127.0.0.1, the address an SRV record points a client at,
 * so the client checks the certificate by name (no insecure TLS). `keyRecords` are the
 * senders' key records it knows without DNS (--key-record): it checks their HELLO proof.
 * The poll window is the gateway receiver's (60 / 3600 s) rather than serve's demo one.
 */
export async function startNmtpReceiver(o: {
  dir: string;
  keyRecords: readonly { readonly name: string; readonly value: string }[];
  /** --cpu-prof <dir>: node's own profiler in the receiver as well. */
  cpuProf?: string | undefined;
}): Promise<NmtpReceiver> {
  mkdirSync(o.dir, { recursive: true });
  const cert = generateSelfSigned(join(o.dir, 'tls'), '127.0.0.1', 30);
  const maildir = join(o.dir, 'maildir');
  const errFile = join(o.dir, 'stderr.log');
  const errFd = openSync(errFile, 'w');
  const args = [
    ...(o.cpuProf === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', o.cpuProf]),
    ...['--import', 'tsx', cliNmtp, 'serve', '--listen', '127.0.0.1:0'],
    ...['--domain', '127.0.0.1', '--cert', cert.certFile, '--key', cert.keyFile],
    ...['--maildir', maildir, '--min-poll', '60', '--max-poll', '3600'],
    ...o.keyRecords.flatMap((r) => ['--key-record', `${r.name}=${r.value}`]),
  ];
  // The project's root as the working directory: `--import tsx` resolves from there.
  const proc = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', errFd] });
  closeSync(errFd);
  let stopping = false;
  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
  void exited.then((code) => {
    if (stopping) return;
    // A dead next hop would leave the run waiting for deliveries: stop here.
    console.error(`nmtp serve exited ${code}: ${readFileSync(errFile, 'utf8').slice(0, 2000)}`);
    process.exit(1);
  });
  const stdout = proc.stdout!;
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`nmtp serve did not start: ${out}`)), 60_000);
    stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      const m = /^listening on 127\.0\.0\.1:(\d+)$/m.exec(out);
      if (m !== null) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
  });
  // Later lines (its next steps) are read and dropped, so a full pipe never blocks it.
  stdout.resume();
  return {
    port,
    pid: proc.pid!,
    maildir,
    certFile: cert.certFile,
    async stop() {
      stopping = true;
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        const code = await exited;
        if (code !== 0) console.error(`nmtp serve stopped with exit code ${code}`);
      }
      return readFileSync(errFile, 'utf8');
    },
  };
}
