/**
 * The queue port (src/queue/port.ts) on Redis with BullMQ: several gateway processes share
 * one queue. Redis holds the entries; BullMQ only wakes a worker when an entry is due, and
 * the delivery pass is the shared one (src/queue/work.ts).
 *
 * Key layout, under a configurable prefix P (adapters/bullmq/keys.ts):
 *
 *     P:msg:<id>      the message bytes (a string), deleted once every recipient is final
 *     P:state:<id>    the entry (QueuedSubmission as JSON); expires `keepDone` after `done`
 *     P:ids           sorted set of ids in creation order (scores from P:seq): list()
 *     P:seq           the counter behind those scores
 *     P:lock:<id>     the entry's lock: a random token with an expiry, renewed while held
 *     P:again:<id>    retries that found the entry locked (a count), for the lock's holder
 *     P:unobserved    ids whose last change no observer has finished with
 *     P:tmp:<id>:<n>  a message streamed in by addFile(), renamed to P:msg:<id> on success
 *     P:work:…        BullMQ's queue: delayed jobs "<id>.<due>", "look at entry <id>"
 *
 * Durability ("accepted means stored", port.ts): the queue refuses to start unless Redis
 * runs with `appendonly yes`, `appendfsync always` and `maxmemory-policy noeviction`. With
 * `always`, Redis writes and fsyncs the AOF before it answers the commands of that event
 * loop round, so an answered write survives a crash of Redis or of the machine; noeviction
 * makes a full Redis refuse writes (an error passed on to the caller) instead of dropping
 * entries. (Redis 7.0 has no WAITAOF: the configuration is the only guarantee, hence the
 * check.) add() writes message, state and index in one script — atomic, and replayed from
 * the AOF whole or not at all — and resolves after Redis answered it. Only then is the job
 * added: an entry whose job was lost (a crash in between) is scheduled again by the
 * start-up recovery and the periodic sweep, which look at every unfinished entry.
 *
 * Work: a job's worker takes the entry's lock (SET NX with an expiry, renewed while it
 * works), runs the delivery pass, and each commit checks the token in the same script that
 * writes the state, so a worker that lost its lock (stalled past the expiry) stores nothing.
 * A job that finds the entry locked puts itself off until the lock expires. Before it
 * unlocks, the holder schedules the entry's next due moment. BullMQ recovers the jobs of a
 * process that died (stalled jobs) and retries failed ones without limit: a job only says
 * "look at entry <id>", so a spare or repeated one does no harm.
 *
 * At-least-once: a process that dies after a receiver accepted a message and before the
 * commit recorded it delivers the message again. Every delivery must therefore be
 * idempotent for the receiver: the entry id is stable (the submission id; the SMTP
 * deliverer gets it as `id`), and the message is the same signed message with the same
 * Message-Id, so the receiver recognises the repeat.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { open, stat, unlink } from 'node:fs/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { NmtpError } from '../../src/core/errors/index.ts';
import type { MessageSource } from '../../src/client/source.ts';
import { DestinationLimiter } from '../../src/queue/limit.ts';
import { freshEntry, metaFrom } from '../../src/queue/meta.ts';
import type {
  NewEntry,
  QueueBackend,
  QueueBackendOptions,
  StateCounts,
} from '../../src/queue/port.ts';
import { DEFAULT_RETRY, nextDue, type RetryPolicy } from '../../src/queue/schedule.ts';
import { entryBytesSource } from '../../src/queue/source.ts';
import { SUBMISSION_ID_RE } from '../../src/queue/store.ts';
import type { QueuedRecipient, QueuedSubmission } from '../../src/queue/types.ts';
import { workPass } from '../../src/queue/work.ts';
import { jobIdFor, keysFor, WORK_QUEUE, type Keys } from './keys.ts';
import { defineScripts, type Scripts } from './scripts.ts';

export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024;
export const DEFAULT_PREFIX = 'nmtp-queue';

export interface BullmqQueueOptions extends QueueBackendOptions {
  /** "redis://host:port/db", or ioredis options. */
  readonly redis: string | RedisOptions;
  /** Prefix of every key (default "nmtp-queue"): one prefix per queue. */
  readonly prefix?: string;
  /** Messages above this many octets are refused (default 64 MiB: a Redis string is read whole). */
  readonly maxMessageSize?: number;
  /**
   * Whether this process works on entries (default true). false: it only reads and changes
   * the queue (the `queue` commands), with no worker, no recovery and no sweep.
   */
  readonly work?: boolean;
  /** Milliseconds an entry's lock (and a BullMQ job's lock) lasts unless renewed (default 30 s). */
  readonly lockMs?: number;
  /** Seconds between sweeps that schedule every unfinished entry again (default 600; 0: none). */
  readonly sweepEvery?: number;
}

