/**
 * The transfer-server session host (src/core/session/transfer-server.ts on a socket): the
 * generic loop (session-loop.ts) plus what only transfer asks for — the HELLO proof
 * against the client domain's DNS key, the CSV TXT lookup, the reputation hook, and the
 * pluggable decider (`TransferDecider`), which makes every decision about mail.
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { lookupDomainKey, type TxtResolver } from '../core/keys/index.ts';
import { ed25519, toBase64url } from '../core/sign/index.ts';
import {
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
  write(bytes: Uint8Array): Promise<void>;
}

/** The receiving side's pluggable decisions (§60.10.3), asynchronous for real storage. */
export interface TransferDecider {
  decideRecipient(a: Act<'decide-recipient'>): Promise<RecipientDecision>;
  /** The view wanted; when a view is chosen, `sink` receives the chunks. */
  chooseView(a: Act<'choose-view'>): Promise<{ choice: ViewChoice; sink?: MessageSink }>;
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
}

/** The reputation hook: both identification results (§60.8), once per HELLO. */
export type ReputationHook = (r: Identification) => void;

export interface TransferHostOptions {
  readonly config: TransferServerConfig;
  readonly decider: TransferDecider;
  readonly resolveTxt: TxtResolver;
  readonly reputation?: ReputationHook;
  /** Unix seconds now (key expiry checks). */
  readonly now?: () => number;
  /** Multiplies every state timeout (tests shorten them); default 1. */
  readonly timeoutScale?: number;
  /** Called with any host-side failure (logged by the caller). */
  readonly onError?: (e: unknown) => void;
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

/** Runs one transfer session on `socket` to its end; resolves when it is closed. */
export function runTransferSession(
  socket: Duplex,
  ip: string,
  o: TransferHostOptions,
): Promise<void> {
  let sink: MessageSink | undefined;
  let client: Identification = { domain: '', ip, proof: 'fail', csv: 'none' };
  const now = o.now ?? ((): number => Math.floor(Date.now() / 1000));

  const perform = async (a: TransferServerAction): Promise<TransferServerEvent | undefined> => {
    switch (a.type) {
      case 'store-chunk':
        if (sink) await sink.write(a.bytes);
        return undefined;
      case 'verify-proof':
        return { type: 'proof-result', result: await verifyProof(o.resolveTxt, a, now()) };
      case 'lookup-txt':
        return { type: 'txt-result', answer: await o.resolveTxt(a.name) };
      case 'reputation':
        client = { domain: a.domain, ip: a.ip, proof: a.proof, csv: a.csv };
        o.reputation?.(client);
        return undefined;
      case 'decide-recipient':
        return { type: 'recipient-decision', decision: await o.decider.decideRecipient(a) };
      case 'choose-view': {
        const r = await o.decider.chooseView(a);
        sink = r.sink;
        return { type: 'view-choice', choice: r.choice };
      }
      case 'decide-message': {
        const s = sink;
        sink = undefined;
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
    connected: { type: 'connected', challenge: toBase64url(randomBytes(18)), ip },
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
