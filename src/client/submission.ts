/**
 * The submission client host (docs/protocol.md §60.11.6): a user's program talking to its
 * own domain's submission server. It opens the connection (implicit TLS, `openConnection`
 * of the transfer client), runs the submission-client reducer
 * (src/core/session/submission-client.ts) and performs its actions: it signs the AUTH KEY
 * proof with the user's key, streams a message from memory or from a file in chunks of at
 * most 1 MiB — each written after the previous one drained, so the socket never holds more
 * than one and a file is never read whole — and collects SIGN and CERTIFY payloads into
 * memory, which the reducer bounds by the announced size and `maxPayload` (64 MiB).
 *
 * Every method queues one job and resolves with its result, a value: a refusal by the
 * server is a result, not an exception. `resultError` turns a failed result into the coded
 * error a program reports.
 */
import { open, stat } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { readWireItems } from '../net/read.ts';
import { NmtpError, isErrorCode } from '../core/errors/index.ts';
import {
  SUBMISSION_CLIENT_STATES,
  initialSubmissionClient,
  submissionClient,
  type SubmissionClientAction,
  type SubmissionClientEvent,
  type SubmissionClientState,
  type SubmissionJob,
  type SubmissionResult,
} from '../core/session/index.ts';
import { ed25519, toBase64url, type SigningKey } from '../core/sign/index.ts';
import {
  DEFAULT_WIRE_LIMITS,
  encodeChunk,
  printReplyLine,
  type Command,
} from '../core/wire/index.ts';
import { ClientHost, type Outcome } from './host.ts';
import { openConnection, type ConnectOptions, type Endpoint } from './transfer.ts';

/** A password login (AUTH PLAIN) or a key login (AUTH KEY: the key signs the challenge). */
export type SubmissionLogin =
  | { readonly user: string; readonly password: string }
  | { readonly user: string; readonly key: SigningKey };

/** A message to send or sign: octets in memory, or a file streamed from disk. */
export type MessageBody = Uint8Array | { readonly path: string };

export interface SubmissionOptions extends ConnectOptions {
  /** Largest SIGN/CERTIFY payload taken into memory (default 64 MiB, §60.11.6). */
  readonly maxPayload?: number;
}

type Result<K extends SubmissionResult['kind']> = Extract<SubmissionResult, { kind: K }>;
/** SIGN: the signed message, when the result is ok. */
export type SignResult = Result<'sign'> & { readonly message?: Uint8Array };
/** CERTIFY: the certificate field value, when the result is ok. */
export type CertifyResult = Result<'certify'> & { readonly certificate?: string };

/** One job between the queue and its result. */
interface Entry {
  readonly job: SubmissionJob;
  readonly body?: { readonly source: MessageBody; readonly size: number };
  readonly key?: SigningKey;
  readonly payload: Uint8Array[];
  readonly resolve: (r: SubmissionResult & { readonly bytes?: Uint8Array }) => void;
}

const CHUNK = DEFAULT_WIRE_LIMITS.maxChunk;

/** A session on an open connection. Use `SubmissionClient.connect`. */
export class SubmissionClient extends ClientHost<SubmissionClientEvent, SubmissionClientAction> {
  private state: SubmissionClientState;
  /** Serialises queueing, so that jobs keep the order of the calls (file sizes are awaited). */
  private queueing: Promise<unknown> = Promise.resolve();
  private readonly entries: Entry[] = [];
  /** Resolves when the connection has closed. */
  readonly ended: Promise<void>;

  private constructor(
    socket: Duplex,
    readonly endpoint: Endpoint,
    o: SubmissionOptions,
  ) {
    super(socket, o.timeoutScale ?? 1);
    this.state = initialSubmissionClient({
      keepOpen: true,
      ...(o.maxPayload === undefined ? {} : { maxPayload: o.maxPayload }),
    });
    this.ended = new Promise((resolve) => {
      readWireItems(socket, this.decoder, (item) => this.dispatch({ type: 'wire', item }));
      socket.on('close', () => {
        this.dispatch({ type: 'closed' }, () => {
          this.closing = true;
          this.stopTimer();
          // The reducer answered every job it knew; anything left never reached it.
          for (const e of this.entries.splice(0)) e.resolve(failed(e.job, 'closed'));
          resolve();
        });
      });
    });
    // The greeting timer runs from the start (the client table's `greeting` state).
    this.setTimer(SUBMISSION_CLIENT_STATES.greeting.timeout);
  }

