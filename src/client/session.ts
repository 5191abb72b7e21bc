/**
 * One transfer client session on a socket: the host loop of the transfer-client reducer
 * (src/core/session/transfer-client.ts). It signs the HELLO proof with the client domain's
 * key, verifies a redirect target's PROVE answer, streams the requested view of the message
 * in chunks of at most 1 MiB — each written only after the previous one drained, so the
 * socket never holds more than one — and runs the per-state timers of §60.10.7. A session
 * runs one job at a time; a kept session (`keepOpen`) then waits idle for the next one.
 */
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect, TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { readWireItems } from '../net/read.ts';
import { NmtpError } from '../core/errors/index.ts';
import {
  PROVE_EXPORTER_LABEL,
  initialTransferClient,
  transferClient,
  type ClientJob,
  type RecipientResult,
  type TransferClientAction,
  type TransferClientEvent,
  type TransferClientState,
  type View,
} from '../core/session/index.ts';
import { ed25519, toBase64url, type SigningKey } from '../core/sign/index.ts';
import { encodeChunk, encodeCommand, type Reply } from '../core/wire/index.ts';
import { ClientHost, type Outcome } from './host.ts';
import { bytesSource, type MessageSource } from './source.ts';

export interface ClientIdentity {
  /** Our domain (A-label), the selector of its published key, and that key. */
  readonly domain: string;
  readonly selector: string;
  readonly key: SigningKey;
}

export interface ConnectOptions {
  /** PEM CA certificate(s) to trust instead of the system store (tests, private CAs). */
  readonly ca?: string | Buffer;
  /** Loopback tests only: no TLS. */
  readonly plaintext?: boolean;
  /**
   * Do not require the certificate to chain to a trusted root: only for redirect targets,
   * which the PROVE key proof authenticates instead (§60.10.8).
   */
  readonly insecureTls?: boolean;
  readonly connectTimeoutMs?: number;
  /** Multiplies every state timeout (tests shorten them); default 1. */
  readonly timeoutScale?: number;
  /** Pipeline RCPTs + DATA and cookie commands (§60.2); default true. */
  readonly pipelining?: boolean;
}

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export type SessionFailure = Reply | NmtpError | 'timeout' | 'closed';

export interface JobResult {
  readonly endpoint: Endpoint;
  readonly recipients: readonly RecipientResult[];
  /** Set when the session failed as a whole (greeting, HELLO, framing, timeout, close). */
  readonly failure?: SessionFailure;
}

/** An IPv4 or IPv6 address rather than a name: no SNI is sent and no name is checked. */
const isAddressLiteral = (host: string): boolean => /^[0-9.]+$|:/.test(host);

/** Opens a connection; rejects with NMTP_ERR_TRANSPORT_CONNECT_FAILED. */
export function openConnection(e: Endpoint, o: ConnectOptions): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void =>
      reject(
        new NmtpError('NMTP_ERR_TRANSPORT_CONNECT_FAILED', `${e.host}:${e.port}: ${err.message}`),
      );
    // TCP_NODELAY (`noDelay`): the session writes small records back to back (pipelined
    // commands, a chunk's head); with Nagle's algorithm the kernel holds each one until the
    // peer's delayed ACK (≈ 40 ms on Linux), which bounded a session to ≈ 20 messages per
    // second (bench/results-transport.md). Small writes are batched instead: pipelined
    // commands in `dispatch`, a small chunk's head, body and CRLF in `perform`.
    const s =
      o.plaintext === true
        ? tcpConnect({ host: e.host, port: e.port, noDelay: true }, () => resolve(s))
        : tlsConnect(
            {
              host: e.host,
              port: e.port,
              // The certificate must name the SRV target (a redirect target is checked by PROVE).
              servername: isAddressLiteral(e.host) ? '' : e.host,
              minVersion: 'TLSv1.3',
              ...(o.ca === undefined ? {} : { ca: o.ca }),
              // "the certificate is not required to chain to a trusted root — the key proof
              // is what authenticates the target" (§60.10.8).
              ...(o.insecureTls === true ? { rejectUnauthorized: false } : {}),
            },
            () => resolve(s),
          );
    s.setTimeout(o.connectTimeoutMs ?? 10_000, () => s.destroy(new Error('connect timeout')));
    s.once('error', fail);
    // tls.connect takes no `noDelay`; set on the socket before it connects, the flag is
    // applied to the TCP socket when it is created.
    s.setNoDelay(true);
    s.once('connect', () => s.setTimeout(0));
    s.once('secureConnect', () => s.setTimeout(0));
  });
}

