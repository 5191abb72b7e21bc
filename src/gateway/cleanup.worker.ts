/**
 * One cleanup thread (started by src/gateway/cleanup-pool.ts): runs `cleanup` for each job
 * it is given and answers with the octets (their memory handed back, not copied) or the
 * error as plain data (an NmtpError's code, message and details survive the trip).
 */
import { parentPort } from 'node:worker_threads';
import { messageLayout, type MessageLayout } from '../client/source.ts';
import { NmtpError } from '../core/errors/index.ts';
import type { SigningKey } from '../core/sign/index.ts';
import { cleanup, type CleanupJob } from './cleanup.ts';

/**
 * A job; its signing key travels once per thread (`key` with a new `keyId`), then by its
 * id: the signer caches the key's parsed form per key object, and a key cloned with every
 * job would be parsed again every time (≈ 0.5 ms of OpenSSL per message).
 */
export type ToCleanup = {
  readonly id: number;
  readonly keyId: number;
  readonly key?: SigningKey;
} & {
  readonly legacy: CleanupJob['legacy'];
  readonly convert: CleanupJob['convert'];
  readonly sign: Omit<CleanupJob['sign'], 'key'>;
};
export interface CleanupFailure {
  readonly code?: string;
  readonly message: string;
  readonly details?: unknown;
  readonly stack?: string;
}
export type FromCleanup =
  | { readonly kind: 'ready' }
  | {
      readonly kind: 'done';
      readonly id: number;
      readonly framed: Uint8Array;
      /** What the transfer client would compute before sending it (src/client/source.ts). */
      readonly layout?: MessageLayout;
    }
  | { readonly kind: 'failed'; readonly id: number; readonly error: CleanupFailure };

const port = parentPort!;
/** The keys seen, by id (a gateway signs with one key per process run: never many). */
const keys = new Map<number, SigningKey>();

/** Answers, posted together once per turn (one wake-up of the event loop for many). */
let answers: FromCleanup[] = [];
let handOver: ArrayBuffer[] = [];
function answer(a: FromCleanup, moved?: ArrayBuffer): void {
  answers.push(a);
  if (moved !== undefined) handOver.push(moved);
  if (answers.length === 1) {
    setImmediate(() => {
      const batch = answers;
      const transfer = handOver;
      answers = [];
      handOver = [];
      port.postMessage(batch, transfer);
    });
  }
}

port.on('message', (batch: readonly ToCleanup[]) => {
  for (const m of batch) one(m);
});

function one(m: ToCleanup): void {
  if (m.key !== undefined) keys.set(m.keyId, m.key);
  const key = keys.get(m.keyId);
  const run =
    key === undefined
      ? Promise.reject(new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `cleanup: key ${m.keyId} unknown`))
      : cleanup({ legacy: m.legacy, convert: m.convert, sign: { ...m.sign, key } });
  run.then(
    (out) => {
      // Hand the memory over when the octets own their whole buffer; else a copy that does.
      const whole = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength;
      const framed = whole && out.buffer instanceof ArrayBuffer ? out : out.slice();
      answer({ kind: 'done', id: m.id, framed, ...layoutOf(framed) }, framed.buffer as ArrayBuffer);
    },
    (e: unknown) => {
      const error: CleanupFailure =
        e instanceof NmtpError
          ? { code: e.code, message: e.message, details: e.details, ...stackOf(e) }
          : { message: e instanceof Error ? e.message : String(e), ...stackOf(e) };
      answer({ kind: 'failed', id: m.id, error });
    },
  );
}

/** None for a message the client's decoder refuses: the client finds out itself, as before. */
function layoutOf(framed: Uint8Array): { layout?: MessageLayout } {
  try {
    return { layout: messageLayout(framed) };
  } catch {
    return {};
  }
}

function stackOf(e: unknown): { stack?: string } {
  return e instanceof Error && e.stack !== undefined ? { stack: e.stack } : {};
}

answer({ kind: 'ready' });