interface JobData {
  readonly id: string;
  /** Unix seconds: when the entry is due, as the job was scheduled. */
  readonly due: number;
  /** How many times this job found the entry locked and put itself off. */
  readonly waits?: number;
}

/** The entry was deleted while this process held it: stop, store and schedule nothing. */
class Gone extends Error {}

/** A failed job (Redis trouble, a lost lock) is tried again after 1 s, 2 s … at most 5 min. */
const backoffStrategy = (attemptsMade: number): number =>
  Math.min(1000 * 2 ** Math.max(0, attemptsMade - 1), 300_000);

/** "Without limit", in a form BullMQ's scripts compare safely. */
const UNLIMITED = 1_000_000_000;

const DEFAULT_CONCURRENCY = 8;
const DEFAULT_KEEP_DONE = 7 * 86400;

export class BullmqQueue implements QueueBackend {
  readonly backend = 'bullmq';
  readonly policy: RetryPolicy;
  private readonly keys: Keys;
  private readonly scripts: Scripts;
  private readonly lockMs: number;
  private readonly maxSize: number;
  private readonly limiter: DestinationLimiter;
  private worker: Worker<JobData> | undefined;
  /** The start-up recovery, then each sweep: what close() waits for. */
  private background: Promise<void> | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** The lock renewals of the jobs in progress. */
  private readonly renewals = new Set<NodeJS.Timeout>();
  private closing: Promise<void> | undefined;
  /** close() finished: nothing is stored any more. */
  private ended = false;

  private constructor(
    private readonly o: BullmqQueueOptions,
    private readonly redis: Redis,
    private readonly jobs: Queue<JobData>,
  ) {
    this.keys = keysFor(o.prefix ?? DEFAULT_PREFIX);
    this.scripts = defineScripts(redis);
    this.lockMs = o.lockMs ?? 30_000;
    this.maxSize = o.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.policy = { ...DEFAULT_RETRY, ...o.retry };
    this.limiter = new DestinationLimiter(o.perDestination);
  }