  /** Connects to a submission server; the greeting is checked by the first job. */
  static async connect(endpoint: Endpoint, o: SubmissionOptions = {}): Promise<SubmissionClient> {
    return new SubmissionClient(await openConnection(endpoint, o), endpoint, o);
  }

  /** AUTH PLAIN or AUTH KEY; ok when the server answered 235. */
  login(l: SubmissionLogin): Promise<Result<'auth'>> {
    if ('password' in l) {
      const credentials = { mechanism: 'PLAIN', user: l.user, password: l.password } as const;
      return this.enqueue({ kind: 'auth', credentials }) as Promise<Result<'auth'>>;
    }
    const credentials = { mechanism: 'KEY', user: l.user, publicKey: l.key.publicKey } as const;
    return this.enqueue({ kind: 'auth', credentials }, { key: l.key }) as Promise<Result<'auth'>>;
  }

  /** RCPT… SEND: queues `message` for `recipients`; ok with the submission id. */
  send(recipients: readonly string[], message: MessageBody): Promise<Result<'send'>> {
    return this.withBody(message, (size) => ({ kind: 'send', recipients, size })) as Promise<
      Result<'send'>
    >;
  }

  /** SIGN: the server signs `message` as for SEND and returns it, queueing nothing. */
  async sign(message: MessageBody): Promise<SignResult> {
    const r = (await this.withBody(message, (size) => ({
      kind: 'sign',
      size,
    }))) as Result<'sign'> & {
      bytes?: Uint8Array;
    };
    const { bytes, ...rest } = r;
    return r.ok && bytes !== undefined ? { ...rest, message: bytes } : rest;
  }

  /** CERTIFY: a certificate for the user's public key (§40.6), valid `days` days. */
  async certify(publicKey: Uint8Array, days?: number): Promise<CertifyResult> {
    const job: SubmissionJob = {
      kind: 'certify',
      publicKey,
      ...(days === undefined ? {} : { days }),
    };
    const r = (await this.enqueue(job)) as Result<'certify'> & { bytes?: Uint8Array };
    const { bytes, ...rest } = r;
    if (!r.ok || bytes === undefined) return rest;
    return { ...rest, certificate: new TextDecoder().decode(bytes) };
  }

  /** STATUS <id>: the state of each recipient of a submission. */
  status(id: string): Promise<Result<'status'>> {
    return this.enqueue({ kind: 'status', id }) as Promise<Result<'status'>>;
  }

  /** One plain command (NOOP, RSET) and its reply. */
  command(command: Command): Promise<Result<'command'>> {
    return this.enqueue({ kind: 'command', command }) as Promise<Result<'command'>>;
  }

  /** QUIT once the queued jobs are done; resolves when the connection has closed. */
  async quit(): Promise<void> {
    await this.queueing;
    // Waiting for 221 is work: the connection keeps the process alive until it closes.
    this.ref(true);
    this.dispatch({ type: 'finish' });
    await this.ended;
  }

  /** Drops the connection at once (queued jobs fail with `closed`). */
  destroy(): void {
    this.socket.destroy();
  }

  private withBody(
    message: MessageBody,
    job: (size: number) => SubmissionJob,
  ): Promise<SubmissionResult & { bytes?: Uint8Array }> {
    return this.serially(async () => {
      let size: number;
      try {
        size = message instanceof Uint8Array ? message.length : await fileSize(message.path);
      } catch (e) {
        // A file that cannot be read is this job's local failure (nothing was sent for it).
        return { result: Promise.resolve(failed(job(0), asNmtpError(e))) };
      }
      return { result: this.push(job(size), { body: { source: message, size } }) };
    }).then((x) => x.result);
  }

