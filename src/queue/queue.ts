/**
 * The outgoing queue and its delivery manager ("qmgr" in Postfix's split), the embedded
 * backend of the queue port (src/queue/port.ts, `backend = 'embedded'`): entries are added
 * durably (the submission backend's SEND, the gateway's smtp-in), and the manager delivers
 * what is due through the pass every backend shares (src/queue/work.ts) — due pending
 * recipients grouped by destination domain, one transfer job per domain; STATUS polls of
 * deferred recipients inside the receiver's window; a bigger view when STATUS asks for one
 * (352, §60.10.6); GIVEUP at the deadline — and records every result durably before it
 * becomes visible to STATUS. docs/protocol.md §60.16.
 *
 * Delivery goes through injected functions (`deliver`: src/queue/deliver.ts wires the
 * transfer client; `smtpDeliver` for entries of kind 'smtp'); time and timers are injected
 * too, so tests drive the queue with a manual clock and `tick()`.
 *
 * Changes to one entry are serialised by a per-entry lock held only around file writes,
 * never around a deliverer or the observer: a pass commits between its jobs, while
 * `retry`, `delete` and the observer's meta may change the same entry meanwhile (a pass's
 * commit merges them in, see `merge`). The observer is awaited by the pass that committed,
 * one observation per entry at a time, so it may call `add`, `get`, `retry` and even
 * `delete` on this queue without deadlock (not `close`, which waits for it).
 *
 * Memory: one state object per entry kept (small JSON: O(recipients), with the user's
 * meta), for as long as the entry is on disk — until `keepDone` after its last recipient is
 * final, or `delete`. Message bodies are never held: every job streams the message from its
 * file (one read buffer per job). So memory is bounded by what the queue directory holds,
 * plus `concurrency` passes in flight. What is due is found through an index (two min-heaps:
 * next due moment, purge time), so a wake-up costs O(log n), not a walk over every entry.
 */
import { NmtpError } from '../core/errors/index.ts';
import type { ClientJob, RecipientStatus } from '../core/session/index.ts';
import type { Reply } from '../core/wire/index.ts';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { claimDirectory } from '../store/claim.ts';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Endpoint, MessageSource, SessionFailure } from '../client/transfer.ts';
import { compact, WakeHeap, type Wake } from './heap.ts';
import { DestinationLimiter } from './limit.ts';
import type {
  NewEntry,
  QueueBackend,
  QueueBackendOptions,
  QueueObserver,
  StateCounts,
} from './port.ts';
import { DEFAULT_RETRY, nextDue, type RetryPolicy } from './schedule.ts';
import { workPass } from './work.ts';
import { freshEntry, metaFrom, withMeta } from './meta.ts';
import { QueueStore, SUBMISSION_ID_RE } from './store.ts';
import type { CookieEndpoint, LastResult, QueuedRecipient, QueuedSubmission } from './types.ts';

/** Where an entry not in a pass is indexed: when it is due, or when its state is purged. */
interface Indexed {
  readonly at: number;
  readonly heap: 'due' | 'purge';
}

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
    /**
     * An SMTP answer (src/queue/work.ts smtpAsDeliver): whether the server offered DSN, and
     * which server it was; stored with the recipient's last answer.
     */
    readonly smtp?: Pick<LastResult, 'dsn' | 'relay'>;
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

export interface QueueOptions extends QueueBackendOptions {
  readonly dir: string;
  /** How to wake up when something is due; `false`: never by itself (tests call tick()). */
  readonly timers?: Timers | false;
  /** How long a file's new content may wait in memory (src/queue/store.ts; default 500 ms). */
  readonly writeBehindMs?: number;
}

/** What `add` takes (the port's new entry with its message). */
export type NewSubmission = NewEntry & { readonly message: Uint8Array };

/** A wake-up is never further away than this, so a changed clock is noticed. */
const MAX_SLEEP_MS = 3_600_000;
const DEFAULT_CONCURRENCY = 8;
const DEFAULT_KEEP_DONE = 7 * 86400;

/** Ends a pass whose entry was deleted meanwhile: nothing more is done or stored for it. */
class EntryGone extends Error {}

