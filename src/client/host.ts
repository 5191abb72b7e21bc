/**
 * What both client hosts (the transfer session, src/client/session.ts, and the submission
 * client, src/client/submission.ts) do the same way around their reducer: the loop that
 * feeds it events and performs its actions, the wire reader, the one session timer, the
 * backpressured write, keeping the process alive or not, and the three actions every
 * client reducer asks for (send a command, set the timer, close).
 *
 * The loop (`dispatch`) handles one event after another, each with all its actions in
 * order and then the events those produced, as src/server/session-loop.ts does: an action
 * done at once (a write the socket buffer took, a timer, a signature) lets it go on at once;
 * it waits, and pays for a promise, only for an action that returns one.
 */
import type { Duplex } from 'node:stream';
import type { BaseAction, BaseEvent } from '../core/session/index.ts';
import { encodeCommand, WireDecoder } from '../core/wire/index.ts';
import { SessionTimer } from '../net/timer.ts';
import { writeOrWait, writeSocket } from '../net/write.ts';

const DONE: Promise<void> = Promise.resolve();

/** The actions `performNow` takes care of. */
export type CommonClientAction = Extract<BaseAction, { type: 'command' | 'set-timer' | 'close' }>;

/**
 * What performing an action comes to: the event it produces (or nothing), at once, or a
 * promise of it when the loop must wait (a full socket buffer, a file read).
 */
export type Outcome<E> = E | undefined | Promise<unknown>;

interface Queued<E> {
  readonly event: E;
  /** Called once the event, and every event its actions led to, is handled. */
  readonly done?: () => void;
}

export abstract class ClientHost<E extends { readonly type: string }, A> {
  protected readonly decoder = new WireDecoder('client');
  protected readonly timer: SessionTimer;
  /** Our side is closing (or closed): nothing more is written. */
  protected closing = false;
  /** The step being performed: its actions from `at` on are still to do. */
  protected actions: readonly A[] = [];
  protected at = 0;
  /** Events not handled yet, in the order they came. */
  private readonly queue: Queued<E>[] = [];
  /** Events the actions of the event being handled produced: handled next, in order. */
  private readonly produced: E[] = [];
  /** What to call when the queued event being handled is done with. */
  private handled: (() => void) | undefined;
  /** The loop is handling events, or waiting for an action. */
  private running = false;
  /** The timer the last step of the loop's run asked for, set when the run stops. */
  private timerWanted: number | undefined;
  /** The state has a timer: a Timeout left behind by a state without one is ignored. */
  private timerOn = false;

  protected constructor(
    protected readonly socket: Duplex,
    timeoutScale: number,
  ) {
    this.timer = new SessionTimer(() => this.expired(), timeoutScale);
  }

  /** Feeds `event` to the reducer, keeps the new state and returns its actions. */
  protected abstract reduce(event: E): readonly A[];
  /** Performs the action at `at` (and may take the ones right behind it); see `Outcome`. */
  protected abstract act(): Outcome<E>;
  /**
   * A local failure while performing an action (the message file, a bug): the host fails
   * what it was doing and drops the session; the loop drops the rest of the event.
   */
  protected abstract fail(e: unknown): void;
  /** A step's actions are all done (the transfer session reports a job's result here). */
  protected stepDone(): void {}

  /** Handles `event` after those before it; `done` once it and what it led to are. */
  protected dispatch(event: E, done?: () => void): void {
    this.queue.push(done === undefined ? { event } : { event, done });
    if (this.running) return;
    this.running = true;
    this.go();
  }

  /** The session timer fired. */
  protected expired(): void {
    // Every client reducer takes the base events (BaseEvent) among its own.
    if (this.timerOn) this.dispatch({ type: 'timeout' } as BaseEvent as E);
  }

  /**
   * Handles events until there is nothing left to do (undefined) or an action must be
   * waited for (its promise; `go` again once it settled).
   */
  private loop(): Promise<unknown> | undefined {
    for (;;) {
      while (this.at < this.actions.length) {
        let r: Outcome<E>;
        try {
          r = this.act();
        } catch (e) {
          this.failed(e);
          continue;
        }
        if (r instanceof Promise) return r;
        if (r !== undefined) this.produced.push(r);
      }
      this.stepDone();
      const next = this.produced.shift();
      if (next !== undefined) {
        this.begin(next);
        continue;
      }
      const handled = this.handled;
      this.handled = undefined;
      handled?.();
      const q = this.queue.shift();
      if (q === undefined) return undefined;
      this.handled = q.done;
      this.begin(q.event);
    }
  }

  private begin(event: E): void {
    this.actions = this.reduce(event);
    this.at = 0;
  }

  private go(): void {
    const wait = this.loop();
    this.running = false;
    if (this.timerWanted !== undefined) {
      const t = this.timerWanted;
      this.timerWanted = undefined;
      this.setTimer(t);
    }
    if (wait === undefined) return;
    this.running = true;
    wait.then(this.resumed, this.rejected);
  }

  private readonly resumed = (next: unknown): void => {
    // A write's promise settles with undefined: nothing to handle.
    if (next !== undefined) this.produced.push(next as E);
    this.go();
  };

  private readonly rejected = (e: unknown): void => {
    this.failed(e);
    this.go();
  };

  private failed(e: unknown): void {
    this.fail(e);
    // Nothing more of this event: the rest of its step, and the events it led to.
    this.actions = [];
    this.at = 0;
    this.produced.length = 0;
  }

  /** An idle session does not keep the process alive (a pool may hold it). */
  protected ref(on: boolean): void {
    const s = this.socket as Duplex & { ref?: () => void; unref?: () => void };
    if (on) s.ref?.();
    else s.unref?.();
  }

  /**
   * Per-state timers (§60.10.7, §60.11.1), set when the loop stops (done, or waiting): no
   * timer can fire while it runs, so only the last state's counts, and a run that goes
   * through several states sets the timer once. seconds 0 (the idle and sending states
   * have no timer of their own) leaves the Timeout behind, ignored (`expired`): the next
   * state's timer of the same length is then that Timeout restarted, not a new one.
   */
  protected setTimer(seconds: number): void {
    if (this.running) {
      this.timerWanted = seconds;
      return;
    }
    this.timerOn = seconds > 0;
    if (this.timerOn) this.timer.set(seconds);
  }

  /** No timer any more, for good (the socket closed). */
  protected stopTimer(): void {
    this.timerWanted = undefined;
    this.timerOn = false;
    this.timer.clear();
  }

  /** Writes `bytes` with backpressure (src/net/write.ts); nothing once closing. */
  protected write(bytes: Uint8Array, flushed = false): Promise<void> {
    return this.closing ? DONE : writeSocket(this.socket, bytes, flushed);
  }

  /**
   * `write` for a caller that goes on at once when it can: undefined when the socket buffer
   * had room (or once closing), else a promise settled on 'drain' or 'close'.
   */
  protected writeNow(bytes: Uint8Array): Promise<void> | undefined {
    return this.closing ? undefined : writeOrWait(this.socket, bytes);
  }

  /** The common actions; a promise only when there is something to wait for (`writeNow`). */
  protected performNow(a: CommonClientAction): Promise<void> | undefined {
    switch (a.type) {
      case 'command':
        return this.writeNow(encodeCommand(a.command));
      case 'set-timer':
        this.setTimer(a.seconds);
        return undefined;
      case 'close':
        if (!this.closing) {
          this.closing = true;
          this.setTimer(0);
          this.socket.end();
        }
        return undefined;
    }
  }
}
