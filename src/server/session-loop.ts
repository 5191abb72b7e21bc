/**
 * The host loop every server session runs (docs/protocol.md, src/core/session
 * common.ts): decode wire items, feed each as an event, perform the reducer's actions in
 * order, feed each result back as an event before anything read later. The loop owns the
 * socket, the one session timer, and the writes; what a specific machine asks for beyond
 * that (DNS, keys, the decider, storage) is `perform`'s.
 *
 * Backpressure: no more is read until the items of one read are handled — chunk data is
 * stored before more is read (the socket is paused while the loop waits for an action) —
 * and a write that fills the socket buffer waits for 'drain'. Memory per session is one
 * read buffer plus one line (the decoder's limit), whatever the message size.
 *
 * Most actions are done at once (a reply or a chunk only joins the output batch, a timer
 * is set): the loop waits, and pays for a promise, only when an action returns one.
 *
 * Closing is a lingering close: the server ends its side, then reads and discards whatever
 * the peer still sends (a paused socket would never see the peer's end, and a peer stuck
 * writing into it would never finish) until the peer closes or the linger time is up.
 */
import type { Duplex } from 'node:stream';
import { SessionTimer } from '../net/timer.ts';
import { writeOrWait } from '../net/write.ts';
import type { BaseAction, BaseEvent, Step } from '../core/session/index.ts';
import { encodeChunk, encodeReply, END, NEED_MORE, WireDecoder } from '../core/wire/index.ts';

export interface SessionSpec<S, E extends { type: string }, A extends { type: string }> {
  readonly initial: S;
  readonly reducer: (state: S, event: BaseEvent | E) => Step<S, A | BaseAction>;
  /** The first event (greeting): the reducers want a fresh challenge and the peer IP. */
  readonly connected: E;
  /**
   * Performs a machine-specific action; returns the event it produces, if any, or a promise
   * of it (of nothing) when the action must wait. An action done at once returns at once:
   * the loop then goes on without waiting a turn of the event loop.
   */
  perform(action: A): E | undefined | PromiseLike<E | undefined> | PromiseLike<void>;
  /** The session ended (after the socket closed); release what `perform` holds. */
  ended?(): void;
  /** Multiplies every state timeout (tests shorten them); default 1. */
  readonly timeoutScale?: number;
  readonly onError?: (e: unknown) => void;
}

/**
 * After the server closes its side, how long the peer has to close its own before the
 * connection is destroyed (multiplied by `timeoutScale`): long enough for the last reply
 * to be read, short enough that a peer that never closes holds nothing for long (§60.9).
 */
export const LINGER_SECONDS = 5;

/** Replies waiting beyond this many octets are written without waiting for the batch's end. */
const OUT_BATCH = 64 * 1024;

/**
 * A host failure: "451 4.3.0 NMTP_ERR_TRANSPORT_LOCAL", then close (§60.7). Performed as
 * the failed step's remaining actions, so the reply waits for a full buffer like any other.
 */
const LOCAL_FAILURE: readonly BaseAction[] = [
  {
    type: 'reply',
    reply: { code: 451, enhanced: '4.3.0', params: { err: 'NMTP_ERR_TRANSPORT_LOCAL' }, text: '' },
  },
  { type: 'close' },
];

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return (
    x instanceof Promise ||
    (typeof x === 'object' && x !== null && typeof (x as { then?: unknown }).then === 'function')
  );
}