  /** Queues in call order: a job waits for the file sizes of the jobs before it. */
  private serially<T>(f: () => Promise<T>): Promise<T> {
    const p = this.queueing.then(f);
    this.queueing = p.catch(() => undefined);
    return p;
  }

  private enqueue(
    job: SubmissionJob,
    extra: { key?: SigningKey } = {},
  ): Promise<SubmissionResult & { bytes?: Uint8Array }> {
    return this.serially(async () => ({ result: this.push(job, extra) })).then((x) => x.result);
  }

  /** Hands `job` to the reducer; resolves with its result. */
  private push(
    job: SubmissionJob,
    extra: { body?: Entry['body']; key?: SigningKey },
  ): Promise<SubmissionResult & { bytes?: Uint8Array }> {
    return new Promise((resolve) => {
      if (this.closing) return resolve(failed(job, 'closed'));
      this.entries.push({ job, payload: [], resolve, ...extra });
      this.ref(true);
      this.dispatch({ type: 'job', job });
    });
  }

  /** The message of the job in progress, in chunks of at most 1 MiB, the last one LAST. */
  private async sendMessage(size: number): Promise<void> {
    const body = this.entries[0]?.body;
    if (body === undefined || body.size !== size) {
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'no message for this job');
    }
    // "A chunk MUST NOT declare more than 1 MiB" (§60.5); a zero-length chunk is how an
    // empty message is sent.
    if (size === 0) return this.write(encodeChunk(new Uint8Array(0), true));
    if (body.source instanceof Uint8Array) {
      for (let at = 0; at < size && !this.closing; at += CHUNK) {
        const piece = body.source.subarray(at, Math.min(size, at + CHUNK));
        await this.write(encodeChunk(piece, at + piece.length >= size));
      }
      return;
    }
    const file = await open(body.source.path, 'r');
    try {
      const buf = new Uint8Array(Math.min(CHUNK, size));
      for (let at = 0; at < size && !this.closing;) {
        const want = Math.min(CHUNK, size - at);
        let got = 0;
        while (got < want) {
          const { bytesRead } = await file.read(buf, got, want - got, at + got);
          // SEND announced `size` octets: a file that shrank since cannot keep that promise.
          if (bytesRead === 0) {
            throw new NmtpError(
              'NMTP_ERR_TRANSPORT_LOCAL',
              `${body.source.path} changed while sending`,
            );
          }
          got += bytesRead;
        }
        at += want;
        // encodeChunk copies the octets, so the buffer can be reused for the next piece.
        await this.write(encodeChunk(buf.subarray(0, want), at >= size));
      }
    } finally {
      await file.close();
    }
  }

  protected act(): Outcome<SubmissionClientEvent> {
    const a = this.actions[this.at++]!;
    switch (a.type) {
      case 'command':
      case 'set-timer':
      case 'close':
        return this.performNow(a);
      case 'sign-proof': {
        // "The proof is the RFC 8032 Ed25519 signature of proof-input" (§60.8.1), with the
        // user's key: "the user signs the proof input … with identity = the user's
        // canonical address" (§60.11.2).
        const key = this.entries[0]?.key;
        if (key === undefined)
          throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'no key to sign with');
        return { type: 'proof-signed', signature: toBase64url(ed25519.sign(key, a.input)) };
      }
      case 'send-message':
        return this.sendMessage(a.size).then((): SubmissionClientEvent => ({
          type: 'message-sent',
        }));
      case 'payload':
        // A copy: the decoder's view is only valid until the next push. The reducer never
        // hands out more than the size the server announced (≤ maxPayload).
        this.entries[0]?.payload.push(a.bytes.slice());
        return undefined;
      case 'result': {
        const e = this.entries.shift();
        if (e === undefined) return undefined;
        const bytes = a.result.ok && e.payload.length > 0 ? Buffer.concat(e.payload) : undefined;
        e.resolve(bytes === undefined ? a.result : { ...a.result, bytes: new Uint8Array(bytes) });
        return undefined;
      }
      case 'ready':
        this.ref(false);
        return undefined;
      case 'reply':
      case 'chunk':
      case 'store-chunk':
        return undefined;
    }
  }

  protected reduce(event: SubmissionClientEvent): readonly SubmissionClientAction[] {
    const out = submissionClient(this.state, event);
    this.state = out.state;
    return out.actions;
  }

  /**
   * A local failure (the message file, a bug) in the middle of a transaction: the server
   * expects octets we cannot send, so the session is dropped.
   */
  protected fail(e: unknown): void {
    const failure = asNmtpError(e);
    for (const x of this.entries.splice(0)) x.resolve(failed(x.job, failure));
    this.closing = true;
    this.stopTimer();
    this.socket.destroy();
  }
}

