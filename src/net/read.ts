/**
 * How both clients read a server: every octet into the wire decoder, each decoded item to
 * the session in order, nothing after a fatal framing error (the stream can no longer be
 * trusted, §60.7). Socket errors surface as 'close', which the session handles.
 */
import type { Duplex } from 'node:stream';
import { END, NEED_MORE, type WireDecoder, type WireItem } from '../core/wire/index.ts';

export function readWireItems(
  socket: Duplex,
  decoder: WireDecoder,
  onItem: (item: WireItem) => void,
): void {
  socket.on('data', (d: Buffer) => {
    decoder.push(new Uint8Array(d));
    for (let item = decoder.next(); item !== NEED_MORE && item !== END; item = decoder.next()) {
      onItem(item);
      if (item.kind === 'error' && item.fatal) break;
    }
  });
  socket.on('error', () => undefined);
}
