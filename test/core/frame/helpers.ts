/** Shared helpers for the frame tests: run a decoder over chunks and collect what it says. */
import {
  END,
  FrameDecoder,
  NEED_MORE,
  type FrameEvent,
  type FrameLimits,
} from '../../../src/core/frame/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';

export type Outcome =
  { ok: true; events: unknown[] } | { ok: false; code: string; events: unknown[] };

/** Bytes → JSON-friendly form, with body chunks merged so that chunking does not show. */
function plain(ev: FrameEvent): unknown {
  return JSON.parse(
    JSON.stringify(ev, (_k, v: unknown) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
    ),
  );
}

/**
 * Decodes `chunks` pushed one at a time, draining events after each push. Consecutive body
 * events of one part are merged (their split depends on chunking; their bytes must not).
 */
export function run(chunks: Iterable<Uint8Array>, limits?: Partial<FrameLimits>): Outcome {
  const d = new FrameDecoder(limits === undefined ? {} : { limits });
  const events: unknown[] = [];
  let body: { path: string; hex: string; offset: number } | undefined;
  const flush = (): void => {
    if (body !== undefined) events.push({ type: 'body', ...body });
    body = undefined;
  };
  try {
    for (const chunk of chunks) {
      d.push(chunk);
      for (let ev = d.next(); ev !== NEED_MORE && ev !== END; ev = d.next()) {
        if (ev.type === 'body') {
          const path = ev.path.join('.');
          const hex = Buffer.from(ev.bytes).toString('hex');
          if (body !== undefined && body.path === path) body.hex += hex;
          else {
            flush();
            body = { path, hex, offset: ev.offset };
          }
          continue;
        }
        flush();
        events.push(plain(ev));
      }
    }
    d.finish();
    flush();
    return { ok: true, events };
  } catch (e) {
    if (!(e instanceof NmtpError)) throw e;
    flush();
    return { ok: false, code: e.code, events };
  }
}

export const hex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
export const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Splits `bytes` at the given cut points (sorted, within range). */
export function splitAt(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of cuts) {
    out.push(bytes.subarray(prev, c));
    prev = c;
  }
  out.push(bytes.subarray(prev));
  return out;
}
