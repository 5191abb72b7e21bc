/**
 * The transfer client host: connects (implicit TLS, §60.2), runs the transfer-client reducer
 * (src/core/session/transfer-client.ts) for one job, signs the HELLO proof with the client
 * domain's key, streams the requested view of the message in chunks, and returns each
 * recipient's answer. One job per connection (lock-step, §60.2); parallelism comes from
 * several connections.
 */
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import { NmtpError } from '../core/errors/index.ts';
import {
  END as FRAME_END,
  FrameDecoder,
  NEED_MORE as FRAME_NEED_MORE,
  fieldNameEquals,
} from '../core/frame/index.ts';
import { decodeAndValidate } from '../core/message/index.ts';
import { ed25519, parseSignatureField, toBase64url, type SigningKey } from '../core/sign/index.ts';
import {
  initialTransferClient,
  transferClient,
  type ClientJob,
  type RecipientResult,
  type TransferClientAction,
  type TransferClientEvent,
  type TransferClientState,
  type View,
} from '../core/session/index.ts';
import {
  encodeChunk,
  DEFAULT_WIRE_LIMITS,
  encodeCommand,
  END,
  NEED_MORE,
  WireDecoder,
  type Reply,
} from '../core/wire/index.ts';
import { orderTargets, type NmtpService, type SrvAnswer } from '../dns/srv.ts';

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
  readonly connectTimeoutMs?: number;
  /** Multiplies every state timeout (tests shorten them); default 1. */
  readonly timeoutScale?: number;
}

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface JobResult {
  readonly endpoint: Endpoint;
  readonly recipients: readonly RecipientResult[];
  /** Set when the session failed as a whole (greeting, HELLO, framing, timeout, close). */
  readonly failure?: Reply | NmtpError | 'timeout' | 'closed';
}

/** What DATA announces about a message (§60.10.4), from the message itself. */
export interface Announcement {
  readonly size: number;
  readonly digest: string;
  readonly signers: readonly string[];
}

export function announce(message: Uint8Array): Announcement {
  const m = decodeAndValidate(message);
  const signers: string[] = [];
  for (const f of m.trace) {
    if (!fieldNameEquals(f.name, 'Signature')) continue;
    try {
      const s = parseSignatureField(f.value);
      // "the d= domains, or u= users, of the message's signatures" (§60.4).
      const id = s.user ?? s.domain;
      if (!signers.includes(id)) signers.push(id);
    } catch {
      // An unparseable signature names no signer; the receiver finds out when verifying.
    }
  }
  return { size: message.length, digest: toBase64url(m.contentDigest), signers };
}

/** Opens a connection; rejects with NMTP_ERR_TRANSPORT_CONNECT_FAILED. */
export function openConnection(e: Endpoint, o: ConnectOptions): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void =>
      reject(
        new NmtpError('NMTP_ERR_TRANSPORT_CONNECT_FAILED', `${e.host}:${e.port}: ${err.message}`),
      );
    const s =
      o.plaintext === true
        ? tcpConnect({ host: e.host, port: e.port }, () => resolve(s))
        : tlsConnect(
            {
              host: e.host,
              port: e.port,
              // The certificate must name the SRV target (or the redirect host).
              servername: /^[0-9.]+$|:/.test(e.host) ? '' : e.host,
              minVersion: 'TLSv1.3',
              ...(o.ca === undefined ? {} : { ca: o.ca }),
            },
            () => resolve(s),
          );
    s.setTimeout(o.connectTimeoutMs ?? 10_000, () => s.destroy(new Error('connect timeout')));
    s.once('error', fail);
    s.once('connect', () => s.setTimeout(0));
    s.once('secureConnect', () => s.setTimeout(0));
  });
}

