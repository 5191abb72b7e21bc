/**
 * A connection pool for the transfer client, per destination endpoint (docs/protocol.md
 * §60.10.7): at most `maxPerDestination` sessions to one host:port, a finished session is
 * kept idle for the next job until `idleTimeoutMs`, a broken one is discarded, and a session
 * never runs two jobs at once. Jobs beyond the limit wait for a session to come free.
 */
import { NmtpError } from '../core/errors/index.ts';
import type { ClientJob } from '../core/session/index.ts';
import {
  ClientSession,
  openConnection,
  type ClientIdentity,
  type ConnectOptions,
  type Endpoint,
  type JobResult,
} from './session.ts';
import type { MessageSource } from './source.ts';

export interface PoolOptions extends ConnectOptions {
  /** Most sessions open to one destination at once; default 4. */
  readonly maxPerDestination?: number;
  /**
   * How long an idle session is kept for another job; default 30 s, well inside the
   * server's 300 s `ready` timeout (§60.10.1).
   */
  readonly idleTimeoutMs?: number;
}

interface Destination {
  readonly sessions: Set<ClientSession>;
  /** Connections being opened (counted against the limit). */
  opening: number;
  readonly waiters: (() => void)[];
}

export class TransferPool {
  private readonly destinations = new Map<string, Destination>();
  private readonly idleTimers = new Map<ClientSession, NodeJS.Timeout>();
  private closed = false;
  /** Connections opened so far (tests and metrics). */
  opened = 0;

  constructor(
    private readonly identity: ClientIdentity,
    private readonly options: PoolOptions = {},
  ) {}

  /** Sessions currently open to `endpoint` (idle or busy). */
  size(endpoint: Endpoint, o: ConnectOptions = {}): number {
    return this.destinations.get(this.key(endpoint, o))?.sessions.size ?? 0;
  }

  /**
   * Runs `job` at `endpoint` on an idle session, a new one, or the first to come free.
   * Rejects with NMTP_ERR_TRANSPORT_CONNECT_FAILED when a new connection cannot be made.
   * `o` overrides the pool's connect options (a redirect target: `insecureTls`).
   */
  async run(
    endpoint: Endpoint,
    job: ClientJob,
    source?: MessageSource | Uint8Array,
    o: ConnectOptions = {},
  ): Promise<JobResult> {
    const opts = { ...this.options, ...o };
    const key = this.key(endpoint, opts);
    let d = this.destinations.get(key);
    if (d === undefined) {
      d = { sessions: new Set(), opening: 0, waiters: [] };
      this.destinations.set(key, d);
    }
    const max = Math.max(1, this.options.maxPerDestination ?? 4);
    let retried = false;
    for (;;) {
      if (this.closed) throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'pool closed');
      const idle = idleIn(d);
      if (idle !== undefined) {
        // Its idle timer stays: it finishes only a session still idle when it fires.
        const r = await idle.run(job, source);
        // A kept session the server closed meanwhile (its own timeout) fails before any
        // answer: not the job's fault — once, on another session.
        if (r.failure !== undefined && r.recipients.length === 0 && !retried) {
          retried = true;
          continue;
        }
        return r;
      }
      if (d.sessions.size + d.opening < max) return this.open(d, endpoint, job, source, opts);
      await new Promise<void>((resolve) => d.waiters.push(resolve));
    }
  }

  /** QUITs every session (busy ones after their job) and waits until all are closed. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.destinations.values()].flatMap((d) => [...d.sessions]);
    for (const s of all) s.finish();
    await Promise.all(all.map((s) => s.ended));
  }

  private key(e: Endpoint, o: ConnectOptions): string {
    // A session opened without certificate checks (a redirect target) is never reused for
    // a destination that requires them.
    return `${e.host.toLowerCase()}:${e.port}${o.insecureTls === true ? ' insecure' : ''}${o.plaintext === true ? ' plaintext' : ''}`;
  }

  private async open(
    d: Destination,
    endpoint: Endpoint,
    job: ClientJob,
    source: MessageSource | Uint8Array | undefined,
    o: ConnectOptions,
  ): Promise<JobResult> {
    d.opening++;
    let socket;
    try {
      socket = await openConnection(endpoint, o);
    } catch (e) {
      d.opening--;
      d.waiters.shift()?.();
      throw e;
    }
    d.opening--;
    this.opened++;
    return new Promise<JobResult>((resolve) => {
      const s = new ClientSession(socket, endpoint, this.identity, job, source, resolve, {
        ...o,
        keepOpen: !this.closed,
      });
      d.sessions.add(s);
      s.onChange = () => this.changed(d, s);
    });
  }

  private changed(d: Destination, s: ClientSession): void {
    if (s.closed) {
      // A broken (or finished) session is discarded; its slot goes to a waiting job.
      const t = this.idleTimers.get(s);
      if (t !== undefined) clearTimeout(t);
      this.idleTimers.delete(s);
      d.sessions.delete(s);
    } else if (s.idle) {
      if (this.closed) {
        s.finish();
        return;
      }
      // One timer per session, restarted each time it goes idle (not a new one per job);
      // one that fires while the session is busy does nothing, and the next idle restarts it.
      const t = this.idleTimers.get(s);
      if (t !== undefined) t.refresh();
      else {
        const idleFor = setTimeout(() => {
          if (s.idle) s.finish();
        }, this.options.idleTimeoutMs ?? 30_000);
        idleFor.unref();
        this.idleTimers.set(s, idleFor);
      }
    }
    d.waiters.shift()?.();
  }
}

/** A session of `d` that is idle and open, if any. */
function idleIn(d: Destination): ClientSession | undefined {
  for (const s of d.sessions) if (s.idle && !s.closed) return s;
  return undefined;
}
