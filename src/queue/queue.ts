/**
 * The outgoing queue and its delivery manager ("qmgr" in Postfix's split): submissions are
 * added durably by the submission backend, and the manager delivers what is due — due
 * pending recipients grouped by destination domain, one transfer job per domain; STATUS
 * polls of deferred recipients inside the receiver's window; a bigger view when STATUS asks
 * for one (352, §60.10.6); GIVEUP at the deadline — and records every result durably before
 * it becomes visible to STATUS. docs/protocol.md §60.16.
 *
 * Delivery goes through an injected `deliver` function (src/queue/deliver.ts wires the
 * transfer client); time and timers are injected too, so tests drive the queue with a
 * manual clock and `tick()`.
 */
import { NmtpError } from '../core/errors/index.ts';
import type { ClientJob, RecipientStatus } from '../core/session/index.ts';
import type { Reply } from '../core/wire/index.ts';
import { stat } from 'node:fs/promises';
import {
  fileSource,
  type Endpoint,
  type MessageSource,
  type SessionFailure,
} from '../client/transfer.ts';
import { DEFAULT_RETRY, nextDue, type RetryPolicy } from './schedule.ts';
import { workPass } from './work.ts';
import { QueueStore } from './store.ts';
import type { CookieEndpoint, QueuedSubmission } from './types.ts';

/** One transfer job for the deliver function. */
export interface DeliverRequest {
  /** Destination domain (A-label): its SRV targets. */
  readonly domain: string;
  readonly job: ClientJob;
  /**
   * The message, for jobs that send a view (deliver, data-on-cookie): streamed from the
   * queue's file, never read whole.
   */
  readonly message: MessageSource | undefined;
  /** For cookie jobs: where the cookie was issued (the receiver binds it there). */
  readonly endpoint?: CookieEndpoint;
  /** For cookie jobs: the recipient the cookie is for. */
  readonly rcpt?: string;
}

/**
 * What a deliver function reports: the answer of every recipient it got one for, and why
 * the others have none. The transfer client's `JobResult` has this shape; so has the
 * redirect-following `DeliveryResult`, whose answers each name their own endpoint (a
 * cookie lives where it was issued).
 */
export interface DeliverOutcome {
  readonly recipients: readonly {
    readonly rcpt: string;
    readonly reply: Reply;
    readonly endpoint?: CookieEndpoint;
  }[];
  readonly endpoint?: Endpoint;
  readonly failure?: SessionFailure;
}

/** Runs one transfer job; rejects when nothing could be reached (a temporary failure). */
export type DeliverFn = (r: DeliverRequest) => Promise<DeliverOutcome>;

export interface Timers {
  set(ms: number, f: () => void): unknown;
  clear(handle: unknown): void;
}

export const realTimers: Timers = {
  set(ms, f) {
    const t = setTimeout(f, ms);
    t.unref();
    return t;
  },
  clear(h) {
    clearTimeout(h as NodeJS.Timeout);
  },
};

export interface QueueOptions {
  readonly dir: string;
  readonly deliver: DeliverFn;
  /** Unix milliseconds now; default Date.now. */
  readonly now?: () => number;
  /** How to wake up when something is due; `false`: never by itself (tests call tick()). */
  readonly timers?: Timers | false;
  readonly retry?: Partial<RetryPolicy>;
  /** Seconds the state of a finished submission is kept for STATUS (default 7 days). */
  readonly keepDone?: number;
  /** Submissions worked on at the same time (default 8). */
  readonly concurrency?: number;
  readonly onError?: (e: unknown) => void;
}

export interface NewSubmission {
  readonly id: string;
  readonly user: string;
  readonly recipients: readonly string[];
  readonly message: Uint8Array;
}

/** A wake-up is never further away than this, so a changed clock is noticed. */
const MAX_SLEEP_MS = 3_600_000;

export class Queue {
  private readonly subs = new Map<string, QueuedSubmission>();
  private readonly busy = new Set<string>();
  private readonly running = new Set<Promise<void>>();
  private timer: unknown;
  private closed = false;
  readonly retry: RetryPolicy;

  private constructor(
    readonly store: QueueStore,
    private readonly o: QueueOptions,
  ) {
    this.retry = { ...DEFAULT_RETRY, ...o.retry };
  }

  /** Opens the queue directory and reloads every submission in it (restart). */
  static async open(o: QueueOptions): Promise<Queue> {
    const store = await QueueStore.open(o.dir);
    const q = new Queue(store, o);
    for (const s of await store.load(o.onError)) q.subs.set(s.id, s);
    q.schedule();
    return q;
  }

  /** Unix seconds. */
  now(): number {
    return Math.floor((this.o.now ?? Date.now)() / 1000);
  }

  get spoolDir(): string {
    return this.store.spoolDir;
  }