/**
 * The name a connection's certificate was verified for: the endpoint's host when it is a DNS
 * name and TLS checked the certificate (not plaintext, not `insecureTls` — a redirect
 * target is authenticated by PROVE instead, §60.10.8).
 */
function verifiedNameOf(e: Endpoint, o: ConnectOptions): { verifiedName?: string } {
  if (o.plaintext === true || o.insecureTls === true || isAddressLiteral(e.host)) return {};
  return { verifiedName: e.host.replace(/\.$/, '') };
}

/** The PROVE binding of a connection (§60.10.8): TLS exporter output, '' on plaintext. */
export function proveBinding(socket: Duplex): string {
  if (!(socket instanceof TLSSocket)) return '';
  return toBase64url(socket.exportKeyingMaterial(32, PROVE_EXPORTER_LABEL, Buffer.alloc(0)));
}

type Source = MessageSource | Uint8Array | undefined;

const utf8 = new TextEncoder();
const CHUNK_HEAD = (n: number, last: boolean): Uint8Array =>
  utf8.encode(`CHUNK ${n}${last ? ' LAST' : ''}\r\n`);
const CRLF_BYTES = new Uint8Array([0x0d, 0x0a]);
/** Chunks up to this size are written with their head and CRLF as one buffer. */
const SMALL_CHUNK = 64 * 1024;

const asSource = (m: Source): MessageSource | undefined =>
  m instanceof Uint8Array ? bytesSource(m) : m;

/** `before` (pipelined commands, or nothing), then `parts`: what one write sends. */
const joined = (before: readonly Uint8Array[] | undefined, parts: Uint8Array[]): Buffer =>
  Buffer.concat(before === undefined ? parts : [...before, ...parts]);

/**
 * A session on an open socket. The first job comes with the constructor; with `keepOpen`,
 * `run` gives it more after each result, and `finish` QUITs. The loop that runs the
 * reducer is ClientHost's.
 */
export class ClientSession extends ClientHost<TransferClientEvent, TransferClientAction> {
  private state: TransferClientState;
  /** Reports the result of the step being performed, when the step is done. */
  private finished: (() => void) | undefined;
  private current:
    { source: MessageSource | undefined; resolve: (r: JobResult) => void } | undefined;
  /** True between a job's end and the next one (a kept session). */
  idle = false;
  /** The socket closed; the session cannot be used again. */
  closed = false;
  /** Jobs run on this session, the current one included. */
  jobs = 0;
  /** Called when the session becomes idle, and when it closes. */
  onChange: (() => void) | undefined;
  /** Resolves when the socket has closed. */
  readonly ended: Promise<void>;

  constructor(
    socket: Duplex,
    readonly endpoint: Endpoint,
    private readonly identity: ClientIdentity,
    first: ClientJob,
    source: Source,
    firstDone: (r: JobResult) => void,
    o: ConnectOptions & { readonly keepOpen?: boolean } = {},
  ) {
    super(socket, o.timeoutScale ?? 1);
    this.state = initialTransferClient({
      domain: identity.domain,
      selector: identity.selector,
      job: first,
      ...(o.keepOpen === true ? { keepOpen: true } : {}),
      ...(o.pipelining === undefined ? {} : { pipelining: o.pipelining }),
      binding: proveBinding(socket),
      ...verifiedNameOf(endpoint, o),
    });
    this.current = { source: asSource(source), resolve: firstDone };
    this.jobs = 1;
    this.ended = new Promise((resolve) => {
      readWireItems(socket, this.decoder, (item) => this.dispatch({ type: 'wire', item }));
      socket.on('close', () => {
        this.dispatch({ type: 'closed' }, () => {
          this.closing = true;
          this.closed = true;
          this.idle = false;
          this.stopTimer();
          // Only a job the reducer never started is still unsettled here (a started one was
          // reported by the 'closed' event): nothing of it was answered.
          this.settle({ endpoint, recipients: [], failure: 'closed' });
          this.onChange?.();
          resolve();
        });
      });
    });
    // The greeting timer runs from the start (the client table's "greeting" state).
    this.setTimer(60);
  }