/** Octets of a view of a framed message (§60.10.4). */
export function viewOf(message: Uint8Array, view: View): Uint8Array {
  if (view === 'full') return message;
  if (view === 'digest') return new Uint8Array(0);
  // Field values contain no CR or LF (§10), so header blocks end at the first empty line.
  const endOfBlock = (from: number): number => {
    let at = from;
    for (;;) {
      const lf = message.indexOf(0x0a, at);
      if (lf < 0) return message.length;
      if (lf === at + 1) return lf + 1; // the line was just CRLF
      at = lf + 1;
    }
  };
  const afterVersion = message.indexOf(0x0a) + 1;
  const trace = endOfBlock(afterVersion);
  if (view === 'signers') return message.subarray(0, trace);
  const headers = message.subarray(0, endOfBlock(trace));
  if (view === 'headers') return headers;
  // 'text': "the headers view, then the first text/plain leaf part in depth-first order,
  // complete (header block, body, sentinel); if the root part is itself that leaf, the
  // full message" (§60.10.4). Part events come in depth-first order.
  const d = new FrameDecoder({});
  d.push(message);
  for (let ev = d.next(); ev !== FRAME_NEED_MORE && ev !== FRAME_END; ev = d.next()) {
    if (ev.type !== 'part-start') continue;
    const ct = ev.contentType;
    if (
      ev.kind !== 'leaf' ||
      ct.type.toLowerCase() !== 'text' ||
      ct.subtype.toLowerCase() !== 'plain'
    ) {
      continue;
    }
    if (ev.depth === 0) return message;
    const part = message.subarray(ev.offset, ev.bodyOffset + ev.contentLength + 4);
    const out = new Uint8Array(headers.length + part.length);
    out.set(headers, 0);
    out.set(part, headers.length);
    return out;
  }
  return headers;
}

/** Runs one job on an open connection; resolves with the job's result when closed. */
export function runTransferJob(
  socket: Duplex,
  endpoint: Endpoint,
  identity: ClientIdentity,
  job: ClientJob,
  message: Uint8Array | undefined,
  o: ConnectOptions = {},
): Promise<JobResult> {
  const decoder = new WireDecoder('client');
  let state: TransferClientState = initialTransferClient({
    domain: identity.domain,
    selector: identity.selector,
    job,
  });
  let timer: NodeJS.Timeout | undefined;
  let result: JobResult | undefined;
  let closed = false;
  const scale = o.timeoutScale ?? 1;

  const write = (bytes: Uint8Array): Promise<void> =>
    new Promise((resolve) => {
      if (closed || socket.destroyed) return resolve();
      if (socket.write(bytes)) resolve();
      // A peer that goes away while we wait never drains: settle on close too.
      else {
        const done = (): void => {
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        socket.once('drain', done);
        socket.once('close', done);
      }
    });

  const shutdown = (): void => {
    if (closed) return;
    closed = true;
    if (timer) clearTimeout(timer);
    socket.end();
  };

  const perform = async (a: TransferClientAction): Promise<TransferClientEvent | undefined> => {
    switch (a.type) {
      case 'command':
        await write(encodeCommand(a.command));
        return undefined;
      case 'set-timer':
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => void dispatch({ type: 'timeout' }), a.seconds * 1000 * scale);
        timer.unref();
        return undefined;
      case 'close':
        shutdown();
        return undefined;
      case 'sign-proof':
        // "NMTP-AUTH-1" LF challenge LF server-name LF identity, signed with the domain key
        // published at <selector>._nmtpkey.<domain> (§60.8.1).
        return {
          type: 'proof-signed',
          signature: toBase64url(ed25519.sign(identity.key, a.input)),
        };
      case 'send-view': {
        if (message === undefined) throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'no message');
        const bytes = viewOf(message, a.view);
        // Chunks of at most 1 MiB ("A chunk MUST NOT declare more than 1 MiB", §60.5), each
        // written after the previous one drained: the socket never holds more than one.
        const max = DEFAULT_WIRE_LIMITS.maxChunk;
        for (let i = 0; i < bytes.length || i === 0; i += max) {
          await write(encodeChunk(bytes.subarray(i, i + max), i + max >= bytes.length));
        }
        return { type: 'view-sent' };
      }
      case 'result':
        result = {
          endpoint,
          recipients: a.recipients,
          ...(a.failure === undefined ? {} : { failure: a.failure }),
        };
        return undefined;
      case 'reply':
      case 'chunk':
      case 'store-chunk':
        return undefined;
    }
  };

  let chain: Promise<void> = Promise.resolve();
  const dispatch = (event: TransferClientEvent): Promise<void> => {
    chain = chain.then(async () => {
      const events: TransferClientEvent[] = [event];
      for (let ev = events.shift(); ev !== undefined; ev = events.shift()) {
        const out = transferClient(state, ev);
        state = out.state;
        for (const a of out.actions) {
          try {
            const next = await perform(a);
            if (next) events.push(next);
          } catch (e) {
            result ??= {
              endpoint,
              recipients: state.results,
              failure: e instanceof NmtpError ? e : new NmtpError('NMTP_ERR_TRANSPORT_LOCAL'),
            };
            socket.destroy();
            return;
          }
        }
      }
    });
    return chain;
  };

  return new Promise((resolve) => {
    socket.on('data', (d: Buffer) => {
      decoder.push(new Uint8Array(d));
      for (let item = decoder.next(); item !== NEED_MORE && item !== END; item = decoder.next()) {
        void dispatch({ type: 'wire', item });
        if (item.kind === 'error' && item.fatal) break;
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      void dispatch({ type: 'closed' }).then(() => {
        closed = true;
        if (timer) clearTimeout(timer);
        resolve(result ?? { endpoint, recipients: state.results, failure: 'closed' });
      });
    });
    // The greeting timer runs from the start (the client table's "greeting" state).
    timer = setTimeout(() => void dispatch({ type: 'timeout' }), 60_000 * scale);
    timer.unref();
  });
}

