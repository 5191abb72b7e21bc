/**
 * The transfer-server session host (src/core/session/transfer-server.ts on a socket): the
 * generic loop (session-loop.ts) plus what only transfer asks for — the HELLO proof
 * against the client domain's DNS key, the CSV TXT lookup, the reputation hook, the
 * pluggable decider (`TransferDecider`), which makes every decision about mail, and the
 * user key holder (`UserKeyHolder`), which answers PROVE for the recipients whose keys this
 * endpoint holds (§60.10.8).
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { lookupDomainKey, type TxtResolver } from '../core/keys/index.ts';
import { ed25519, toBase64url, type SigningKey } from '../core/sign/index.ts';
import {
  PROVE_EXPORTER_LABEL,
  ViewChecker,
  initialTransferServer,
  transferServer,
  type CookieState,
  type CsvResult,
  type FinalAnswer,
  type ProofResult,
  type RecipientDecision,
  type TransferServerAction,
  type TransferServerConfig,
  type TransferServerEvent,
  type TransferServerState,
  type ViewChoice,
} from '../core/session/index.ts';
import { runSession } from './session-loop.ts';

type Act<T extends TransferServerAction['type']> = Extract<TransferServerAction, { type: T }>;

/** A message being received: the decider stores its octets as they arrive. */
export interface MessageSink {
  /** Nothing when the octets are taken at once (kept in memory), else a promise. */
  write(bytes: Uint8Array): void | Promise<void>;
}

/** A value, or a promise of it: the per-message decisions answer at once when they can. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * The receiving side's pluggable decisions (§60.10.3), asynchronous for real storage.
 * The per-recipient and per-DATA decisions may answer synchronously (a cached policy):
 * the session then goes on without a promise and a turn of the event loop.
 */
export interface TransferDecider {
  decideRecipient(a: Act<'decide-recipient'>): MaybePromise<RecipientDecision>;
  /**
   * The view wanted; when a view is chosen, `sink` receives the chunks. `client` is the
   * session's identification (what decideMessage gets too).
   */
  chooseView(
    a: Act<'choose-view'>,
    client: Identification,
  ): MaybePromise<{ choice: ViewChoice; sink?: MessageSink }>;
  /**
   * Called after the LAST chunk with the sink chooseView returned and the session's client
   * identification, so the decider can record both results on the message (issue 4:
   * "recorded on the message").
   */
  decideMessage(
    a: Act<'decide-message'>,
    sink: MessageSink | undefined,
    client: Identification,
  ): Promise<FinalAnswer[]>;
  cookie(a: Act<'cookie'>): Promise<CookieState>;
  /** The session ended; a sink not yet decided on is discarded. */
  discard?(sink: MessageSink): Promise<void>;
}

/** Both client identification results of a session (§60.8). */
export interface Identification {
  readonly domain: string;
  readonly ip: string;
  readonly proof: ProofResult;
  readonly csv: CsvResult;
  /** What the reputation hook made of them, when it returned a verdict (§60.8.3). */
  readonly reputation?: ReputationVerdict;
}

/** A reputation hook's opinion of the client (§60.8.3), recorded on every message. */
export interface ReputationVerdict {
  readonly verdict: 'good' | 'neutral' | 'bad';
  /** A short reason for people (e.g. "new domain", "CSV fail"). */
  readonly note?: string;
}

/**
 * The reputation hook: both identification results (§60.8), once per HELLO, before HELLO
 * is answered. It may return a verdict (or a promise of one); the host records it with the
 * identification on every message of the session. A hook that throws ends the session with
 * 451 like any host failure.
 */
export type ReputationHook = (
  r: Identification,
) => ReputationVerdict | undefined | Promise<ReputationVerdict | undefined>;

/**
 * The user key holder: the signing key this endpoint holds for a recipient (canonical
 * address), if any — what PROVE signs with (§60.10.8). Separate from the decider so that
 * mail decisions and private keys live in different places (a gateway decides, a device
 * holds the key).
 */
export type UserKeyHolder = (
  rcpt: string,
) => SigningKey | undefined | Promise<SigningKey | undefined>;

export interface TransferHostOptions {
  readonly config: TransferServerConfig;
  readonly decider: TransferDecider;
  readonly resolveTxt: TxtResolver;
  readonly reputation?: ReputationHook;
  /** Keys this endpoint holds for its users; without it, every PROVE is answered NO_KEY. */
  readonly userKeys?: UserKeyHolder;
  /** Unix seconds now (key expiry checks). */
  readonly now?: () => number;
  /** Multiplies every state timeout (tests shorten them); default 1. */
  readonly timeoutScale?: number;
  /** Called with any host-side failure (logged by the caller). */
  readonly onError?: (e: unknown) => void;
}

/** `f(x)` now for a value, or once the promise settles. */
function then<T, U>(x: MaybePromise<T>, f: (v: T) => U): MaybePromise<U> {
  return x instanceof Promise ? x.then(f) : f(x as T);
}

/** Checks a HELLO proof against `<selector>._nmtpkey.<domain>` (§60.8.1). */
export async function verifyProof(
  resolveTxt: TxtResolver,
  a: Act<'verify-proof'>,
  now: number,
): Promise<ProofResult> {
  const found = await lookupDomainKey(resolveTxt, a.domain, a.selector);
  if (found.status !== 'found') {
    // "A DNS failure looking up the key: 454 … PROOF_KEY_UNAVAILABLE" (§60.8.1); a missing,
    // malformed or ambiguous record is a failed proof.
    return found.error.code === 'NMTP_ERR_KEY_LOOKUP_FAILED' ? 'temperror' : 'fail';
  }
  const { publicKey, expiresAt } = found.record;
  // "a revoked, expired or missing key fails the proof" (§60.8.1).
  if (publicKey === undefined) return 'fail';
  if (expiresAt !== undefined && expiresAt < now) return 'fail';
  return ed25519.verify(publicKey, a.input, a.signature) ? 'pass' : 'fail';
}