  /**
   * Stores a submission durably — message, then state — and only then makes it visible
   * and due: when this resolves, the submission survives a crash ("accepted means stored").
   */
  async add(n: NewSubmission): Promise<QueuedSubmission> {
    if (this.subs.has(n.id)) throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'duplicate id');
    const s = this.fresh(n, n.message.length);
    await this.store.writeMessage(s.id, n.message);
    try {
      return await this.record(s);
    } catch (e) {
      await this.store.removeMessage(s.id).catch(() => undefined);
      throw e;
    }
  }

  private fresh(n: Omit<NewSubmission, 'message'>, size: number): QueuedSubmission {
    const now = this.now();
    return {
      version: 1,
      id: n.id,
      user: n.user,
      created: now,
      expires: now + this.retry.maxAge,
      size,
      recipients: n.recipients.map((rcpt) => ({
        rcpt,
        state: 'pending',
        attempts: 0,
        polls: 0,
        nextAt: now,
      })),
    };
  }

  /** The state after the message: then visible (STATUS) and due (the manager). */
  private async record(s: QueuedSubmission): Promise<QueuedSubmission> {
    await this.store.writeState(s);
    this.subs.set(s.id, s);
    this.schedule();
    return s;
  }

  /**
   * As add(), for a message already written to a file in the queue directory (the
   * submission backend's sealed spool): the file is fsync'd and renamed into the queue,
   * then the state is written — no copy, nothing held in memory.
   */
  async addFile(n: Omit<NewSubmission, 'message'> & { readonly file: string }): Promise<void> {
    if (this.subs.has(n.id)) throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'duplicate id');
    const size = (await stat(n.file)).size;
    await this.store.adoptMessage(n.id, n.file);
    try {
      await this.record(this.fresh(n, size));
    } catch (e) {
      // No state, no id: the message is an orphan now rather than at the next start.
      await this.store.removeMessage(n.id).catch(() => undefined);
      throw e;
    }
  }

  get(id: string): QueuedSubmission | undefined {
    return this.subs.get(id);
  }

  /** Per-recipient state for `user`; undefined for an unknown id or another user's. */
  status(id: string, user: string): RecipientStatus[] | undefined {
    const s = this.subs.get(id);
    if (s === undefined || s.user !== user) return undefined;
    return s.recipients.map((r) => ({ rcpt: r.rcpt, state: r.state }));
  }

  /** Works on everything due now; resolves when that work (and its records) is done. */
  async tick(): Promise<void> {
    if (this.closed) return;
    const now = this.now();
    const limit = this.o.concurrency ?? 8;
    const started: Promise<void>[] = [];
    for (const s of [...this.subs.values()]) {
      if (this.busy.size >= limit) break;
      if (this.busy.has(s.id)) continue;
      if (s.done !== undefined) {
        if (now >= s.done + (this.o.keepDone ?? 7 * 86400)) await this.purge(s);
        continue;
      }
      const due = nextDue(s);
      if (due === undefined || due > now) continue;
      this.busy.add(s.id);
      const p = this.work(s.id)
        .catch((e: unknown) => this.o.onError?.(e))
        .finally(() => {
          this.busy.delete(s.id);
          this.running.delete(p);
          this.schedule();
        });
      this.running.add(p);
      started.push(p);
    }
    await Promise.all(started);
  }

  /** Stops waking up and waits for work in progress. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined && this.o.timers !== false)
      (this.o.timers ?? realTimers).clear(this.timer);
    this.timer = undefined;
    await Promise.all([...this.running]);
  }

  /** Sets the one wake-up timer for the earliest due moment. */
  private schedule(): void {
    const timers = this.o.timers ?? realTimers;
    // At the concurrency limit, the next finishing job calls this again.
    if (timers === false || this.closed || this.busy.size >= (this.o.concurrency ?? 8)) return;
    let at: number | undefined;
    for (const s of this.subs.values()) {
      if (this.busy.has(s.id)) continue;
      const due = s.done === undefined ? nextDue(s) : s.done + (this.o.keepDone ?? 7 * 86400);
      if (due !== undefined) at = Math.min(at ?? due, due);
    }
    if (this.timer !== undefined) timers.clear(this.timer);
    this.timer = undefined;
    if (at === undefined) return;
    const ms = Math.max(0, Math.min(at * 1000 - (this.o.now ?? Date.now)(), MAX_SLEEP_MS));
    this.timer = timers.set(ms, () => {
      this.timer = undefined;
      void this.tick()
        .catch((e: unknown) => this.o.onError?.(e))
        .finally(() => this.schedule());
    });
  }

  /** Records a new state: on disk first, then in memory (what STATUS reads). */
  private async commit(s: QueuedSubmission): Promise<QueuedSubmission> {
    const before = this.subs.get(s.id);
    if (before === s) return s;
    await this.store.writeState(s);
    this.subs.set(s.id, s);
    if (s.done !== undefined && before?.done === undefined) {
      // Every recipient is final: the message is no longer needed, the state is kept.
      await this.store.removeMessage(s.id).catch((e: unknown) => this.o.onError?.(e));
    }
    return s;
  }

  private async purge(s: QueuedSubmission): Promise<void> {
    await this.store.removeMessage(s.id).catch(() => undefined);
    await this.store.removeState(s.id);
    this.subs.delete(s.id);
  }

  private async call(r: DeliverRequest): Promise<DeliverOutcome | unknown> {
    try {
      return await this.o.deliver(r);
    } catch (e) {
      return e;
    }
  }

  /** One pass over one submission (src/queue/work.ts). */
  private async work(id: string): Promise<void> {
    await workPass(this.subs.get(id)!, {
      deliver: this.o.deliver,
      retry: this.retry,
      now: () => this.now(),
      loadMessage: () => fileSource(this.store.messagePath(id)),
      commit: (s) => this.commit(s),
    });
  }
}
