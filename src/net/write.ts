/**
 * The one socket write every host uses (server session loop, transfer and submission
 * clients): backpressure without buffering, and no promise left pending for ever.
 */
import type { Duplex } from 'node:stream';

/**
 * Writes `bytes`; resolves at once if the socket buffer has room, else on 'drain' — or,
 * with `flushed`, only when the socket has processed these octets (the caller reuses the
 * buffer). A peer that goes away never drains, so 'close' settles it too.
 */
export function writeSocket(socket: Duplex, bytes: Uint8Array, flushed = false): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      socket.off('drain', finish);
      socket.off('close', finish);
      resolve();
    };
    socket.once('close', finish);
    const room = socket.write(bytes, flushed ? finish : undefined);
    if (flushed) return;
    if (room) finish();
    else socket.once('drain', finish);
  });
}