/** The verdict as recorded: only the known fields, so a hook cannot smuggle anything in. */
function checkVerdict(v: unknown): ReputationVerdict | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const { verdict, note } = v as { verdict?: unknown; note?: unknown };
  if (verdict !== 'good' && verdict !== 'neutral' && verdict !== 'bad') return undefined;
  return typeof note === 'string' ? { verdict, note } : { verdict };
}

/**
 * The PROVE binding of a connection (§60.10.8): base64url of 32 octets of TLS exporter
 * output, label "EXPORTER-NMTP-PROVE-1", empty context (RFC 8446 §7.5); '' for a plaintext
 * (loopback test) session.
 */
export function proveBinding(socket: Duplex): string {
  if (!(socket instanceof TLSSocket)) return '';
  // In TLS 1.3 "providing no context computes the same value as providing an empty
  // context" (RFC 8446 §7.5); node's types want one, so we pass the empty one.
  return toBase64url(socket.exportKeyingMaterial(32, PROVE_EXPORTER_LABEL, Buffer.alloc(0)));
}

/** Answers a 'prove' action: the signature by the recipient's key, or "no key here". */
export async function prove(
  userKeys: UserKeyHolder | undefined,
  a: Act<'prove'>,
): Promise<TransferServerEvent> {
  const key = await userKeys?.(a.rcpt);
  if (key === undefined) return { type: 'proved', none: true };
  return { type: 'proved', key: key.publicKey, signature: ed25519.sign(key, a.input) };
}

/** Runs one transfer session on `socket` to its end; resolves when it is closed. */
export function runTransferSession(
  socket: Duplex,
  ip: string,
  o: TransferHostOptions,
): Promise<void> {
  let sink: MessageSink | undefined;
  // The view being received, checked as its octets pass (§60.10.4; 'check-view').
  let checker: ViewChecker | undefined;
  let client: Identification = { domain: '', ip, proof: 'fail', csv: 'none' };
  const now = o.now ?? ((): number => Math.floor(Date.now() / 1000));

  // The per-message actions answer at once when the decider and the sink do (the hot
  // path: no promise of our own per RCPT, DATA or chunk); the rest are `decide`'s.
  const perform = (
    a: TransferServerAction,
  ): MaybePromise<TransferServerEvent | undefined> | Promise<void> => {
    switch (a.type) {
      case 'store-chunk':
        checker?.push(a.bytes);
        return sink?.write(a.bytes) ?? undefined;
      case 'check-view': {
        const { view, size, digest, signers, held } = a;
        checker = new ViewChecker(view, { size, digest, signers }, held);
        return undefined;
      }
      case 'decide-recipient':
        return then(o.decider.decideRecipient(a), (decision): TransferServerEvent => ({
          type: 'recipient-decision',
          decision,
        }));
      case 'choose-view':
        return then(o.decider.chooseView(a, client), (r): TransferServerEvent => {
          sink = r.sink;
          return { type: 'view-choice', choice: r.choice };
        });
      default:
        return decide(a);
    }
  };

  const decide = async (a: TransferServerAction): Promise<TransferServerEvent | undefined> => {
    switch (a.type) {
      case 'verify-proof':
        return { type: 'proof-result', result: await verifyProof(o.resolveTxt, a, now()) };
      case 'lookup-txt':
        return { type: 'txt-result', answer: await o.resolveTxt(a.name) };
      case 'reputation': {
        client = { domain: a.domain, ip: a.ip, proof: a.proof, csv: a.csv };
        const verdict = checkVerdict(await o.reputation?.(client));
        // "Both results are passed to a pluggable reputation hook and recorded on the
        // message" (issue 4): the verdict travels with the identification (§60.8.3).
        if (verdict !== undefined) client = { ...client, reputation: verdict };
        return undefined;
      }
      case 'prove':
        return prove(o.userKeys, a);
      case 'decide-message': {
        const s = sink;
        sink = undefined;
        const verdict = checker?.finish();
        checker = undefined;
        // "A receiver MUST NOT hold, show or accept octets that are not the view it asked
        // for of the announced message" (§60.10.4): the decider never sees them.
        if (verdict !== undefined && !verdict.ok) {
          if (s !== undefined && o.decider.discard) await o.decider.discard(s);
          return { type: 'view-invalid', reason: verdict.reason };
        }
        return { type: 'message-decision', answers: await o.decider.decideMessage(a, s, client) };
      }
      case 'cookie':
        return { type: 'cookie-state', state: await o.decider.cookie(a) };
      default:
        return undefined; // the loop performs the base actions
    }
  };

  return runSession<TransferServerState, TransferServerEvent, TransferServerAction>(socket, {
    initial: initialTransferServer(o.config),
    reducer: transferServer,
    // "The greeting names the version, the service, the server and a fresh challenge"
    // (§60.8): 18 random octets, above the 16 the reducer requires.
    connected: {
      type: 'connected',
      challenge: toBase64url(randomBytes(18)),
      ip,
      binding: proveBinding(socket),
    },
    perform,
    ended() {
      // A message cut off mid-chunk (or refused) is never decided on: drop its octets.
      if (sink && o.decider.discard) void o.decider.discard(sink).catch(o.onError);
      sink = undefined;
    },
    ...(o.timeoutScale === undefined ? {} : { timeoutScale: o.timeoutScale }),
    ...(o.onError === undefined ? {} : { onError: o.onError }),
  });
}
