/**
 * What both client hosts (the transfer session, src/client/session.ts, and the submission
 * client, src/client/submission.ts) do the same way around their reducer: the wire reader,
 * the one session timer, the backpressured write, keeping the process alive or not, and
 * the three actions every client reducer asks for (send a command, set the timer, close).
 */
import type { Duplex } from 'node:stream';
import type { BaseAction, BaseEvent } from '../core/session/index.ts';
import { encodeCommand, WireDecoder } from '../core/wire/index.ts';
import { SessionTimer } from '../net/timer.ts';
import { writeOrWait, writeSocket } from '../net/write.ts';

const DONE: Promise<void> = Promise.resolve();

/** The actions `performBase` takes care of. */
export type CommonClientAction = Extract<BaseAction, { type: 'command' | 'set-timer' | 'close' }>;

export abstract class ClientHost<E extends { readonly type: string }> {
  protected readonly decoder = new WireDecoder('client');
  protected readonly timer: SessionTimer;
  /** Our side is closing (or closed): nothing more is written. */
  protected closing = false;
  /** Events are handled one after another, each with all its actions. */
  protected chain: Promise<void> = Promise.resolve();

  protected constructor(
    protected readonly socket: Duplex,
    timeoutScale: number,
  ) {
    this.timer = new SessionTimer(() => this.expired(), timeoutScale);
  }

  protected abstract dispatch(event: E | BaseEvent): void | Promise<void>;

  /** The session timer fired. */
  protected expired(): void {
    void this.dispatch({ type: 'timeout' });
  }

  /** An idle session does not keep the process alive (a pool may hold it). */
  protected ref(on: boolean): void {
    const s = this.socket as Duplex & { ref?: () => void; unref?: () => void };
    if (on) s.ref?.();
    else s.unref?.();
  }

  /** seconds 0: no timer (the idle and sending states have none of their own). */
  protected setTimer(seconds: number): void {
    this.timer.set(seconds);
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

  /** Not async: the write's own promise (already settled when the buffer had room). */
  protected performBase(a: CommonClientAction): Promise<void> {
    return this.performNow(a) ?? DONE;
  }

  /** `performBase` without a promise when there is nothing to wait for (see `writeNow`). */
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