async function fileSize(path: string): Promise<number> {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new Error('not a regular file');
    return s.size;
  } catch (e) {
    throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `${path}: ${(e as Error).message}`);
  }
}

function asNmtpError(e: unknown): NmtpError {
  return e instanceof NmtpError
    ? e
    : new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', e instanceof Error ? e.message : String(e));
}

/** The result of a job that never got an answer. */
function failed(
  job: SubmissionJob,
  failure: NonNullable<SubmissionResult['failure']>,
): SubmissionResult {
  switch (job.kind) {
    case 'send':
      return { kind: 'send', ok: false, rcpts: [], failure };
    case 'sign':
    case 'certify':
      return { kind: job.kind, ok: false, size: 0, failure };
    case 'status':
      return { kind: 'status', ok: false, id: job.id, recipients: [], failure };
    case 'auth':
    case 'command':
      return { kind: job.kind, ok: false, failure };
  }
}

/**
 * The coded error of a failed result (undefined when it is ok): the session failure, or
 * the `err=` of the reply that refused the job. A reply without a known code, and a
 * connection that went away, are temporary ("unknown errors are temporary").
 */
export function resultError(r: SubmissionResult): NmtpError | undefined {
  if (r.ok) return undefined;
  const f = r.failure;
  if (f instanceof NmtpError) return f;
  if (f === 'timeout')
    return new NmtpError('NMTP_ERR_TRANSPORT_TIMEOUT', 'the server did not answer in time');
  if (f === 'closed')
    return new NmtpError('NMTP_ERR_TRANSPORT_CONNECT_FAILED', 'the server closed the connection');
  const reply = f ?? r.reply;
  if (reply === undefined) {
    // A send whose every recipient was refused: the first refusal speaks for the job.
    const first = r.kind === 'send' ? r.rcpts.find((x) => x.reply.code !== 250) : undefined;
    if (first !== undefined) return replyError(first.reply, first.rcpt);
    return new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `${r.kind} failed`);
  }
  return replyError(reply);
}

function replyError(reply: NonNullable<SubmissionResult['reply']>, about?: string): NmtpError {
  const err = reply.params.err;
  const text = `${about === undefined ? '' : `${about}: `}${printReplyLine(reply)}`;
  return new NmtpError(
    err !== undefined && isErrorCode(err) ? err : 'NMTP_ERR_TRANSPORT_LOCAL',
    text,
  );
}

/**
 * Connects, logs in, runs `work`, and QUITs. A refused login is
 * NMTP_ERR_TRANSPORT_AUTH_FAILED (or the session's failure), thrown.
 */
export async function withSubmission<T>(
  endpoint: Endpoint,
  login: SubmissionLogin,
  work: (c: SubmissionClient) => Promise<T>,
  o: SubmissionOptions = {},
): Promise<T> {
  const c = await SubmissionClient.connect(endpoint, o);
  try {
    const auth = await c.login(login);
    const e = resultError(auth);
    if (e !== undefined) throw e;
    return await work(c);
  } finally {
    await c.quit();
  }
}