  /** The next job on an idle session; resolves with its result. */
  run(job: ClientJob, source: Source): Promise<JobResult> {
    if (!this.idle || this.closed) {
      return Promise.reject(new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'session is not idle'));
    }
    this.idle = false;
    this.jobs++;
    this.ref(true);
    return new Promise((resolve) => {
      this.current = { source: asSource(source), resolve };
      this.dispatch({ type: 'job', job });
    });
  }

  /** QUIT now if idle, else after the job in progress. */
  finish(): void {
    if (this.closed) return;
    // QUIT and 221 must still happen: the socket holds the process again until closed.
    this.ref(true);
    this.dispatch({ type: 'finish' });
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.socket.destroy();
  }

  private report(): void {
    const f = this.finished;
    this.finished = undefined;
    f?.();
  }

  private settle(r: JobResult): void {
    const c = this.current;
    this.current = undefined;
    c?.resolve(r);
  }

  /**
   * Sends `view` as chunks; `before` (pipelined commands) goes out in the same write as the
   * first small chunk, so an eager transaction (RCPTs, DATA send=full, the message) is one
   * TLS record and one segment (§60.10.4).
   */
  private sendView(view: View, before?: readonly Uint8Array[]): Outcome<TransferClientEvent> {
    const source = this.current?.source;
    if (source === undefined) throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'no message');
    if (source.now === undefined) return this.streamView(source, view, before);
    const left = source.now.viewLength(view);
    if (left === 0) {
      const wait = this.writeNow(joined(before, [encodeChunk(new Uint8Array(0), true)]));
      return wait === undefined ? { type: 'view-sent' } : wait.then(() => ({ type: 'view-sent' }));
    }
    return this.sendPieces(source.now.pieces(view), 0, left, before);
  }

  /**
   * Writes `pieces` from `i` on as chunks (`left` octets) with `before` in front of the
   * first: the loop of `streamView`, going on at once after each write the socket took.
   */
  private sendPieces(
    pieces: readonly Uint8Array[],
    i: number,
    left: number,
    before: readonly Uint8Array[] | undefined,
  ): Outcome<TransferClientEvent> {
    let prefix = before;
    for (; i < pieces.length; i++) {
      const piece = pieces[i]!;
      left -= piece.length;
      const head = CHUNK_HEAD(piece.length, left === 0);
      const from = i + 1;
      const rest = left;
      if (piece.length <= SMALL_CHUNK) {
        const wait = this.writeNow(joined(prefix, [head, piece, CRLF_BYTES]));
        prefix = undefined;
        if (wait !== undefined) {
          return wait.then(() =>
            this.closing ? { type: 'view-sent' } : this.sendPieces(pieces, from, rest, undefined),
          );
        }
        if (this.closing) break;
        continue;
      }
      // A large chunk: header, body, CRLF written apart (no copy of the body), each after
      // the one before drained, as `streamView` does.
      void this.write(joined(prefix, [head]));
      return this.write(piece, true)
        .then(() => this.write(CRLF_BYTES))
        .then(() =>
          this.closing ? { type: 'view-sent' } : this.sendPieces(pieces, from, rest, undefined),
        );
    }
    if (prefix !== undefined) {
      const wait = this.writeNow(joined(prefix, []));
      if (wait !== undefined) return wait.then(() => ({ type: 'view-sent' }));
    }
    return { type: 'view-sent' };
  }

  /** `sendView` for a source that must read the message (a file): piece by piece. */
  private async streamView(
    source: MessageSource,
    view: View,
    before: readonly Uint8Array[] | undefined,
  ): Promise<TransferClientEvent> {
    let prefix = before;
    const out = (b: Uint8Array[]): Buffer => {
      const all = joined(prefix, b);
      prefix = undefined;
      return all;
    };
    // Chunks of at most 1 MiB ("A chunk MUST NOT declare more than 1 MiB", §60.5), each
    // written after the previous one drained: the socket never holds more than one.
    let left = await source.viewLength(view);
    if (left === 0) await this.write(out([encodeChunk(new Uint8Array(0), true)]));
    for await (const piece of source.pieces(view)) {
      left -= piece.length;
      if (piece.length <= SMALL_CHUNK) {
        // A small chunk in one write (one TLS record, one segment): copying a few KiB
        // costs less than two more writes. The copy also frees the source's buffer.
        const head = CHUNK_HEAD(piece.length, left === 0);
        await this.write(out([head, piece, CRLF_BYTES]));
        if (this.closing) break;
        continue;
      }
      // A large chunk: header, body, CRLF written apart (no copy of the body); the body
      // is awaited until the socket has taken it, since the source refills that buffer.
      void this.write(out([CHUNK_HEAD(piece.length, left === 0)]));
      await this.write(piece, true);
      await this.write(CRLF_BYTES);
      if (this.closing) break;
    }
    if (prefix !== undefined) await this.write(out([]));
    return { type: 'view-sent' };
  }

  /** Performs the action at `at` (with the commands right behind it); see `Outcome`. */
  protected act(): Outcome<TransferClientEvent> {
    const actions = this.actions;
    const a = actions[this.at++]!;
    switch (a.type) {
      case 'command': {
        if (actions[this.at]?.type !== 'command') return this.writeNow(encodeCommand(a.command));
        // Pipelined commands (RCPTs and DATA, STATUS/GIVEUP; §60.2) in one write: one TLS
        // record and one segment instead of one per command.
        const batch = [encodeCommand(a.command)];
        let b = actions[this.at];
        for (; b?.type === 'command'; b = actions[++this.at]) batch.push(encodeCommand(b.command));
        if (b?.type === 'send-view') {
          // Eager data: the commands and the message in one write (§60.10.4).
          this.at++;
          return this.sendView(b.view, batch);
        }
        return this.writeNow(Buffer.concat(batch));
      }
      case 'set-timer':
      case 'close':
        return this.performNow(a);
      case 'sign-proof':
        // "NMTP-AUTH-1" LF challenge LF server-name LF identity, signed with the domain key
        // published at <selector>._nmtpkey.<domain> (§60.8.1).
        return {
          type: 'proof-signed',
          signature: toBase64url(ed25519.sign(this.identity.key, a.input)),
        };
      case 'verify-prove':
        // "proof= verifies under key= over the prove input it computes itself" (§60.10.8).
        return { type: 'prove-verified', ok: ed25519.verify(a.key, a.input, a.proof) };
      case 'send-view':
        return this.sendView(a.view);
      case 'result': {
        // Reported once the step's other actions are done (see `loop`), to the job it
        // belongs to: `ready` may hand the session to the next job before that.
        const job = this.current;
        this.current = undefined;
        const r: JobResult = {
          endpoint: this.endpoint,
          recipients: a.recipients,
          ...(a.failure === undefined ? {} : { failure: a.failure }),
        };
        this.finished = () => job?.resolve(r);
        return undefined;
      }
      case 'ready':
        this.idle = true;
        this.ref(false);
        this.onChange?.();
        return undefined;
      case 'reply':
      case 'chunk':
      case 'store-chunk':
        return undefined;
    }
  }

  /** A local failure (the message file, a bug): the job fails, the session is dropped. */
  protected fail(e: unknown): void {
    this.report();
    this.settle({
      endpoint: this.endpoint,
      recipients: this.state.results,
      failure: e instanceof NmtpError ? e : new NmtpError('NMTP_ERR_TRANSPORT_LOCAL'),
    });
    this.closing = true;
    this.socket.destroy();
  }

  protected reduce(event: TransferClientEvent): readonly TransferClientAction[] {
    const out = transferClient(this.state, event);
    this.state = out.state;
    return out.actions;
  }

  /**
   * The job's result goes out after the rest of its step: a caller that runs the next job
   * as soon as it has the result finds the session idle already (`ready`).
   */
  protected override stepDone(): void {
    this.report();
  }
}

/** Runs one job on an open connection (then QUIT); resolves with its result when closed. */
export async function runTransferJob(
  socket: Duplex,
  endpoint: Endpoint,
  identity: ClientIdentity,
  job: ClientJob,
  message: MessageSource | Uint8Array | undefined,
  o: ConnectOptions = {},
): Promise<JobResult> {
  let result: JobResult | undefined;
  const s = new ClientSession(socket, endpoint, identity, job, message, (r) => (result = r), o);
  await s.ended;
  return result ?? { endpoint, recipients: [], failure: 'closed' };
}