export class Queue implements QueueBackend {
  readonly backend = 'embedded';
  readonly policy: RetryPolicy;
  private readonly subs = new Map<string, QueuedSubmission>();
  /**
   * The wake-up index, so that neither schedule() nor tick() walks every entry kept (at
   * 100 msg/s and `keepDone` a day, millions of finished ones): unfinished entries by when
   * they are next due, finished ones by when their state is purged, each entry not in a
   * pass in one of them at the moment `indexed` names (other pairs are stale, skipped).
   */
  private readonly heaps = { due: new WakeHeap(), purge: new WakeHeap() };
  private readonly indexed = new Map<string, Indexed>();
  /** Per entry, its place in `subs` order (oldest first): tick() starts due entries in it. */
  private readonly seq = new Map<string, number>();
  private nextSeq = 0;
  /** Recipients by state over `subs`, kept as entries change (counts()). */
  private readonly tally: StateCounts = {
    pending: 0,
    deferred: 0,
    accepted: 0,
    rejected: 0,
    'given-up': 0,
  };
  /** Index pairs looked at by schedule() and tick(): tests show no scan of every entry. */
  readonly visited = { count: 0 };
  /** Ids no visible entry has but which are taken: being added, or deleted mid-pass. */
  private readonly reserved = new Set<string>();
  /** Entries in a pass. */
  private readonly busy = new Set<string>();
  /** Per busy entry, the state its pass last got from us: what its next commit builds on. */
  private readonly given = new Map<string, QueuedSubmission>();
  /** Deleted while busy: the message file goes when the pass ends. */
  private readonly removeAfterPass = new Set<string>();
  /** Passes and background observations: what close() waits for. */
  private readonly running = new Set<Promise<void>>();
  private readonly locks = new Map<string, Promise<void>>();
  private readonly observing = new Map<string, Promise<void>>();
  /** States already shown to the observer (or written by it): not shown again. */
  private readonly observed = new WeakSet<QueuedSubmission>();
  private readonly limiter: DestinationLimiter;
  private readonly concurrency: number;
  private timer: unknown;
  /** close() was called: no new passes. */
  private closed = false;
  /** close() finished: nothing is stored any more. */
  private ended = false;
  /** Gives up the claim on the directory (at close). */
  private release: () => void = () => undefined;