  /**
   * Connects and refuses a Redis that would not keep what it acknowledged. Unless `work` is
   * false, starts the worker, and after open() has returned (an observer may use the queue)
   * recovers: shows every entry to the observer once and schedules every unfinished one.
   */
  static async open(o: BullmqQueueOptions): Promise<BullmqQueue> {
    const prefix = o.prefix ?? DEFAULT_PREFIX;
    keysFor(prefix);
    const concurrency = o.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new NmtpError('NMTP_ERR_CONFIG', 'concurrency must be a positive integer');
    }
    // BullMQ's blocking commands wait without limit: no command may fail for a slow reply,
    // and while Redis is away commands wait for it to come back.
    const settings = { maxRetriesPerRequest: null, lazyConnect: true } as const;
    const redis =
      typeof o.redis === 'string'
        ? new Redis(o.redis, settings)
        : new Redis({ ...o.redis, ...settings });
    let lastError: unknown;
    redis.on('error', (e: unknown) => {
      lastError = e;
      o.onError?.(e);
    });
    let jobs: Queue<JobData> | undefined;
    try {
      await redis.connect().catch((e: unknown) => {
        // ioredis rejects with "Connection is closed"; the reason came as an 'error' event.
        const where = `${redis.options.host ?? '?'}:${redis.options.port ?? '?'}`;
        throw new Error(`queue: cannot connect to Redis at ${where}: ${String(lastError ?? e)}`, {
          cause: lastError ?? e,
        });
      });
      await checkDurable(redis);
      jobs = new Queue<JobData>(WORK_QUEUE, { connection: redis, prefix });
      jobs.on('error', (e: unknown) => o.onError?.(e));
      await jobs.waitUntilReady();
      const q = new BullmqQueue(o, redis, jobs);
      if (o.work !== false) {
        q.startWorker(prefix, concurrency);
        q.background = nextTurn()
          .then(() => q.recover(true))
          .catch((e: unknown) => o.onError?.(e))
          .finally(() => (q.background = undefined));
        q.startSweeps();
      }
      return q;
    } catch (e) {
      await jobs?.close().catch(() => undefined);
      redis.disconnect();
      throw e;
    }
  }

  /** Unix seconds. */
  now(): number {
    return Math.floor(this.nowMs() / 1000);
  }

  private nowMs(): number {
    return (this.o.now ?? Date.now)();
  }

  private assertOpen(): void {
    if (this.ended) {
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'the queue is closed');
    }
  }

  private fresh(n: NewEntry, size: number): QueuedSubmission {
    this.assertOpen();
    if (!SUBMISSION_ID_RE.test(n.id)) {
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'malformed queue entry id');
    }
    this.checkSize(size);
    return freshEntry(n, size, this.now(), this.policy.maxAge);
  }

  private checkSize(size: number): void {
    if (size > this.maxSize) {
      throw new NmtpError(
        'NMTP_ERR_QUEUE_MESSAGE_TOO_LARGE',
        `a message of ${size} octets; this queue keeps at most ${this.maxSize}`,
        { size, max: this.maxSize },
      );
    }
  }

  async add(n: NewEntry & { readonly message: Uint8Array }): Promise<QueuedSubmission> {
    const s = this.fresh(n, n.message.length);
    const k = this.keys;
    const bytes = Buffer.from(n.message.buffer, n.message.byteOffset, n.message.length);
    const r = await this.scripts.add(
      [k.msg(s.id), k.state(s.id), k.ids, k.seq, k.unobserved],
      [s.id, bytes, JSON.stringify(s)],
    );
    if (r !== 1) throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'duplicate id');
    await this.scheduleAfterAdd(s);
    return s;
  }

  /**
   * As add(), for a message in a file: streamed into Redis in 1 MiB appends (never held
   * whole), adopted together with the state in one script, then the file is removed.
   */
  async addFile(n: NewEntry & { readonly file: string }): Promise<QueuedSubmission> {
    const s = this.fresh(n, (await stat(n.file)).size);
    const k = this.keys;
    const tmp = k.tmp(s.id, randomBytes(8).toString('hex'));
    // A crash while streaming leaves only this key behind, and it expires.
    await this.redis.set(tmp, '', 'EX', 3600);
    let size = 0;
    try {
      const fh = await open(n.file, 'r');
      try {
        const buf = Buffer.alloc(Math.min(1 << 20, Math.max(1, s.size)));
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, size);
          if (bytesRead === 0) break;
          size += bytesRead;
          this.checkSize(size);
          await this.redis.append(tmp, buf.subarray(0, bytesRead));
        }
      } finally {
        await fh.close();
      }
    } catch (e) {
      await this.redis.del(tmp).catch(() => undefined);
      throw e;
    }
    const stored = size === s.size ? s : { ...s, size };
    const r = await this.scripts.adopt(
      [tmp, k.msg(s.id), k.state(s.id), k.ids, k.seq, k.unobserved],
      [s.id, JSON.stringify(stored), size],
    );
    if (r === 0) throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'duplicate id');
    if (r !== 1) {
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `${n.file}: streamed copy incomplete`);
    }
    await unlink(n.file).catch((e: unknown) => this.o.onError?.(e));
    await this.scheduleAfterAdd(stored);
    return stored;
  }

  /** The entry is stored: a failure to schedule it now is repaired by the next sweep. */
  private async scheduleAfterAdd(s: QueuedSubmission): Promise<void> {
    try {
      await this.schedule(s.id, nextDue(s) ?? this.now());
    } catch (e) {
      this.o.onError?.(e);
    }
  }

  async get(id: string): Promise<QueuedSubmission | undefined> {
    if (!SUBMISSION_ID_RE.test(id)) return undefined;
    const raw = await this.redis.get(this.keys.state(id));
    return raw === null ? undefined : this.parse(id, raw);
  }

  /** A state that does not parse is reported and left in place for a person to look at. */
  private parse(id: string, raw: string): QueuedSubmission | undefined {
    try {
      const s = JSON.parse(raw) as QueuedSubmission;
      if (s.version !== 1 || s.id !== id) throw new Error('not a queue entry');
      return s;
    } catch (e) {
      this.o.onError?.(
        new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `queue state ${id}: ${String(e)}`),
      );
      return undefined;
    }
  }

  async list(): Promise<QueuedSubmission[]> {
    const ids = await this.redis.zrange(this.keys.ids, '0', '-1');
    const out: QueuedSubmission[] = [];
    const gone: string[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const batch = ids.slice(i, i + 500);
      const raws = await this.redis.mget(batch.map((id) => this.keys.state(id)));
      batch.forEach((id, j) => {
        const raw = raws[j];
        if (raw === null || raw === undefined) gone.push(id);
        else {
          const s = this.parse(id, raw);
          if (s !== undefined) out.push(s);
        }
      });
    }
    // Finished entries whose state expired: the index forgets them here (checked again in
    // the script: an id may have been added anew since).
    if (gone.length > 0) {
      await this.scripts.forget([this.keys.ids, ...gone.map((id) => this.keys.state(id))], gone);
    }
    return out;
  }

  /** The entry's message as its kind reads it (src/queue/source.ts), held in memory. */
  async message(id: string): Promise<MessageSource | undefined> {
    const s = await this.get(id);
    // A finished entry's message is kept until the observer has seen the end (then removed).
    if (s === undefined) return undefined;
    const b = await this.redis.getBuffer(this.keys.msg(id));
    if (b === null) return undefined;
    return entryBytesSource(s.kind, new Uint8Array(b.buffer, b.byteOffset, b.length));
  }

  /**
   * Makes every waiting pending or deferred recipient due now (postqueue -i). An entry a
   * worker holds gets the retry from that worker: merged into its next commit (the
   * recipients of the job in progress keep its result), or applied before it unlocks.
   */
  async retry(id: string): Promise<boolean> {
    this.assertOpen();
    if (!SUBMISSION_ID_RE.test(id)) return false;
    const k = this.keys;
    for (;;) {
      const token = randomUUID();
      if (await this.lock(id, token)) {
        let s: QueuedSubmission | undefined;
        try {
          s = await this.get(id);
        } finally {
          await this.unlock(id, token, true);
        }
        return s !== undefined;
      }
      if ((await this.scripts.mark([k.lock(id), k.again(id)], [])) === 1) {
        return (await this.redis.exists(k.state(id))) === 1;
      }
      // The holder let go in between: take the lock ourselves.
    }
  }

  async annotate(
    id: string,
    f: (s: QueuedSubmission) => QueuedSubmission | undefined,
  ): Promise<QueuedSubmission | undefined> {
    this.assertOpen();
    if (!SUBMISSION_ID_RE.test(id)) return undefined;
    const token = randomUUID();
    // A worker may hold the entry for one delivery: wait for it, at most twice its lock.
    const end = Date.now() + 2 * this.lockMs;
    while (!(await this.lock(id, token))) {
      if (Date.now() > end) {
        throw new NmtpError('NMTP_ERR_QUEUE_LOCK_LOST', `entry ${id} stayed locked`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    try {
      const s = await this.get(id);
      if (s === undefined) return undefined;
      const out = f(s);
      const next = out === undefined || out === s ? s : metaFrom(s, out);
      return next === s ? s : await this.commit(s, next, token);
    } catch (e) {
      if (e instanceof Gone) return undefined;
      throw e;
    } finally {
      await this.unlock(id, token);
    }
  }

  async delete(id: string): Promise<boolean> {
    this.assertOpen();
    if (!SUBMISSION_ID_RE.test(id)) return false;
    const s = await this.get(id);
    const k = this.keys;
    const n = await this.scripts.remove(
      [k.state(id), k.msg(id), k.ids, k.unobserved, k.again(id)],
      [id],
    );
    // Its waiting job goes too; any other (a spare, one running) finds no entry.
    const due = s === undefined ? undefined : nextDue(s);
    if (due !== undefined) await this.jobs.remove(jobIdFor(id, due)).catch(() => undefined);
    return n === 1;
  }

  async counts(): Promise<StateCounts> {
    const c: StateCounts = { pending: 0, deferred: 0, accepted: 0, rejected: 0, 'given-up': 0 };
    for (const s of await this.list()) for (const r of s.recipients) c[r.state]++;
    return c;
  }

  async ready(): Promise<boolean> {
    if (this.closing !== undefined || this.redis.status !== 'ready') return false;
    let t: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (t = setTimeout(() => resolve(false), 1000)));
    try {
      return await Promise.race([this.redis.ping().then((r) => r === 'PONG'), timeout]);
    } catch {
      return false;
    } finally {
      clearTimeout(t);
    }
  }

  /**
   * Stops taking jobs and waits for the work in progress: passes (they commit) and the
   * recovery, with their observers (what those add meanwhile is stored). Then disconnects.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
      await this.worker?.close();
      while (this.background !== undefined) await this.background;
      this.ended = true;
      await this.jobs.close();
      await this.redis.quit().catch(() => this.redis.disconnect());
    })();
    return this.closing;
  }

  /**
   * Stops as a killed process would (for crash tests): no more renewals, commits or jobs,
   * connections dropped at once; its locks expire and its jobs are recovered elsewhere.
   */
  async abandon(): Promise<void> {
    this.ended = true;
    this.closing ??= Promise.resolve();
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    for (const t of this.renewals) clearInterval(t);
    this.renewals.clear();
    this.redis.disconnect();
    await this.worker?.close(true).catch(() => undefined);
  }

  // --- scheduling -------------------------------------------------------------------------

  /**
   * Adds "look at <id> at <due>"; the same job already waiting or running is kept. With a
   * nonce, a job of its own (never taken for a running one).
   */
  private async schedule(id: string, due: number, nonce?: string, waits?: number): Promise<void> {
    await this.jobs.add(
      'entry',
      { id, due, ...(waits === undefined ? {} : { waits }) },
      {
        jobId: jobIdFor(id, due, nonce),
        delay: Math.max(0, due * 1000 - this.nowMs()),
        attempts: UNLIMITED,
        backoff: { type: 'custom' },
        // Removed when done, so that the same entry and second can be scheduled again.
        removeOnComplete: true,
        removeOnFail: true,
      },
    );
  }

  private startWorker(prefix: string, concurrency: number): void {
    const w = new Worker<JobData>(WORK_QUEUE, (job) => this.process(job), {
      connection: this.redis,
      prefix,
      concurrency,
      lockDuration: this.lockMs,
      stalledInterval: this.lockMs,
      maxStalledCount: UNLIMITED,
      settings: { backoffStrategy },
    });
    w.on('error', (e: unknown) => this.o.onError?.(e));
    w.on('failed', (_job, e: unknown) => this.o.onError?.(e));
    this.worker = w;
  }

  private startSweeps(): void {
    const every = this.o.sweepEvery ?? 600;
    if (every <= 0) return;
    this.sweepTimer = setInterval(() => {
      if (this.background !== undefined || this.closing !== undefined) return;
      this.background = this.recover(false)
        .catch((e: unknown) => this.o.onError?.(e))
        .finally(() => (this.background = undefined));
    }, every * 1000);
    this.sweepTimer.unref();
  }

  /**
   * Every entry once: schedules the unfinished ones, and at start-up (`observe`) shows each
   * to the observer. An entry locked by another process is skipped: the holder schedules
   * it, and observes it after its next commit (or its job is recovered, and finds the
   * entry in P:unobserved).
   */
  private async recover(observe: boolean): Promise<void> {
    const k = this.keys;
    for (const s of await this.list()) {
      if (this.closing !== undefined) return;
      if (!observe || this.o.observer === undefined) {
        const due = nextDue(s);
        if (due !== undefined) await this.schedule(s.id, due);
        continue;
      }
      const token = randomUUID();
      if (!(await this.lock(s.id, token))) continue;
      try {
        const cur = await this.get(s.id);
        if (cur === undefined) continue;
        const seen = await this.observeOnce(cur, token);
        const due = nextDue(seen);
        if (due !== undefined) await this.schedule(s.id, due);
      } catch (e) {
        if (!(e instanceof Gone)) throw e;
      } finally {
        await this.unlock(s.id, token);
      }
    }
    // Ids whose state expired or was deleted before an observer saw their last change.
    for (const id of await this.redis.smembers(k.unobserved)) {
      if ((await this.redis.exists(k.state(id))) === 0) await this.redis.srem(k.unobserved, id);
    }
  }

  // --- one job ----------------------------------------------------------------------------

  private async process(job: Job<JobData>): Promise<void> {
    const { id, due } = job.data;
    const token = randomUUID();
    if (!(await this.lock(id, token))) {
      // Another worker has it, or the recovery, a retry — or a process that died, whose
      // lock expires. Usually the holder schedules what is due next, but its job may be
      // this one (same id: BullMQ keeps one), so look again: after 1 s, 2 s … lockMs.
      const waits = (job.data.waits ?? 0) + 1;
      const delay = Math.min(2 ** (waits - 1), Math.max(1, Math.ceil(this.lockMs / 1000)));
      await this.schedule(id, Math.max(due, this.now()) + delay, undefined, waits);
      return;
    }
    let lost = false;
    const renew = setInterval(() => {
      this.scripts
        .renew([this.keys.lock(id)], [token, this.lockMs])
        .then((r) => (lost ||= r !== 1))
        .catch((e: unknown) => this.o.onError?.(e));
    }, this.lockMs / 3);
    renew.unref();
    this.renewals.add(renew);
    try {
      let s = await this.get(id);
      if (s === undefined) return;
      if (
        this.o.observer !== undefined &&
        (await this.redis.sismember(this.keys.unobserved, id)) === 1
      ) {
        s = await this.observeOnce(s, token);
      }
      const first = nextDue(s);
      if (first !== undefined && first <= this.now()) {
        const kind = s.kind;
        s = await workPass(s, {
          deliver: this.o.deliver,
          ...(this.o.smtpDeliver === undefined ? {} : { smtpDeliver: this.o.smtpDeliver }),
          retry: this.policy,
          limiter: this.limiter,
          ...(this.o.smtpRoute === undefined ? {} : { smtpRoute: this.o.smtpRoute }),
          now: () => this.now(),
          loadMessage: () => this.loadMessage(id, kind),
          commit: async (next) => (s = await this.commit(s!, next, token)),
        });
      }
      const next = nextDue(s);
      // Never this job's own id: BullMQ would take it for this job, and add nothing.
      if (next !== undefined) await this.schedule(id, Math.max(next, due + 1));
    } catch (e) {
      if (e instanceof Gone) return;
      throw e;
    } finally {
      clearInterval(renew);
      this.renewals.delete(renew);
      if (!lost) await this.unlock(id, token);
    }
  }

  private async loadMessage(id: string, kind: QueuedSubmission['kind']): Promise<MessageSource> {
    const b = await this.redis.getBuffer(this.keys.msg(id));
    if (b === null) {
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `queue entry ${id} has no message`);
    }
    return entryBytesSource(kind, new Uint8Array(b.buffer, b.byteOffset, b.length));
  }

  /**
   * Stores `next` (built on `before`) if this token still holds the lock, with any retries
   * that came meanwhile merged in, then shows it to the observer; returns what is current.
   */
  private async commit(
    before: QueuedSubmission,
    next: QueuedSubmission,
    token: string,
  ): Promise<QueuedSubmission> {
    if (next === before) return before;
    const k = this.keys;
    const id = next.id;
    let seen = '';
    let out = next;
    for (;;) {
      const keep = this.o.keepDone ?? DEFAULT_KEEP_DONE;
      const ttl = out.done === undefined ? '' : String(Math.max(1, out.done + keep - this.now()));
      const r = await this.scripts.commit(
        [k.state(id), k.lock(id), k.msg(id), k.unobserved, k.again(id)],
        [token, JSON.stringify(out), ttl, id, seen, this.o.observer === undefined ? '' : '1'],
      );
      if (r === 1) break;
      if (r === 0) throw new Gone(id);
      if (typeof r !== 'string') throw new NmtpError('NMTP_ERR_QUEUE_LOCK_LOST', `entry ${id}`);
      // Retries came: they apply to what was current before this commit; the recipients
      // this commit changes keep its result.
      seen = r;
      out = merge(dueNow(before, this.now()), before, next);
    }
    return this.observeOnce(out, token);
  }

  /**
   * Shows the stored `s` to the observer and stores what it changed (meta only), marking
   * the change observed: the observer sees what the queue did, not what it wrote itself.
   * An observer that fails is reported, and sees the entry again (next commit or start).
   */
  private async observeOnce(s: QueuedSubmission, token: string): Promise<QueuedSubmission> {
    const observer = this.o.observer;
    if (observer === undefined) return s;
    let next = s;
    try {
      const out = await observer(s);
      if (out !== undefined && out !== s) {
        if (out.id !== s.id) {
          throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'observer changed the id');
        }
        next = metaFrom(s, out);
      }
    } catch (e) {
      this.o.onError?.(e);
      return s;
    }
    const k = this.keys;
    const r = await this.scripts.observed(
      [k.state(s.id), k.lock(s.id), k.unobserved, k.msg(s.id)],
      [token, next === s ? '' : JSON.stringify(next), s.id, s.done === undefined ? '' : '1'],
    );
    if (r === 0) throw new Gone(s.id);
    if (r !== 1) throw new NmtpError('NMTP_ERR_QUEUE_LOCK_LOST', `entry ${s.id}`);
    return next;
  }

  // --- the entry lock -----------------------------------------------------------------------

  private async lock(id: string, token: string): Promise<boolean> {
    return (await this.redis.set(this.keys.lock(id), token, 'PX', this.lockMs, 'NX')) === 'OK';
  }

  /**
   * Lets go of the entry, after applying the retries that came since its last commit (and,
   * with `retry`, one more: retry() itself holding the lock).
   */
  private async unlock(id: string, token: string, retry = false): Promise<void> {
    const k = this.keys;
    let pending = retry;
    for (;;) {
      const r = pending ? '' : await this.scripts.unlock([k.lock(id), k.again(id)], [token]);
      if (typeof r !== 'string') return;
      pending = false;
      try {
        const s = await this.get(id);
        const next = s === undefined ? s : dueNow(s, this.now());
        if (s !== undefined && next !== undefined && next !== s) {
          await this.commit(s, next, token);
          // A job of its own: the entry's usual job may be the one running now.
          await this.schedule(id, this.now(), randomBytes(4).toString('hex'));
        } else if (r !== '') {
          await this.scripts.consume([k.lock(id), k.again(id)], [token, r]);
        }
      } catch (e) {
        if (!(e instanceof Gone)) {
          if (retry) throw e;
          this.o.onError?.(e);
          // Unlocked by its expiry; the retry stays counted for the next holder.
          return;
        }
        await this.scripts.consume([k.lock(id), k.again(id)], [token, r]).catch(() => undefined);
      }
    }
  }
}

