/**
 * The cleanup service on worker threads (src/gateway/cleanup.ts says what it does): a job
 * goes to the thread with the fewest jobs waiting; its answer comes back as the same octets
 * or the same NmtpError `cleanup` gives on the event loop.
 *
 * A thread that dies fails the jobs it had with NMTP_ERR_TRANSPORT_LOCAL (temporary: the
 * SMTP client gets 451 and tries again; nothing was accepted) and is replaced after a pause
 * that grows while it keeps dying; meanwhile the other threads take the jobs, and with none
 * left a job fails the same way at once. A thread that has jobs and answers none for
 * `jobTimeoutMs` (`smtp.cleanupTimeout`: a message that makes the converter loop, whatever
 * its limits) is stopped and dies so: the cost of one message in time is bounded, and the
 * messages behind it are not held.
 */
import type { Worker } from 'node:worker_threads';
import { primeLayout } from '../client/source.ts';
import { NmtpError, isErrorCode, type NmtpErrorDetails } from '../core/errors/index.ts';
import type { SigningKey } from '../core/sign/index.ts';
import { restartPause, spawnThread } from '../thread/spawn.ts';
import type { Cleanup, CleanupJob } from './cleanup.ts';
import type { CleanupFailure, FromCleanup, ToCleanup } from './cleanup.worker.ts';

const ENTRY = new URL('./cleanup.worker.ts', import.meta.url);

interface Waiting {
  readonly resolve: (framed: Uint8Array) => void;
  readonly reject: (e: Error) => void;
}

interface Slot {
  worker: Worker | undefined;
  /** Jobs for the thread, posted together once per turn of the event loop. */
  outbox: ToCleanup[];
  readonly waiting: Map<number, Waiting>;
  restarts: number;
  /** The key ids its thread was given (a new thread starts with none). */
  readonly keys: Set<number>;
  /** When the thread last made progress while it had jobs (performance.now()). */
  since: number;
  /** Stopped by the watchdog: its jobs fail as timed out. */
  stuck: boolean;
}

export interface CleanupPoolOptions {
  /** How long a thread with jobs may go without answering one (default 60 s). */
  readonly jobTimeoutMs?: number;
}

/** The error a thread reported, rebuilt as the one `cleanup` threw (code, message, details). */
function rebuildError(f: CleanupFailure): Error {
  const e =
    f.code !== undefined && isErrorCode(f.code)
      ? new NmtpError(f.code, undefined, (f.details ?? {}) as NmtpErrorDetails)
      : new Error();
  e.message = f.message;
  if (f.stack !== undefined) e.stack = f.stack;
  return e;
}

export class CleanupPool implements Cleanup {
  private readonly slots: Slot[];
  private n = 0;
  private closing = false;
  private readonly keyIds = new WeakMap<SigningKey, number>();
  private keyN = 0;
  /** Jobs given and not answered yet (close waits for them). */
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly jobTimeoutMs: number;
  private readonly watchdog: NodeJS.Timeout;

  private constructor(
    threads: number,
    private readonly onError: (e: unknown) => void,
    o: CleanupPoolOptions,
  ) {
    this.slots = Array.from({ length: threads }, () => ({
      worker: undefined,
      outbox: [],
      waiting: new Map(),
      restarts: 0,
      keys: new Set(),
      since: 0,
      stuck: false,
    }));
    this.jobTimeoutMs = o.jobTimeoutMs ?? 60_000;
    this.watchdog = setInterval(
      () => this.stopStuck(),
      Math.min(1000, Math.max(5, this.jobTimeoutMs / 4)),
    );
    this.watchdog.unref();
  }

