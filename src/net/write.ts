/**
 * The one socket write every host uses (server session loop, transfer and submission
 * clients): backpressure without buffering, and no promise left pending for ever.
 */
import type { Duplex } from 'node:stream';

const DONE: Promise<void> = Promise.resolve();

/**
 * Writes `bytes`; resolves at once if the socket buffer has room, else on 'drain' — or,
 * with `flushed`, only when the socket has processed these octets (the caller reuses the
 * buffer). A peer that goes away never drains, so 'close' settles it too.
 */
export function writeSocket(socket: Duplex, bytes: Uint8Array, flushed = false): Promise<void> {
  if (!flushed) return writeOrWait(socket, bytes) ?? DONE;
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      socket.off('close', finish);
      resolve();
    };
    socket.once('close', finish);
    socket.write(bytes, finish);
  });
}

/**
 * `writeSocket` for a caller that goes on at once when it can: undefined if the socket
 * buffer had room (most writes, so no listeners, no promise), else a promise settled on
 * 'drain' or 'close'.
 */
export function writeOrWait(socket: Duplex, bytes: Uint8Array): Promise<void> | undefined {
  if (socket.destroyed || socket.write(bytes)) return undefined;
  // 'close' cannot have been emitted yet: a socket destroyed by this write emits it later.
  return new Promise((resolve) => {
    const finish = (): void => {
      socket.off('drain', finish);
      socket.off('close', finish);
      resolve();
    };
    socket.once('drain', finish);
    socket.once('close', finish);
  });
}
