/**
 * The message of a queue entry as a `MessageSource`, by the entry's kind (src/queue/port.ts):
 * an 'nmtp' entry holds a framed message (the transfer client's `fileSource`, which decodes
 * it for DATA's announcement and its views); an 'smtp' entry holds a legacy RFC 5322
 * message, which is not framed, so its source offers only the `full` view, streamed from
 * the file as it is. Neither holds a message in memory whole.
 */
import { open, stat } from 'node:fs/promises';
import { NmtpError } from '../core/errors/index.ts';
import type { View } from '../core/session/index.ts';
import { bytesSource, fileSource, type MessageSource } from '../client/source.ts';
import type { EntryKind } from './port.ts';

/** Pieces read from a legacy message file (the size `fileSource` reads too). */
const PIECE = 256 * 1024;

function onlyFull(view: View): void {
  if (view !== 'full') {
    throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `a legacy message has no ${view} view`);
  }
}

const noLayout = (): Promise<never> =>
  Promise.reject(new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'a legacy message is not framed'));

/** A legacy message in a file: `full` only, read piece by piece into one buffer. */
export async function rawFileSource(path: string): Promise<MessageSource> {
  const size = (await stat(path)).size;
  return {
    size,
    layout: noLayout,
    viewLength: async (view) => (onlyFull(view), size),
    async *pieces(view, max = PIECE) {
      onlyFull(view);
      if (size === 0) return;
      const fh = await open(path, 'r');
      // As fileSource: a piece may be overwritten once the next one is asked for.
      const buf = new Uint8Array(Math.min(max, size));
      try {
        for (let i = 0; i < size;) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - i), i);
          if (bytesRead === 0) {
            throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `${path}: shorter than its size`);
          }
          yield buf.subarray(0, bytesRead);
          i += bytesRead;
        }
      } finally {
        await fh.close();
      }
    },
  };
}

/** A legacy message in memory: `full` only. */
export function rawBytesSource(message: Uint8Array): MessageSource {
  const piecesOf = (view: View, max = PIECE): Uint8Array[] => {
    onlyFull(view);
    const out: Uint8Array[] = [];
    for (let i = 0; i < message.length; i += max) out.push(message.subarray(i, i + max));
    return out;
  };
  return {
    size: message.length,
    layout: noLayout,
    viewLength: async (view) => (onlyFull(view), message.length),
    async *pieces(view, max) {
      yield* piecesOf(view, max);
    },
    now: { viewLength: (view) => (onlyFull(view), message.length), pieces: piecesOf },
  };
}

/** The source for an entry of `kind` whose message is the file at `path`. */
export function entryFileSource(kind: EntryKind | undefined, path: string): Promise<MessageSource> {
  return (kind ?? 'nmtp') === 'smtp' ? rawFileSource(path) : fileSource(path);
}

/** The source for an entry of `kind` whose message is in memory (a backend storing bytes). */
export function entryBytesSource(kind: EntryKind | undefined, message: Uint8Array): MessageSource {
  return (kind ?? 'nmtp') === 'smtp' ? rawBytesSource(message) : bytesSource(message);
}