/** Connects to `endpoint` and runs `job` there. */
export async function transferTo(
  endpoint: Endpoint,
  identity: ClientIdentity,
  job: ClientJob,
  message: Uint8Array | undefined,
  o: ConnectOptions = {},
): Promise<JobResult> {
  const socket = await openConnection(endpoint, o);
  return runTransferJob(socket, endpoint, identity, job, message, o);
}

export type SrvLookup = (service: NmtpService, domain: string) => Promise<SrvAnswer>;

/**
 * Runs `job` at the destination domain's transfer server: SRV targets in RFC 2782 order,
 * falling back to the next when one cannot be connected to or drops the session before
 * answering (a server that answered is never retried: its answers stand).
 */
export async function transferToDomain(
  domain: string,
  srv: SrvLookup,
  identity: ClientIdentity,
  job: ClientJob,
  message: Uint8Array | undefined,
  o: ConnectOptions = {},
): Promise<JobResult> {
  const answer = await srv('transfer', domain);
  if (answer.status !== 'ok') {
    throw new NmtpError(
      'NMTP_ERR_TRANSPORT_NO_ROUTE',
      answer.status === 'none' ? `no SRV for ${domain}` : answer.detail,
    );
  }
  const errors: string[] = [];
  for (const t of orderTargets(answer.targets)) {
    const endpoint = { host: t.name, port: t.port };
    let socket: Duplex;
    try {
      socket = await openConnection(endpoint, o);
    } catch (e) {
      errors.push((e as Error).message);
      continue;
    }
    const r = await runTransferJob(socket, endpoint, identity, job, message, o);
    if (r.failure === 'closed' && r.recipients.length === 0) {
      errors.push(`${t.name}:${t.port}: closed before answering`);
      continue;
    }
    return r;
  }
  throw new NmtpError('NMTP_ERR_TRANSPORT_CONNECT_FAILED', errors.join('; '));
}

/** The job that delivers `message` to `recipients` (announcement computed from it). */
export function deliverJob(recipients: readonly string[], message: Uint8Array): ClientJob {
  return { kind: 'deliver', recipients, ...announce(message) };
}
