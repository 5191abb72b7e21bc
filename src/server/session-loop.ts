/**
 * The host loop every server session runs (docs/protocol.md, src/core/session
 * common.ts): decode wire items, feed each as an event, perform the reducer's actions in
 * order, feed each result back as an event before anything read later. The loop owns the
 * socket, the one session timer, and the writes; what a specific machine asks for beyond
 * that (DNS, keys, the decider, storage) is `perform`'s.
 *
 * Backpressure: the socket is paused while the items of one read are handled — chunk data
 * is stored before more is read — and every write waits for 'drain'. Memory per session
 * is one read buffer plus one line (the decoder's limit), whatever the message size.
 *
 * Closing is a lingering close: the server ends its side, then reads and discards whatever
 * the peer still sends (a paused socket would never see the peer's end, and a peer stuck
 * writing into it would never finish) until the peer closes or the linger time is up.
 */
import type { Duplex } from 'node:stream';
import { SessionTimer } from '../net/timer.ts';
import { writeSocket } from '../net/write.ts';
import type { BaseAction, BaseEvent, Step } from '../core/session/index.ts';
import { encodeChunk, encodeReply, END, NEED_MORE, WireDecoder } from '../core/wire/index.ts';

export interface SessionSpec<S, E extends { type: string }, A extends { type: string }> {
  readonly initial: S;
  readonly reducer: (state: S, event: BaseEvent | E) => Step<S, A | BaseAction>;
  /** The first event (greeting): the reducers want a fresh challenge and the peer IP. */
  readonly connected: E;
  /** Performs a machine-specific action; returns the event it produces, if any. */
  perform(action: A): Promise<E | undefined>;
  /** The session ended (after the socket closed); release what `perform` holds. */
  ended?(): void;
  /** Multiplies every state timeout (tests shorten them); default 1. */
  readonly timeoutScale?: number;
  readonly onError?: (e: unknown) => void;
}

const BASE = new Set(['reply', 'command', 'chunk', 'set-timer', 'store-chunk', 'close']);

/**
 * After the server closes its side, how long the peer has to close its own before the
 * connection is destroyed (multiplied by `timeoutScale`): long enough for the last reply
 * to be read, short enough that a peer that never closes holds nothing for long (§60.9).
 */
export const LINGER_SECONDS = 5;

/** Replies waiting beyond this many octets are written without waiting for the batch's end. */
const OUT_BATCH = 64 * 1024;

/** A host failure: "451 4.3.0 NMTP_ERR_TRANSPORT_LOCAL", then close (§60.7). */
const LOCAL_FAILURE = encodeReply({
  code: 451,
  enhanced: '4.3.0',
  params: { err: 'NMTP_ERR_TRANSPORT_LOCAL' },
  text: '',
});

/** Runs one session to its end; resolves when the socket is closed. */
export function runSession<S, E extends { type: string }, A extends { type: string }>(
  socket: Duplex,
  spec: SessionSpec<S, E, A>,
): Promise<void> {
  const decoder = new WireDecoder('server');
  let state = spec.initial;
  let linger: NodeJS.Timeout | undefined;
  let closed = false;
  let running = false;
  const queue: (BaseEvent | E)[] = [];
  const scale = spec.timeoutScale ?? 1;
  // One timer per session: every state change restarts it (§60.9 timeouts).
  const timer = new SessionTimer(() => enqueue({ type: 'timeout' }), scale);
  const onError = spec.onError ?? ((): void => undefined);

  // Replies produced while handling what one read brought are sent as one write: a
  // pipelined RCPT…DATA gets its replies in one TLS record (one syscall, one record's
  // overhead) instead of one each. "A server MAY hold the replies to commands it has
  // already read and send them together, but it MUST send every reply it holds before it
  // waits for more input" (§60.2): they go out at NEED_MORE, before a close, and whenever
  // OUT_BATCH octets are waiting.
  let out: Uint8Array[] = [];
  let outBytes = 0;
  const flush = (): Promise<void> => {
    if (out.length === 0) return Promise.resolve();
    const bytes = out.length === 1 ? out[0]! : Buffer.concat(out);
    out = [];
    outBytes = 0;
    return closed ? Promise.resolve() : writeSocket(socket, bytes);
  };
  const write = (bytes: Uint8Array): Promise<void> => {
    if (closed) return Promise.resolve();
    out.push(bytes);
    outBytes += bytes.length;
    return outBytes >= OUT_BATCH ? flush() : Promise.resolve();
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

  const performBase = async (a: BaseAction): Promise<BaseEvent | E | undefined> => {
    switch (a.type) {
      case 'reply':
        await write(encodeReply(a.reply));
        return undefined;
      case 'chunk':
        await write(encodeChunk(a.bytes, a.last));
        return undefined;
      case 'command':
        return undefined; // a server sends no commands
      case 'set-timer':
        timer.set(a.seconds);
        return undefined;
      case 'close':
        shutdown();
        return undefined;
      case 'store-chunk':
        return spec.perform(a as unknown as A);
    }
  };

  const step = async (event: BaseEvent | E): Promise<void> => {
    const out = spec.reducer(state, event);
    state = out.state;
    for (const a of out.actions) {
      let next: BaseEvent | E | undefined;
      try {
        next = BASE.has(a.type) ? await performBase(a as BaseAction) : await spec.perform(a as A);
      } catch (e) {
        // A host failure (storage, DNS library) must not crash the process or leave the
        // peer waiting: one coded reply, then close.
        onError(e);
        await write(LOCAL_FAILURE);
        shutdown();
        return;
      }
      if (next !== undefined) queue.unshift(next);
    }
  };

  const drain = async (): Promise<void> => {
    if (running) return;
    running = true;
    socket.pause();
    try {
      for (;;) {
        const ev = queue.shift();
        if (ev !== undefined) {
          if (!closed) await step(ev);
          continue;
        }
        if (closed) break;
        const item = decoder.next();
        if (item === NEED_MORE) {
          if (out.length === 0) break;
          // The flush may wait for 'drain'; a timeout or the peer's end that arrives
          // meanwhile is queued for this loop (drain() returns at once while it runs), so
          // look again before stopping.
          await flush();
          continue;
        }
        if (item === END) {
          await step({ type: 'closed' });
          shutdown();
          break;
        }
        await step({ type: 'wire', item });
      }
    } finally {
      running = false;
      // Read on: the next item, or (closed) the lingering close's discard.
      socket.resume();
    }
  };

  const enqueue = (ev: BaseEvent | E): void => {
    queue.push(ev);
    void drain().catch(onError);
  };

  return new Promise((resolve) => {
    socket.on('data', (d: Buffer) => {
      // After the server closed its side nothing more is decoded or buffered (linger).
      if (closed) return;
      // The decoder hands out views of what it is given; that is safe because each read
      // is fully handled (its chunk data stored) before the next one (the socket is paused).
      decoder.push(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      void drain().catch(onError);
    });
    socket.on('end', () => {
      if (closed) return;
      decoder.end();
      void drain().catch(onError);
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