/** Every waiting pending or deferred recipient due at `now`; `s` itself if none waits. */
function dueNow(s: QueuedSubmission, now: number): QueuedSubmission {
  const waiting = (r: QueuedRecipient): boolean =>
    (r.state === 'pending' || r.state === 'deferred') && r.nextAt > now;
  if (!s.recipients.some(waiting)) return s;
  return { ...s, recipients: s.recipients.map((r) => (waiting(r) ? { ...r, nextAt: now } : r)) };
}

/**
 * A commit's new state `next`, built on `prev`, onto `cur` (prev with retries applied):
 * the recipients the commit changed take its result, the others are as they are now.
 */
function merge(
  cur: QueuedSubmission,
  prev: QueuedSubmission,
  next: QueuedSubmission,
): QueuedSubmission {
  if (cur === prev) return next;
  return {
    ...next,
    recipients: next.recipients.map((r, i) =>
      r === prev.recipients[i] ? (cur.recipients[i] ?? r) : r,
    ),
  };
}

/** The settings without which an acknowledged write could be lost. */
const DURABLE: readonly (readonly [string, string])[] = [
  ['appendonly', 'yes'],
  ['appendfsync', 'always'],
  ['maxmemory-policy', 'noeviction'],
];

async function checkDurable(redis: Redis): Promise<void> {
  for (const [name, want] of DURABLE) {
    let got: string | undefined;
    try {
      const r = (await redis.config('GET', name)) as string[];
      got = r[1];
    } catch (e) {
      throw new NmtpError(
        'NMTP_ERR_QUEUE_NOT_DURABLE',
        `cannot read the Redis setting ${name} (${String(e)}); the queue needs ${name} ${want}`,
        { setting: name, want },
      );
    }
    if (got !== want) {
      throw new NmtpError(
        'NMTP_ERR_QUEUE_NOT_DURABLE',
        `the Redis setting ${name} is ${got ?? 'unset'}; the queue needs ${name} ${want}`,
        { setting: name, want, got },
      );
    }
  }
}