  private constructor(
    readonly store: QueueStore,
    private readonly o: QueueOptions,
  ) {
    this.policy = { ...DEFAULT_RETRY, ...o.retry };
    this.concurrency = o.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new NmtpError('NMTP_ERR_CONFIG', 'concurrency must be a positive integer');
    }
    this.limiter = new DestinationLimiter(o.perDestination);
  }

  /**
   * Opens the queue directory and reloads every entry in it (restart). Each entry is shown
   * to the observer once, after open() has returned (recovery: a change whose observation
   * a crash interrupted is observed again).
   */
  static async open(o: QueueOptions): Promise<Queue> {
    const store = await QueueStore.open(o.dir, o.writeBehindMs);
    // One process per queue directory: load() removes what it takes for crash leftovers.
    const release = await claimDirectory(o.dir, {
      owner: join(o.dir, 'owner'),
      lockName: 'nmtp-queue',
      code: 'NMTP_ERR_QUEUE_IN_USE',
      what: 'used',
    });
    try {
      // Before anything is read: the files at their last committed content.
      await store.recover(o.onError);
    } catch (e) {
      release();
      throw e;
    }
    const q = new Queue(store, o);
    q.release = release;
    // Oldest first; entries of the same second keep their file-name order.
    const loaded = (await store.load(o.onError)).sort((a, b) => a.created - b.created);
    for (const s of loaded) {
      // A crash between a finished entry's final state and its message's removal left the
      // message: without an observer nothing reads it again (with one, the recovery
      // observation below removes it once the end has been seen).
      if (s.done !== undefined && o.observer === undefined) await store.removeMessage(s.id);
    }
    for (const s of loaded) q.put(s);
    for (const s of loaded) q.observeLater(s.id, true);
    q.schedule();
    return q;
  }

  async annotate(
    id: string,
    f: (s: QueuedSubmission) => QueuedSubmission | undefined,
  ): Promise<QueuedSubmission | undefined> {
    this.assertOpen();
    const s = await this.change(id, (cur) => {
      const out = f(cur);
      return out === undefined || out === cur ? cur : metaFrom(cur, out);
    });
    if (s !== undefined) this.observeLater(id);
    return s;
  }

  /** Unix seconds. */
  now(): number {
    return Math.floor((this.o.now ?? Date.now)() / 1000);
  }

  get spoolDir(): string {
    return this.store.spoolDir;
  }

  /**
   * Stores an entry durably — message and state, one journal change (src/queue/store.ts) —
   * and only then makes it visible and due: when this resolves, the entry survives a crash
   * ("accepted means stored").
   */
  async add(n: NewSubmission): Promise<QueuedSubmission> {
    const s = this.fresh(n, n.message.length);
    this.reserve(n.id);
    try {
      return await this.record(s, () => this.store.writeNew(s, n.message));
    } finally {
      this.reserved.delete(n.id);
    }
  }

  /**
   * As add(), for a message already written to a file (the submission backend's sealed
   * spool in `spoolDir`): on the queue's file system the file is fsync'd and renamed into
   * the queue — no copy, nothing held in memory; elsewhere it is copied. Then the state is
   * written. The caller's file is gone afterwards.
   */
  async addFile(n: NewEntry & { readonly file: string }): Promise<QueuedSubmission> {
    this.reserve(n.id);
    try {
      const s = this.fresh(n, (await stat(n.file)).size);
      await this.store.adoptMessage(n.id, n.file);
      return await this.record(s, () => this.store.writeFirstState(s));
    } finally {
      this.reserved.delete(n.id);
    }
  }

  private reserve(id: string): void {
    this.assertOpen();
    if (!SUBMISSION_ID_RE.test(id)) {
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'malformed queue entry id');
    }
    if (this.subs.has(id) || this.reserved.has(id)) {
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'duplicate id');
    }
    this.reserved.add(id);
  }

  private fresh(n: NewEntry, size: number): QueuedSubmission {
    return freshEntry(n, size, this.now(), this.policy.maxAge);
  }

  /** The state after the message: then visible (STATUS), due (the manager) and observed. */
  private async record(
    s: QueuedSubmission,
    write: () => Promise<void> = () => this.store.writeState(s),
  ): Promise<QueuedSubmission> {
    try {
      await write();
    } catch (e) {
      // No state, no id: the message is an orphan now rather than at the next start.
      await this.store.removeMessage(s.id).catch(() => undefined);
      throw e;
    }
    this.put(s);
    this.schedule();
    this.observeLater(s.id);
    return s;
  }

  async get(id: string): Promise<QueuedSubmission | undefined> {
    return this.subs.get(id);
  }

  /** Every entry kept, oldest first. */
  async list(): Promise<QueuedSubmission[]> {
    return [...this.subs.values()].sort((a, b) => a.created - b.created);
  }

  /** The entry's message as its kind reads it (src/queue/source.ts); undefined when gone. */
  async message(id: string): Promise<MessageSource | undefined> {
    const s = this.subs.get(id);
    // A finished entry's message is kept until the observer has seen the end (then removed).
    if (s === undefined) return undefined;
    try {
      return await this.store.messageSource(id, s.kind);
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** Per-recipient state for `user`; undefined for an unknown id or another user's. */
  status(id: string, user: string): RecipientStatus[] | undefined {
    const s = this.subs.get(id);
    if (s === undefined || s.user !== user) return undefined;
    return s.recipients.map((r) =>
      r.state === 'deferred' && r.cookie !== undefined
        ? {
            rcpt: r.rcpt,
            state: r.state,
            cookie: r.cookie,
            next: r.nextAt,
            ...(r.cookieExpires === undefined ? {} : { expires: r.cookieExpires }),
          }
        : { rcpt: r.rcpt, state: r.state },
    );
  }

  async counts(): Promise<StateCounts> {
    return { ...this.tally };
  }

  async ready(): Promise<boolean> {
    return !this.closed && (await this.store.writable());
  }

  /**
   * Makes every pending or deferred recipient due now (postqueue -i): written, then
   * scheduled. An entry in a pass keeps the result of the job in progress for its
   * recipients, the others become due (the pass's commit merges this in).
   */
  async retry(id: string): Promise<boolean> {
    this.assertOpen();
    const now = this.now();
    const waiting = (r: QueuedRecipient): boolean =>
      (r.state === 'pending' || r.state === 'deferred') && r.nextAt > now;
    const s = await this.change(id, (cur) =>
      cur.recipients.some(waiting)
        ? {
            ...cur,
            recipients: cur.recipients.map((r) => (waiting(r) ? { ...r, nextAt: now } : r)),
          }
        : cur,
    );
    if (s === undefined) return false;
    this.observeLater(id);
    this.schedule();
    return true;
  }

  /**
   * Removes the entry (postsuper -d): its state file, then its message (a message without
   * a state is an orphan, removed at the next start, should a crash come between). An
   * entry in a pass is deleted at once for everyone (get, list, STATUS, the next start),
   * but its message file stays until the pass ends, so the job in progress is never cut
   * off half-way; the pass commits nothing more.
   */
  async delete(id: string): Promise<boolean> {
    this.assertOpen();
    return this.remove(id, () => true);
  }

  private async remove(id: string, when: (s: QueuedSubmission) => boolean): Promise<boolean> {
    let removeNow = false;
    const removed = await this.locked(id, async () => {
      const s = this.subs.get(id);
      if (s === undefined || !when(s)) return false;
      await this.store.removeState(id);
      this.drop(id);
      if (this.busy.has(id)) {
        // The id stays taken until the message file is gone.
        this.reserved.add(id);
        this.removeAfterPass.add(id);
      } else {
        removeNow = true;
      }
      return true;
    });
    if (removeNow) {
      // The entry is gone already (its state was); a message left by an error here is an
      // orphan, removed at the next start.
      await this.store.removeMessage(id).catch((e: unknown) => this.o.onError?.(e));
    }
    return removed;
  }

  /** Works on everything due now; resolves when that work (and its records) is done. */
  async tick(): Promise<void> {
    if (this.closed) return;
    const now = this.now();
    const started: Promise<void>[] = [];
    // Due entries start oldest first, as far as the active window allows; the others stay
    // indexed for the wake-up after the next pass ends.
    const due = this.takeDue('due', now).sort(
      (a, b) => (this.seq.get(a) ?? 0) - (this.seq.get(b) ?? 0),
    );
    for (const id of due) {
      if (this.busy.size >= this.concurrency) this.index(id);
      else started.push(this.startPass(id));
    }
    const expired = this.takeDue('purge', now);
    try {
      for (const id of expired) {
        await this.remove(id, (s) => s.done !== undefined && !this.busy.has(id));
      }
    } finally {
      // Those still kept (a pass holds one, an error stopped the loop): indexed again.
      for (const id of expired) this.index(id);
    }
    await Promise.all(started);
  }

  /**
   * Stops taking new work and waits for work in progress: passes, and what they set off
   * (observations, entries the observer added meanwhile, which are stored and left for
   * the next start). Then nothing more is stored.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined && this.o.timers !== false)
      (this.o.timers ?? realTimers).clear(this.timer);
    this.timer = undefined;
    while (this.running.size > 0) await Promise.all([...this.running]);
    if (!this.ended) {
      this.ended = true;
      try {
        await this.store.close();
      } finally {
        this.release();
      }
    }
  }

  /**
   * Drops everything as a killed process would (tests of crash recovery): no timer, no
   * claim; work in flight is left to itself and stores nothing more.
   */
  abandon(): void {
    this.closed = true;
    if (this.timer !== undefined && this.o.timers !== false)
      (this.o.timers ?? realTimers).clear(this.timer);
    this.timer = undefined;
    if (!this.ended) {
      this.store.abandon();
      this.release();
    }
    this.ended = true;
  }

  private assertOpen(): void {
    if (this.ended) throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'the queue is closed');
  }

  /** Sets the one wake-up timer for the earliest due moment. */
  private schedule(): void {
    const timers = this.o.timers ?? realTimers;
    // At the concurrency limit, the next finishing job calls this again.
    if (timers === false || this.closed || this.busy.size >= this.concurrency) return;
    const due = this.top('due')?.at;
    const purge = this.top('purge')?.at;
    const at = due === undefined ? purge : purge === undefined ? due : Math.min(due, purge);
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

  /** Makes `s` the entry's current state: in `subs`, the tally and the wake-up index. */
  private put(s: QueuedSubmission): void {
    const old = this.subs.get(s.id);
    if (old !== undefined) for (const r of old.recipients) this.tally[r.state]--;
    for (const r of s.recipients) this.tally[r.state]++;
    if (!this.seq.has(s.id)) this.seq.set(s.id, this.nextSeq++);
    this.subs.set(s.id, s);
    this.index(s.id);
  }

  private drop(id: string): void {
    const old = this.subs.get(id);
    if (old === undefined) return;
    for (const r of old.recipients) this.tally[r.state]--;
    this.subs.delete(id);
    this.seq.delete(id);
    this.indexed.delete(id);
  }

  /**
   * Indexes the entry at its next moment: due (unfinished) or purged (finished). Not while
   * a pass holds it (the pass's end indexes it), nor when gone.
   */
  private index(id: string): void {
    const s = this.subs.get(id);
    const at =
      s === undefined || this.busy.has(id)
        ? undefined
        : s.done === undefined
          ? nextDue(s)
          : s.done + (this.o.keepDone ?? DEFAULT_KEEP_DONE);
    if (s === undefined || at === undefined) {
      this.indexed.delete(id);
      return;
    }
    const heap = s.done === undefined ? 'due' : 'purge';
    const cur = this.indexed.get(id);
    if (cur !== undefined && cur.at === at && cur.heap === heap) return;
    this.indexed.set(id, { at, heap });
    this.heaps[heap].push({ at, id });
    // Stale pairs go when they reach the top; those that do not for long are dropped here.
    if (this.heaps.due.size + this.heaps.purge.size > 2 * this.indexed.size + 1024) {
      for (const k of ['due', 'purge'] as const) {
        this.heaps[k] = compact(this.heaps[k], (w) => this.current(k, w));
      }
    }
  }

  private current(heap: 'due' | 'purge', w: Wake): boolean {
    const cur = this.indexed.get(w.id);
    return cur !== undefined && cur.heap === heap && cur.at === w.at;
  }

  /** The heap's earliest current pair, stale ones dropped on the way. */
  private top(heap: 'due' | 'purge'): Wake | undefined {
    const h = this.heaps[heap];
    for (let w = h.peek(); w !== undefined; w = h.peek()) {
      this.visited.count++;
      if (this.current(heap, w)) return w;
      h.pop();
    }
    return undefined;
  }

  /** Takes every entry of `heap` due at `now` out of the index. */
  private takeDue(heap: 'due' | 'purge', now: number): string[] {
    const out: string[] = [];
    for (let w = this.top(heap); w !== undefined && w.at <= now; w = this.top(heap)) {
      this.heaps[heap].pop();
      this.indexed.delete(w.id);
      out.push(w.id);
    }
    return out;
  }

  /** Runs `f` after every earlier change of entry `id` (file writes only: never a callback). */
  private async locked<T>(id: string, f: () => Promise<T>): Promise<T> {
    const before = this.locks.get(id) ?? Promise.resolve();
    const run = before.then(f);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(id, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }

  /**
   * Records a new state of a visible entry: on disk first, then in memory (what STATUS
   * reads). Undefined when the entry is gone. When every recipient has become final, the
   * message is no longer needed; the state is kept.
   */
  private async change(
    id: string,
    f: (cur: QueuedSubmission) => QueuedSubmission,
  ): Promise<QueuedSubmission | undefined> {
    return this.locked(id, async () => {
      const cur = this.subs.get(id);
      // Abandoned (a crash, in tests): nothing more is stored.
      if (cur === undefined || this.ended) return undefined;
      const next = f(cur);
      if (next === cur) return cur;
      await this.store.writeState(next);
      this.put(next);
      // With an observer, the message stays until it has seen the final state (a DSN may
      // return the original, RET=FULL): observeNow removes it then.
      if (next.done !== undefined && cur.done === undefined && this.o.observer === undefined) {
        await this.store.removeMessage(id).catch((e: unknown) => this.o.onError?.(e));
      }
      return next;
    });
  }

  private startPass(id: string): Promise<void> {
    this.busy.add(id);
    this.indexed.delete(id);
    const p = this.work(id)
      .catch((e: unknown) => this.o.onError?.(e))
      .finally(() => {
        this.running.delete(p);
        this.schedule();
      });
    this.running.add(p);
    return p;
  }

  /** One pass over one entry (src/queue/work.ts). */
  private async work(id: string): Promise<void> {
    const start = this.subs.get(id)!;
    this.given.set(id, start);
    try {
      await workPass(start, {
        deliver: this.o.deliver,
        ...(this.o.smtpDeliver === undefined ? {} : { smtpDeliver: this.o.smtpDeliver }),
        retry: this.policy,
        limiter: this.limiter,
        ...(this.o.smtpRoute === undefined ? {} : { smtpRoute: this.o.smtpRoute }),
        now: () => this.now(),
        loadMessage: () => this.store.messageSource(id, start.kind),
        commit: (s) => this.commitPass(id, s),
      });
    } catch (e) {
      if (!(e instanceof EntryGone)) throw e;
    } finally {
      this.given.delete(id);
      await this.locked(id, async () => {
        this.busy.delete(id);
        this.index(id);
        if (this.removeAfterPass.delete(id)) {
          try {
            await this.store.removeMessage(id);
          } finally {
            this.reserved.delete(id);
          }
        }
      });
    }
  }

  /**
   * A pass's commit: its new state merged with what changed meanwhile, written, observed
   * (awaited: the pass goes on from what the observer stored), and returned as current.
   */
  private async commitPass(id: string, next: QueuedSubmission): Promise<QueuedSubmission> {
    const prev = this.given.get(id)!;
    if (next === prev) return next;
    const s = await this.change(id, (cur) => merge(cur, prev, next));
    if (s === undefined) throw new EntryGone();
    this.given.set(id, s);
    await this.observe(id);
    const cur = this.subs.get(id);
    if (cur === undefined) throw new EntryGone();
    this.given.set(id, cur);
    return cur;
  }

  /** Observes in the background (after add, retry, open); close() waits for it. */
  private observeLater(id: string, nextTurnFirst = false): void {
    if (this.o.observer === undefined) return;
    const p = this.observe(id, nextTurnFirst)
      .catch((e: unknown) => this.o.onError?.(e))
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }

  /** Shows the entry's current state to the observer, after any observation of it in progress. */
  private observe(id: string, nextTurnFirst = false): Promise<void> {
    const f = this.o.observer;
    if (f === undefined) return Promise.resolve();
    const before = this.observing.get(id) ?? Promise.resolve();
    const run = before.then(async () => {
      // At open, after the caller has its queue (an observer may use it).
      if (nextTurnFirst) await nextTurn();
      await this.observeNow(id, f);
    });
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.observing.set(id, tail);
    void tail.then(() => {
      if (this.observing.get(id) === tail) this.observing.delete(id);
    });
    return run;
  }

  /**
   * Its errors go to onError and stop nothing. What it returns is taken for its meta only
   * (the entry's and each recipient's), stored, and not observed again: the observer sees
   * what the queue did, not what it wrote itself.
   */
  private async observeNow(id: string, f: QueueObserver): Promise<void> {
    const cur = this.subs.get(id);
    if (cur === undefined || this.observed.has(cur)) return;
    this.observed.add(cur);
    try {
      const out = await f(cur);
      if (out !== undefined && out !== cur) {
        if (out.id !== id) {
          throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'observer changed the id');
        }
        // Member by member against what it saw: an annotate() meanwhile is kept.
        const s = await this.change(id, (c) => metaFrom(c, out, cur));
        if (s !== undefined) this.observed.add(s);
      }
      // The observer has seen the final state: the message is no longer needed. (If it
      // failed, the message stays, and the observation at the next open tries again.)
      if (cur.done !== undefined && !this.ended) await this.store.removeMessage(id);
    } catch (e) {
      this.o.onError?.(e);
    }
  }
}

/**
 * A pass's new state `next`, built on `prev`, onto the current `cur`: the recipients the
 * pass changed take its result, the others stay as they are now (a retry made them due);
 * meta is always the current one (a pass never changes it; the observer may have).
 */
function merge(
  cur: QueuedSubmission,
  prev: QueuedSubmission,
  next: QueuedSubmission,
): QueuedSubmission {
  if (cur === prev) return next;
  const recipients = next.recipients.map((r, i) => {
    const c = cur.recipients[i];
    if (c === undefined) return r;
    return withMeta(r === prev.recipients[i] ? c : r, c.meta);
  });
  return withMeta({ ...next, recipients }, cur.meta);
}
