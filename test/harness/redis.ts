/**
 * A private Redis (Debian's redis-server) on 127.0.0.1 and an ephemeral port, with its own
 * data directory, configured as the queue needs it: AOF on with `appendfsync always`, no
 * eviction, no RDB snapshots. `kill9()` and `restart()` let a test crash it and bring it
 * back over the same data directory and port; `stop()` ends it and removes the directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freeTcpPort } from '../support/net.ts';

export interface RedisServer {
  /** "redis://127.0.0.1:PORT" */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Stops the server (SIGTERM, or SIGKILL if it lingers) and removes its data directory. */
  stop(): Promise<void>;
  /** Kills the server with SIGKILL: no shutdown, no final fsync. */
  kill9(): Promise<void>;
  /** Starts it again on the same port and data directory (stopping it first if running). */
  restart(): Promise<void>;
}

export interface RedisOptions {
  /**
   * Settings replacing the durable defaults (`appendonly`, `appendfsync`,
   * `maxmemory-policy` …), e.g. `{ appendonly: 'no' }` for a Redis the queue must refuse.
   */
  readonly config?: Readonly<Record<string, string>>;
}

/** One PING over a fresh connection: true on +PONG (not while loading the AOF: -LOADING). */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
  });
}

export async function startRedis(o: RedisOptions = {}): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'nmtp-redis-'));
  const settings: Record<string, string> = {
    bind: '127.0.0.1',
    dir,
    appendonly: 'yes',
    appendfsync: 'always',
    'maxmemory-policy': 'noeviction',
    save: '',
    daemonize: 'no',
    'protected-mode': 'yes',
    logfile: '',
    loglevel: 'warning',
    ...o.config,
  };
  let port = 0;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const launch = async (): Promise<boolean> => {
    const args = [...Object.entries(settings).flatMap(([k, v]) => [`--${k}`, v])];
    const c = spawn('redis-server', ['--port', String(port), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (d: Buffer): void => {
      output = (output + d.toString()).slice(-4000);
    };
    c.stdout?.on('data', keep);
    c.stderr?.on('data', keep);
    const spawnError = new Promise<Error>((resolve) => c.once('error', resolve));
    exited = new Promise<void>((resolve) => c.once('close', () => resolve()));
    child = c;
    // Until it answers or exits (lost the port): on a loaded machine, starting (and loading
    // the AOF after a crash) can take seconds; the bound only turns a hang into a failure.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (c.exitCode !== null || c.signalCode !== null) break;
      if (await ping(port)) return true;
      const e = await Promise.race([spawnError, sleep(25)]);
      if (e instanceof Error) throw new Error(`redis-server did not start: ${e.message}`);
    }
    c.kill('SIGKILL');
    await exited;
    child = undefined;
    if (/Address already in use/i.test(output)) return false;
    throw new Error(`redis-server did not start: ${output.trim() || 'no answer to PING'}`);
  };

  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (c === undefined) return;
    child = undefined;
    if (c.exitCode === null && c.signalCode === null) {
      c.kill(signal);
      // A graceful shutdown writes and fsyncs the AOF; it never takes long on test data.
      const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
  };

  // The port is free when probed; if redis-server loses the race it exits and we try again.
  for (let attempt = 0; ; attempt++) {
    if (attempt === 5) {
      await rm(dir, { recursive: true, force: true });
      throw new Error('redis-server: no free port after 5 attempts');
    }
    port = await freeTcpPort();
    try {
      if (await launch()) break;
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async stop() {
      await halt('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
    async kill9() {
      await halt('SIGKILL');
    },
    async restart() {
      await halt('SIGTERM');
      // The same port, so that clients reconnect to the same URL; another process may hold
      // it for a moment (TIME_WAIT does not block a listener, a new bind would).
      for (let attempt = 0; attempt < 20; attempt++) {
        if (await launch()) return;
        await sleep(100);
      }
      throw new Error(`redis-server: port ${port} stayed busy; cannot restart`);
    },
  };
}