/** Runs one session to its end; resolves when the socket is closed. */
export function runSession<S, E extends { type: string }, A extends { type: string }>(
  socket: Duplex,
  spec: SessionSpec<S, E, A>,
): Promise<void> {
  type Result = BaseEvent | E | undefined;
  // What the loop waits for: an action's event (or nothing), or a write's 'drain'.
  type Wait = PromiseLike<unknown>;
  const decoder = new WireDecoder('server');
  let state = spec.initial;
  let linger: NodeJS.Timeout | undefined;
  let closed = false;
  let running = false;
  const queue: (BaseEvent | E)[] = [];
  // The step being performed: its actions from `at` on are still to do.
  let actions: readonly (A | BaseAction)[] = [];
  let at = 0;
  // The step under way is the one for the peer's end: close once it is done.
  let ending = false;
  const scale = spec.timeoutScale ?? 1;
  // One timer per session: every state change restarts it (§60.9 timeouts).
  const timer = new SessionTimer(() => enqueue({ type: 'timeout' }), scale);
  const onError = spec.onError ?? ((): void => undefined);

  // Replies produced while handling what one read brought are sent as one write: a
  // pipelined RCPT…DATA gets its replies in one TLS record (one syscall, one record's
  // overhead) instead of one each. "A server MAY hold the replies to commands it has
  // already read and send them together, but it MUST send every reply it holds before it
  // waits for more input" (§60.2): they go out at NEED_MORE, before a close, and whenever
  // OUT_BATCH octets are waiting. Both return a promise only when the socket buffer is
  // full and the loop must wait for 'drain'.
  let out: Uint8Array[] = [];
  let outBytes = 0;
  const flush = (): Promise<void> | undefined => {
    if (out.length === 0) return undefined;
    const bytes = out.length === 1 ? out[0]! : Buffer.concat(out);
    out = [];
    outBytes = 0;
    return closed ? undefined : writeOrWait(socket, bytes);
  };
  const write = (bytes: Uint8Array): Promise<void> | undefined => {
    if (closed) return undefined;
    out.push(bytes);
    outBytes += bytes.length;
    return outBytes >= OUT_BATCH ? flush() : undefined;
  };

  const shutdown = (): void => {
    if (closed) return;
    void flush();
    closed = true;
    timer.clear();
    socket.end();
    // Lingering close: keep reading (and discarding, see 'data') so the peer's end is seen
    // and a peer still writing is not stuck; destroy if it does not close in time.
    socket.resume();
    linger = setTimeout(() => socket.destroy(), LINGER_SECONDS * 1000 * scale);
    linger.unref();
  };

  const perform = (a: A | BaseAction): Result | Wait => {
    const b = a as BaseAction;
    switch (b.type) {
      case 'reply':
        return write(encodeReply(b.reply));
      case 'chunk':
        return write(encodeChunk(b.bytes, b.last));
      case 'command':
        return undefined; // a server sends no commands
      case 'set-timer':
        timer.set(b.seconds);
        return undefined;
      case 'close':
        shutdown();
        return undefined;
      default:
        return spec.perform(a as A); // 'store-chunk' and the machine's own actions
    }
  };

  // Each action's event is fed back before anything read later (and before the events of
  // the step's earlier actions, as it always was).
  const feed = (next: Result): void => {
    if (next !== undefined) queue.unshift(next);
  };

  // A host failure (storage, DNS library) must not crash the process or leave the peer
  // waiting: the rest of the step is dropped for one coded reply, then close.
  const fail = (e: unknown): void => {
    if (actions === LOCAL_FAILURE) throw e;
    onError(e);
    actions = LOCAL_FAILURE;
    at = 0;
  };

  /** Performs the step's remaining actions in order; returns the first one to wait for. */
  const act = (): Wait | undefined => {
    while (at < actions.length) {
      const a = actions[at++]!;
      let r: Result | Wait;
      try {
        r = perform(a);
      } catch (e) {
        fail(e);
        continue;
      }
      if (isThenable(r)) return r;
      feed(r);
    }
    return undefined;
  };

  const begin = (event: BaseEvent | E): void => {
    const s = spec.reducer(state, event);
    state = s.state;
    actions = s.actions;
    at = 0;
  };

  /**
   * Handles events and what was read until there is nothing left to do (undefined) or it
   * must wait (the promise; call again once it settled).
   */
  const run = (): Wait | undefined => {
    for (;;) {
      const wait = act();
      if (wait !== undefined) return wait;
      if (ending) {
        ending = false;
        shutdown();
        return undefined;
      }
      const ev = queue.shift();
      if (ev !== undefined) {
        if (!closed) begin(ev);
        continue;
      }
      if (closed) return undefined;
      const item = decoder.next();
      if (item === NEED_MORE) {
        if (out.length === 0) return undefined;
        // The flush may wait for 'drain'; a timeout or the peer's end that arrives
        // meanwhile is queued for this loop (drain() returns at once while it runs), so
        // look again before stopping.
        const flushing = flush();
        if (flushing !== undefined) return flushing;
        continue;
      }
      if (item === END) {
        ending = true;
        begin({ type: 'closed' });
        continue;
      }
      begin({ type: 'wire', item });
    }
  };

  // Runs the loop; the socket is paused only while it waits (a synchronous run cannot be
  // interrupted by a read).
  const go = (): void => {
    let wait: Wait | undefined;
    try {
      wait = run();
    } catch (e) {
      onError(e);
    }
    if (wait === undefined) {
      running = false;
      // Read on: the next item, or (closed) the lingering close's discard.
      socket.resume();
      return;
    }
    if (!closed) socket.pause();
    void wait.then(settled, failed);
  };
  const settled = (next: unknown): void => {
    feed(next as Result); // a write's promise settles with undefined: nothing to feed
    go();
  };
  const failed = (e: unknown): void => {
    try {
      fail(e);
    } catch (again) {
      onError(again);
      running = false;
      socket.resume();
      return;
    }
    go();
  };

  const drain = (): void => {
    if (running) return;
    running = true;
    go();
  };

  const enqueue = (ev: BaseEvent | E): void => {
    queue.push(ev);
    drain();
  };

  return new Promise((resolve) => {
    socket.on('data', (d: Buffer) => {
      // After the server closed its side nothing more is decoded or buffered (linger).
      if (closed) return;
      // The decoder hands out views of what it is given; that is safe because each read
      // is fully handled (its chunk data stored) before the next one (the socket is paused
      // while the loop waits).
      decoder.push(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      drain();
    });
    socket.on('end', () => {
      if (closed) return;
      decoder.end();
      drain();
    });
    socket.on('error', onError);
    socket.on('close', () => {
      closed = true;
      timer.clear();
      if (linger) clearTimeout(linger);
      state = spec.reducer(state, { type: 'closed' }).state;
      spec.ended?.();
      resolve();
    });
    enqueue(spec.connected);
  });
}