  /** Starts `threads` threads and waits until each has loaded its code (or fails). */
  static async start(
    threads: number,
    onError: (e: unknown) => void = () => undefined,
    o: CleanupPoolOptions = {},
  ): Promise<CleanupPool> {
    if (!Number.isInteger(threads) || threads < 1) {
      throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', `cleanup threads: ${threads}`);
    }
    const pool = new CleanupPool(threads, onError, o);
    try {
      await Promise.all(pool.slots.map((s) => pool.run1(s)));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  run(job: CleanupJob): Promise<Uint8Array> {
    let best: Slot | undefined;
    for (const s of this.slots) {
      if (s.worker !== undefined && (best === undefined || s.waiting.size < best.waiting.size)) {
        best = s;
      }
    }
    const w = best?.worker;
    if (this.closing || best === undefined || w === undefined) {
      return Promise.reject(
        new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'no cleanup thread is running'),
      );
    }
    const id = ++this.n;
    const slot = best;
    const answer = new Promise<Uint8Array>((resolve, reject) => {
      if (slot.waiting.size === 0) {
        w.ref();
        slot.since = performance.now();
      }
      slot.waiting.set(id, { resolve, reject });
      let keyId = this.keyIds.get(job.sign.key);
      if (keyId === undefined) this.keyIds.set(job.sign.key, (keyId = ++this.keyN));
      const { key, ...sign } = job.sign;
      const first = !slot.keys.has(keyId);
      slot.keys.add(keyId);
      // The legacy octets are copied (smtp-in still holds them for legacy recipients).
      slot.outbox.push({
        id,
        keyId,
        ...(first ? { key } : {}),
        legacy: job.legacy,
        convert: job.convert,
        sign,
      });
      // With many sessions, one postMessage (one clone, one wake-up) carries many jobs.
      if (slot.outbox.length === 1) {
        setImmediate(() => {
          const batch = slot.outbox;
          slot.outbox = [];
          if (slot.worker === w) w.postMessage(batch);
          else for (const j of batch) this.fail(slot, j.id);
        });
      }
    });
    const settled: Promise<unknown> = answer.then(
      (): boolean => this.inflight.delete(settled),
      (): boolean => this.inflight.delete(settled),
    );
    this.inflight.add(settled);
    return answer;
  }

  /**
   * Waits for the jobs given (at most `graceMs`: a job is bounded by the converter's limits,
   * so one still running then is a fault), then stops the threads; a job they had fails as
   * temporary (nothing was accepted for it).
   */
  async close(graceMs = 10_000): Promise<void> {
    this.closing = true;
    clearInterval(this.watchdog);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.inflight]),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
    ]);
    clearTimeout(timer);
    await Promise.all(
      this.slots.map(async (s) => {
        const w = s.worker;
        s.worker = undefined;
        if (w !== undefined) await w.terminate();
      }),
    );
  }

  /** Starts the slot's thread; resolves once it said ready, rejects if it died before. */
  private run1(slot: Slot): Promise<void> {
    return new Promise((ready, failed) => {
      const w = spawnThread(ENTRY, undefined);
      let started = false;
      // Idle threads do not hold the process (a job waiting does: `run` refs it).
      w.unref();
      w.on('message', (batch: readonly FromCleanup[]) => {
        for (const m of batch) {
          if (m.kind === 'ready') {
            started = true;
            slot.keys.clear();
            slot.worker = w;
            ready();
            continue;
          }
          const p = slot.waiting.get(m.id);
          if (p === undefined) continue;
          slot.waiting.delete(m.id);
          slot.restarts = 0;
          if (m.kind === 'done') {
            if (m.layout !== undefined) primeLayout(m.framed, m.layout);
            p.resolve(m.framed);
          } else p.reject(rebuildError(m.error));
        }
        slot.since = performance.now();
        if (slot.waiting.size === 0) w.unref();
      });
      w.on('error', (e) => (started ? this.onError(e) : failed(e)));
      w.on('exit', (code) => {
        if (slot.worker === w) slot.worker = undefined;
        const gone = new NmtpError(
          'NMTP_ERR_TRANSPORT_LOCAL',
          slot.stuck
            ? `cleanup gave no answer within ${this.jobTimeoutMs / 1000} s: its thread was stopped`
            : `cleanup thread exited (${code})`,
        );
        slot.stuck = false;
        for (const p of slot.waiting.values()) p.reject(gone);
        slot.waiting.clear();
        if (!started) return failed(gone);
        if (!this.closing) this.restartLater(slot, code);
      });
    });
  }

  /** Stops each thread that has had jobs and answered none for jobTimeoutMs. */
  private stopStuck(): void {
    const now = performance.now();
    for (const s of this.slots) {
      const w = s.worker;
      if (w === undefined || s.stuck || s.waiting.size === 0) continue;
      if (now - s.since <= this.jobTimeoutMs) continue;
      s.stuck = true;
      this.onError(
        new NmtpError(
          'NMTP_ERR_TRANSPORT_LOCAL',
          `cleanup thread gave no answer within ${this.jobTimeoutMs / 1000} s: stopped`,
        ),
      );
      // No new job for it; V8 stops a thread even in a loop, and its exit fails the jobs
      // it had and starts another.
      s.worker = undefined;
      void w.terminate();
    }
  }

  /** A job whose thread went before it was posted: temporary, as if it had died with it. */
  private fail(slot: Slot, id: number): void {
    const p = slot.waiting.get(id);
    if (p === undefined) return;
    slot.waiting.delete(id);
    p.reject(new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'cleanup thread exited'));
  }

  private restartLater(slot: Slot, code: number): void {
    slot.restarts++;
    const pause = restartPause(slot.restarts);
    this.onError(
      new NmtpError(
        'NMTP_ERR_TRANSPORT_LOCAL',
        `cleanup thread exited (${code}); restart in ${pause} ms`,
      ),
    );
    setTimeout(() => {
      if (this.closing) return;
      this.run1(slot).catch((e: unknown) => {
        this.onError(e);
        if (!this.closing) this.restartLater(slot, code);
      });
    }, pause).unref();
  }
}
