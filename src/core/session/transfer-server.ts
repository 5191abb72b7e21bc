/**
 * The transfer server (receiving side) as a pure reducer (docs/protocol.md
 * §60.10): `transferServer(state, event) → { state, actions }`. It never throws for anything
 * a peer or host can send: every problem becomes a coded reply.
 *
 * What it does not decide itself, it asks the host for with an action and learns from an
 * event: the proof check and the CSV lookup (then the reputation hook), and the pluggable
 * decider — one answer per RCPT, the view wanted at DATA, one answer per recipient after
 * the data, cookie states for STATUS / GIVEUP — and, for PROVE (§60.10.8), the signature of a
 * recipient key this endpoint holds. The decider, not this reducer, keeps cookies;
 * it gets the authenticated client domain with every cookie, because "a cookie issued to
 * one client domain MUST be answered, for any other domain, exactly like an unknown cookie"
 * (§60.10.6).
 */
import { tryParseAddress } from '../address/index.ts';
import { fromBase64url, toBase64url } from '../sign/index.ts';
import { DOMAIN_RE, SELECTOR_RE } from '../sign/field.ts';
import type { TxtAnswer } from '../keys/index.ts';
import { DECIMAL_RE, VERBS, isWellFormedCommand, type Command, type Verb } from '../wire/index.ts';
import {
  EAGER_MAX,
  errorReply,
  limitsOf,
  proofInput,
  proveInput,
  reply,
  type BaseAction,
  type BaseEvent,
  type ServerConfig,
  type StateInfo,
  type Step,
  serverSteps,
} from './common.ts';
import { csvName, evaluateCsv, type CsvResult } from './csv.ts';
import type { CookieState, FinalAnswer, RecipientDecision, View, ViewChoice } from './decider.ts';
import { sameAnnouncement, type HeldView } from './view.ts';

export type ProofResult = 'pass' | 'fail' | 'temperror';

export type TransferServerPhase =
  | 'start'
  | 'hello'
  | 'verifying'
  | 'ready'
  | 'rcpt-wait'
  | 'recipients'
  | 'view-wait'
  | 'data'
  | 'decide-wait'
  | 'cookie-wait'
  | 'prove-wait'
  | 'closed';

/**
 * THE table of the transfer server's states (§60.10.1). Timeouts are seconds of silence
 * (no complete command or chunk) before `421 4.4.2`; in *-wait states they bound the host.
 */
export const TRANSFER_SERVER_STATES: Readonly<Record<TransferServerPhase, StateInfo<Verb>>> = {
  start: { timeout: 0, allowed: [], description: 'connection accepted; greeting not yet sent' },
  hello: {
    timeout: 60,
    allowed: ['HELLO', 'NOOP', 'QUIT'],
    description: 'greeting with challenge sent; waiting for HELLO',
  },
  verifying: {
    timeout: 30,
    allowed: [],
    description: 'host checks the proof and looks up the CSV record',
  },
  ready: {
    timeout: 300,
    allowed: ['RCPT', 'DATA', 'STATUS', 'GIVEUP', 'PROVE', 'RSET', 'NOOP', 'QUIT'],
    description: 'client authenticated; no transaction (DATA only with cookie=)',
  },
  'rcpt-wait': { timeout: 30, allowed: [], description: 'decider answers one RCPT' },
  recipients: {
    timeout: 300,
    allowed: ['RCPT', 'DATA', 'RSET', 'NOOP', 'QUIT'],
    description: 'at least one recipient accepted; more RCPT or DATA',
  },
  'view-wait': { timeout: 30, allowed: [], description: 'decider chooses the view for DATA' },
  data: { timeout: 120, allowed: [], description: 'receiving chunks until LAST' },
  'decide-wait': {
    timeout: 120,
    allowed: [],
    description: 'decider answers each recipient after the data',
  },
  'cookie-wait': { timeout: 30, allowed: [], description: 'decider answers STATUS or GIVEUP' },
  'prove-wait': {
    timeout: 30,
    allowed: [],
    description: "host signs the prove input with the recipient's key (§60.10.8)",
  },
  closed: { timeout: 0, allowed: [], description: 'QUIT, fatal error or timeout; nothing more' },
};

interface Transaction {
  readonly size: number;
  readonly digest: string;
  readonly signers: readonly string[];
  readonly cookie?: string;
  readonly view?: View;
  readonly received: number;
  /** `received` when the current chunk began: did the chunk make progress? */
  readonly mark?: number;
  /** The DATA said send=full: the full view is on its way, whatever view is chosen. */
  readonly eager?: boolean;
}

export interface TransferServerState {
  readonly phase: TransferServerPhase;
  readonly config: TransferServerConfig;
  readonly challenge: string;
  readonly ip: string;
  /**
   * The connection's PROVE binding (§60.10.8): base64url of the TLS exporter value, '' on a
   * plaintext (test) session. A host fact, given in the 'connected' event.
   */
  readonly binding: string;
  /** The authenticated client domain (A-label), once HELLO succeeded. */
  readonly domain?: string;
  readonly hello?: {
    readonly domain: string;
    readonly selector: string;
    readonly proof?: ProofResult;
    readonly csv?: CsvResult;
  };
  readonly recipients: readonly string[];
  readonly pendingRcpt?: string;
  /** The pending RCPT carried `redirect=failed` (§60.10.2). */
  readonly pendingRedirectFailed?: boolean;
  /** The recipient of a PROVE the host is signing for (§60.10.8). */
  readonly pendingProve?: string;
  readonly tx?: Transaction;
  readonly cookie?: { readonly op: 'status' | 'giveup'; readonly value: string };
  /**
   * The chunks of a refused eager DATA are arriving: they are read and dropped without a
   * reply (§60.10.4); at most this many octets more, up to the LAST chunk.
   */
  readonly discard?: number;
  readonly errors: number;
}

export interface TransferServerConfig extends ServerConfig {
  /** Refuse HELLO when the CSV check fails (not merely report it). Default false. */
  readonly requireCsv?: boolean;
  /**
   * The largest DATA taken with send=full (eager data, §60.10.4), announced in the HELLO
   * reply as `eager=`; at most EAGER_MAX. Default 0: none — the receiver chooses every view.
   */
  readonly eagerMax?: number;
}

/** What this server announces and takes as eager data. */
const eagerOf = (c: TransferServerConfig): number => Math.min(c.eagerMax ?? 0, EAGER_MAX);

export type TransferServerAction =
  | BaseAction
  /** Look up `<selector>._nmtpkey.<domain>` and verify `signature` over `input` (§60.8.1). */
  | {
      readonly type: 'verify-proof';
      readonly domain: string;
      readonly selector: string;
      readonly input: Uint8Array;
      readonly signature: Uint8Array;
    }
  | { readonly type: 'lookup-txt'; readonly name: string }
  /** The reputation hook: both identification results, once, before HELLO is answered. */
  | {
      readonly type: 'reputation';
      readonly domain: string;
      readonly ip: string;
      readonly proof: ProofResult;
      readonly csv: CsvResult;
    }
  | {
      readonly type: 'decide-recipient';
      readonly domain: string;
      readonly rcpt: string;
      /**
       * The RCPT carried `redirect=failed`: the sender followed a 351 for this recipient and
       * could not deliver there (§60.10.2). Present only when true. The decider should not
       * answer redirect again; if it does, the reducer answers 450 instead.
       */
      readonly redirectFailed?: true;
    }
  | {
      readonly type: 'choose-view';
      readonly domain: string;
      readonly recipients: readonly string[];
      readonly size: number;
      readonly digest: string;
      readonly signers: readonly string[];
      readonly cookie?: string;
    }
  /**
   * The view about to arrive (§60.10.4): the host checks its octets (`ViewChecker`,
   * view.ts) as they are stored, and answers the 'decide-message' that follows with
   * 'view-invalid' instead of asking the decider when they are not that view.
   */
  | {
      readonly type: 'check-view';
      readonly view: View;
      readonly size: number;
      readonly digest: string;
      readonly signers: readonly string[];
      readonly held?: HeldView;
    }
  | {
      readonly type: 'decide-message';
      readonly domain: string;
      readonly recipients: readonly string[];
      readonly view: View;
      readonly size: number;
      readonly digest: string;
      readonly signers: readonly string[];
      readonly received: number;
      readonly cookie?: string;
    }
  | {
      readonly type: 'cookie';
      readonly op: 'status' | 'giveup';
      readonly domain: string;
      readonly cookie: string;
    }
  /**
   * PROVE (§60.10.8): sign `input` (the prove input, byte for byte) with the key this
   * endpoint holds for `rcpt` (canonical address); answer 'proved'.
   */
  | { readonly type: 'prove'; readonly rcpt: string; readonly input: Uint8Array };

export type TransferServerEvent =
  | BaseEvent
  /**
   * The connection is up: a fresh challenge (≥ 16 random octets, base64url), the peer IP
   * and the PROVE binding (base64url TLS exporter value, §60.10.8; absent or '' when the
   * session is plaintext).
   */
  | {
      readonly type: 'connected';
      readonly challenge: string;
      readonly ip: string;
      readonly binding?: string;
    }
  | { readonly type: 'proof-result'; readonly result: ProofResult }
  | { readonly type: 'txt-result'; readonly answer: TxtAnswer }
  | { readonly type: 'recipient-decision'; readonly decision: RecipientDecision }
  | { readonly type: 'view-choice'; readonly choice: ViewChoice }
  /** One answer per recipient of the transaction, in RCPT order. */
  | { readonly type: 'message-decision'; readonly answers: readonly FinalAnswer[] }
  /** The answer to 'decide-message' when the octets were not the view (see 'check-view'). */
  | { readonly type: 'view-invalid'; readonly reason: string }
  | { readonly type: 'cookie-state'; readonly state: CookieState }
  /** The host's answer to 'prove': the public key and signature, or no key for `rcpt`. */
  | { readonly type: 'proved'; readonly key: Uint8Array; readonly signature: Uint8Array }
  | { readonly type: 'proved'; readonly none: true };

type S = TransferServerState;
type A = TransferServerAction;
type Out = Step<S, A>;

const {
  enter,
  close,
  refuse,
  badArgument,
  wireError: onWireError,
} = serverSteps<S['phase'], S, A>(TRANSFER_SERVER_STATES, 'closed');

/** "cookie = 1*128( ALPHA / DIGIT / "-" / "_" )" (§60.4). */
const COOKIE_RE = /^[A-Za-z0-9_-]{1,128}$/;

export function initialTransferServer(config: TransferServerConfig): S {
  return {
    phase: 'start',
    config,
    challenge: '',
    ip: '',
    binding: '',
    recipients: [],
    errors: 0,
  };
}

/** The reducer. Pure: same state and event, same result. */
export function transferServer(state: S, event: TransferServerEvent): Out {
  if (state.phase === 'closed') return { state, actions: [] };
  switch (event.type) {
    case 'connected':
      if (state.phase !== 'start') return { state, actions: [] };
      return enter(
        {
          ...state,
          phase: 'hello',
          challenge: event.challenge,
          ip: event.ip,
          binding: event.binding ?? '',
        },
        [
          {
            type: 'reply',
            // "The greeting names the version, the service, the server and a fresh challenge"
            // (§60.8).
            reply: reply(220, '2.0.0', {
              version: 'NMTP/1',
              service: 'transfer',
              server: state.config.serverName,
              challenge: event.challenge,
            }),
          },
        ],
      );
    case 'closed':
      return { state: { ...state, phase: 'closed' }, actions: [] };
    case 'timeout':
      return close(state, [
        { type: 'reply', reply: errorReply(421, '4.4.2', 'NMTP_ERR_TRANSPORT_TIMEOUT') },
      ]);
    case 'wire':
      return onWire(state, event.item);
    case 'proof-result':
    case 'txt-result':
      return onIdentification(state, event);
    case 'recipient-decision':
      return onRecipientDecision(state, event.decision);
    case 'view-choice':
      return onViewChoice(state, event.choice);
    case 'message-decision':
      return onMessageDecision(state, event.answers);
    case 'view-invalid':
      return onViewInvalid(state, event.reason);
    case 'cookie-state':
      return onCookieState(state, event.state);
    case 'proved':
      return onProved(state, event);
    default:
      // An event of another machine (a host bug): ignored, never thrown.
      return { state, actions: [] };
  }
}

// --- helpers ------------------------------------------------------------------------------

/** A host answer that arrives in the wrong state is a host bug; ignore rather than throw. */
function ignore(state: S): Out {
  return { state, actions: [] };
}

const noTransaction = {
  recipients: [],
  tx: undefined,
  pendingRcpt: undefined,
  pendingRedirectFailed: undefined,
} as const;

// --- wire items ---------------------------------------------------------------------------

/** The chunk just ended carried octets, all within the announced size (§60.9). */
function madeProgress(tx: Transaction | undefined): boolean {
  return tx !== undefined && tx.received > (tx.mark ?? 0) && tx.received <= tx.size;
}

function onWire(state: S, item: Extract<BaseEvent, { type: 'wire' }>['item']): Out {
  switch (item.kind) {
    case 'error':
      return onWireError(state, item.error, item.fatal);
    case 'reply':
      // A server never reads replies; the host decodes with role 'server'.
      return ignore(state);
    case 'chunk':
      // "The server reads and discards the chunks of an eager DATA it refused, up to the
      // LAST one, and answers none of them" (§60.10.4).
      if (state.discard !== undefined) return { state, actions: [] };
      if (state.phase !== 'data') {
        // The codec still frames the body; we answer once, at the header, and drop it.
        return refuse(
          state,
          errorReply(503, '5.5.1', 'NMTP_ERR_WIRE_UNEXPECTED_CHUNK', { offset: item.offset }),
        );
      }
      if (state.tx === undefined) return { state, actions: [] };
      return { state: { ...state, tx: { ...state.tx, mark: state.tx.received } }, actions: [] };
    case 'chunk-data':
      if (state.discard !== undefined) {
        const left = state.discard - item.bytes.length;
        if (left >= 0) return { state: { ...state, discard: left }, actions: [] };
        // More than the DATA announced: the sender lied, and discarding is bounded.
        return close({ ...state, discard: undefined }, [
          {
            type: 'reply',
            reply: errorReply(554, '5.6.0', 'NMTP_ERR_TRANSPORT_SIZE_MISMATCH', {}, 'eager data'),
          },
        ]);
      }
      if (state.phase !== 'data' || state.tx === undefined) return ignore(state);
      {
        const received = state.tx.received + item.bytes.length;
        // Octets beyond the announced size are counted but never stored: the host's cost is
        // bounded by `size` even when the sender lies (the answer comes at LAST, §60.10.4).
        return {
          state: { ...state, tx: { ...state.tx, received } },
          actions: received <= state.tx.size ? [{ type: 'store-chunk', bytes: item.bytes }] : [],
        };
      }
    case 'chunk-end':
      if (state.discard !== undefined) {
        return { state: item.last ? { ...state, discard: undefined } : state, actions: [] };
      }
      if (state.phase !== 'data') return { state, actions: [] };
      // "The timer restarts on every complete command, complete chunk or host answer —
      // never on a partial line or partial chunk" (§60.9): a sender that keeps sending
      // complete chunks is not idle, however long the message takes. "Only a chunk that
      // carries octets within the announced size counts": empty chunks, or octets past
      // `size`, cannot keep a session alive for ever.
      if (!item.last) return madeProgress(state.tx) ? enter(state, []) : { state, actions: [] };
      return onDataEnd(state);
    case 'command':
      return onCommand(state, item.command);
  }
}

function onCommand(before: S, c: Command): Out {
  // A command where the chunks of a refused eager DATA were due: the client did not send
  // them; nothing more is discarded.
  const state = before.discard === undefined ? before : { ...before, discard: undefined };
  const out = onCommandIn(state, c);
  if (c.verb !== 'DATA' || c.params.send !== 'full' || out.state.phase === 'view-wait') return out;
  if (out.state.phase === 'closed') return out;
  // A refused eager DATA: its chunks are already on their way (§60.10.4).
  const size = Number(c.params.size);
  if (!DECIMAL_RE.test(c.params.size ?? '') || size > eagerOf(state.config)) {
    // Nothing bounds what would follow: one reply (already in `out`), then close.
    return close(out.state, [...out.actions]);
  }
  return { state: { ...out.state, discard: size }, actions: out.actions };
}

function onCommandIn(state: S, c: Command): Out {
  if (!isWellFormedCommand(c)) {
    return refuse(state, errorReply(501, '5.5.2', 'NMTP_ERR_WIRE_SYNTAX'));
  }
  const info = TRANSFER_SERVER_STATES[state.phase];
  if (!VERBS[c.verb].services.includes('transfer')) {
    return refuse(state, errorReply(502, '5.5.1', 'NMTP_ERR_TRANSPORT_WRONG_SERVICE'));
  }
  if (!info.allowed.includes(c.verb)) {
    // "DATA before any accepted recipient" has its own code, for people reading logs.
    if (c.verb === 'DATA' && state.phase === 'ready') {
      return refuse(state, errorReply(503, '5.5.1', 'NMTP_ERR_TRANSPORT_NO_RECIPIENTS'));
    }
    return refuse(state, errorReply(503, '5.5.1', 'NMTP_ERR_TRANSPORT_OUT_OF_ORDER'));
  }
  switch (c.verb) {
    case 'QUIT':
      return close(state, [{ type: 'reply', reply: reply(221, '2.0.0') }]);
    case 'NOOP':
      return enter(state, [{ type: 'reply', reply: reply(250, '2.0.0') }]);
    case 'RSET':
      return enter({ ...state, ...noTransaction, phase: 'ready' }, [
        { type: 'reply', reply: reply(250, '2.0.0') },
      ]);
    case 'HELLO':
      return onHello(state, c);
    case 'RCPT':
      return onRcpt(state, c);
    case 'DATA':
      return onData(state, c);
    case 'PROVE':
      return onProve(state, c);
    case 'STATUS':
    case 'GIVEUP': {
      const value = c.args[0]!;
      const op = c.verb === 'STATUS' ? 'status' : 'giveup';
      if (!COOKIE_RE.test(value)) {
        // A malformed cookie is just another cookie we never issued.
        return refuse(state, unknownCookie(value));
      }
      return enter({ ...state, phase: 'cookie-wait', cookie: { op, value } }, [
        { type: 'cookie', op, domain: state.domain!, cookie: value },
      ]);
    }
    default:
      return refuse(state, errorReply(502, '5.5.1', 'NMTP_ERR_TRANSPORT_WRONG_SERVICE'));
  }
}

// --- HELLO --------------------------------------------------------------------------------

function onHello(state: S, c: Command): Out {
  const domain = c.args[0]!;
  const selector = c.params.sel!;
  // "client-domain is the A-label form, lower case" (§60.8.1): the form signatures use.
  if (!DOMAIN_RE.test(domain))
    return badArgument(state, 'domain must be a lower-case A-label name');
  if (!SELECTOR_RE.test(selector)) return badArgument(state, 'bad selector');
  const signature = fromBase64url(c.params.proof!, 64);
  if (signature === undefined) return badArgument(state, 'proof must be 64 octets in base64url');
  return enter({ ...state, phase: 'verifying', hello: { domain, selector } }, [
    {
      type: 'verify-proof',
      domain,
      selector,
      input: proofInput(state.challenge, state.config.serverName, domain),
      signature,
    },
    { type: 'lookup-txt', name: csvName(domain) },
  ]);
}

function onIdentification(
  state: S,
  event: Extract<TransferServerEvent, { type: 'proof-result' | 'txt-result' }>,
): Out {
  if (state.phase !== 'verifying' || state.hello === undefined) return ignore(state);
  const hello =
    event.type === 'proof-result'
      ? { ...state.hello, proof: event.result }
      : { ...state.hello, csv: evaluateCsv(event.answer, state.ip) };
  if (hello.proof === undefined || hello.csv === undefined) {
    return { state: { ...state, hello }, actions: [] };
  }
  const { domain, proof, csv } = hello;
  const actions: A[] = [{ type: 'reputation', domain, ip: state.ip, proof, csv }];
  const next = { ...state, hello };
  // "A failed proof ends the session: the challenge is used up" (§60.8.1), so a client
  // cannot try keys or replay proofs against the same challenge.
  if (proof === 'fail') {
    return close(next, [
      ...actions,
      {
        type: 'reply',
        reply: errorReply(535, '5.7.8', 'NMTP_ERR_TRANSPORT_PROOF_INVALID', { domain }),
      },
    ]);
  }
  if (proof === 'temperror') {
    return close(next, [
      ...actions,
      {
        type: 'reply',
        reply: errorReply(454, '4.7.0', 'NMTP_ERR_TRANSPORT_PROOF_KEY_UNAVAILABLE', { domain }),
      },
    ]);
  }
  if (csv === 'fail' && state.config.requireCsv === true) {
    return close(next, [
      ...actions,
      {
        type: 'reply',
        reply: errorReply(550, '5.7.1', 'NMTP_ERR_TRANSPORT_CSV_FAIL', { domain, csv }),
      },
    ]);
  }
  return enter({ ...next, phase: 'ready', domain }, [
    ...actions,
    {
      type: 'reply',
      // "A server that takes eager data says so in its HELLO reply" (§60.10.4).
      reply: reply(250, '2.0.0', {
        domain,
        proof,
        csv,
        ...(eagerOf(state.config) > 0 ? { eager: String(eagerOf(state.config)) } : {}),
      }),
    },
  ]);
}

// --- RCPT ---------------------------------------------------------------------------------

/**
 * The canonical form of an address argument (§20.6.1), or the refusal RCPT and PROVE give a
 * malformed one: `501 5.1.3 rcpt=<as sent> err=NMTP_ERR_TRANSPORT_BAD_ARGUMENT # <code>`.
 */
/**
 * Parsed RCPT/PROVE arguments: the canonical address, or the error code. Parsing (IDNA,
 * confusables) is pure and was a tenth of a receiver's CPU per 4 KB message; a sender
 * writes to the same addresses again and again. Bounded: emptied when full.
 */
const parsedAddresses = new Map<string, { canonical: string } | { code: string }>();
const PARSED_ADDRESSES_MAX = 4096;

function canonicalAddress(state: S, raw: string): { rcpt: string } | { refused: Out } {
  let parsed = parsedAddresses.get(raw);
  if (parsed === undefined) {
    const p = tryParseAddress(raw, { mode: 'wire' });
    parsed = p.ok ? { canonical: p.address.canonical } : { code: p.error.code };
    if (parsedAddresses.size >= PARSED_ADDRESSES_MAX) parsedAddresses.clear();
    parsedAddresses.set(raw, parsed);
  }
  if ('canonical' in parsed) return { rcpt: parsed.canonical };
  return {
    refused: refuse(
      state,
      errorReply(501, '5.1.3', 'NMTP_ERR_TRANSPORT_BAD_ARGUMENT', { rcpt: raw }, parsed.code),
    ),
  };
}

function onRcpt(state: S, c: Command): Out {
  const redirect = c.params.redirect;
  // "Any other value of redirect is 501 5.5.4 err=NMTP_ERR_TRANSPORT_BAD_ARGUMENT" (§60.10.2).
  if (redirect !== undefined && redirect !== 'failed') {
    return badArgument(state, 'redirect takes only the value failed');
  }
  const address = canonicalAddress(state, c.args[0]!);
  if ('refused' in address) return address.refused;
  const rcpt = address.rcpt;
  if (state.recipients.includes(rcpt)) {
    return refuse(
      state,
      errorReply(501, '5.5.4', 'NMTP_ERR_TRANSPORT_DUPLICATE_RECIPIENT', { rcpt }),
    );
  }
  if (state.recipients.length >= limitsOf(state.config).maxRecipients) {
    // Temporary: "the sender sends the remaining recipients in another transaction".
    return refuse(
      state,
      errorReply(452, '4.5.3', 'NMTP_ERR_TRANSPORT_TOO_MANY_RECIPIENTS', { rcpt }),
    );
  }
  const redirectFailed = redirect === 'failed';
  return enter(
    { ...state, phase: 'rcpt-wait', pendingRcpt: rcpt, pendingRedirectFailed: redirectFailed },
    [
      {
        type: 'decide-recipient',
        domain: state.domain!,
        rcpt,
        ...(redirectFailed ? { redirectFailed: true as const } : {}),
      },
    ],
  );
}

function afterRcpt(recipients: readonly string[]): TransferServerPhase {
  return recipients.length > 0 ? 'recipients' : 'ready';
}

function onRecipientDecision(state: S, d: RecipientDecision): Out {
  if (state.phase !== 'rcpt-wait' || state.pendingRcpt === undefined) return ignore(state);
  const rcpt = state.pendingRcpt;
  const redirectFailed = state.pendingRedirectFailed === true;
  const base = { ...state, pendingRcpt: undefined, pendingRedirectFailed: undefined };
  const answer = (r: ReturnType<typeof reply>, recipients = state.recipients): Out =>
    enter({ ...base, recipients, phase: afterRcpt(recipients) }, [{ type: 'reply', reply: r }]);
  switch (d.kind) {
    case 'accept':
      return answer(reply(250, '2.1.5', { rcpt }), [...state.recipients, rcpt]);
    case 'reject':
      return answer(
        errorReply(
          550,
          d.enhanced ?? '5.1.1',
          'NMTP_ERR_TRANSPORT_RECIPIENT_REJECTED',
          { rcpt },
          d.text ?? '',
        ),
      );
    case 'unavailable':
      return answer(
        errorReply(
          450,
          d.enhanced ?? '4.2.1',
          'NMTP_ERR_TRANSPORT_RECIPIENT_UNAVAILABLE',
          { rcpt },
          d.text ?? '',
        ),
      );
    case 'redirect':
      // "A server MUST NOT answer 351 to an RCPT that carries redirect=failed": a decider
      // that still answers redirect is answered 450, "which bounds a redirect loop to one
      // round" (§60.10.2).
      if (redirectFailed) {
        return answer(
          errorReply(450, '4.2.1', 'NMTP_ERR_TRANSPORT_RECIPIENT_UNAVAILABLE', { rcpt }),
        );
      }
      // "351: not part of this transaction; deliver to host:port after the endpoint proves
      // the key with this fingerprint" (§60.10.2).
      return answer(
        reply(351, '2.1.5', { rcpt, redirect: hostPort(d.host, d.port), key: d.fingerprint }),
      );
  }
}

/** `host:port`, an IPv6 literal in brackets (RFC 3986 authority form), as §60.10.2 shows. */
function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

// --- DATA ---------------------------------------------------------------------------------

function onData(state: S, c: Command): Out {
  const { size: sizeText, digest, signers: signerText, cookie } = c.params;
  if (!DECIMAL_RE.test(sizeText!)) return badArgument(state, 'size must be a decimal number');
  const size = Number(sizeText);
  if (fromBase64url(digest!, 32) === undefined)
    return badArgument(state, 'digest must be 32 octets in base64url');
  const signers = signerText === undefined ? [] : signerText.split(',');
  if (signers.some((s) => s.length === 0)) return badArgument(state, 'empty signer');
  const send = c.params.send;
  if (send !== undefined && send !== 'full') return badArgument(state, 'send takes only full');
  if (send === 'full' && size > eagerOf(state.config)) {
    return badArgument(state, `send=full only up to ${eagerOf(state.config)} octets`);
  }
  // "DATA with cookie= is allowed only outside a transaction; without it, only after an
  // accepted RCPT" (§60.10.4).
  if (cookie !== undefined && state.phase !== 'ready') {
    return refuse(state, errorReply(503, '5.5.1', 'NMTP_ERR_TRANSPORT_OUT_OF_ORDER'));
  }
  if (cookie === undefined && state.recipients.length === 0) {
    return refuse(state, errorReply(503, '5.5.1', 'NMTP_ERR_TRANSPORT_NO_RECIPIENTS'));
  }
  if (cookie !== undefined && !COOKIE_RE.test(cookie)) return refuse(state, unknownCookie(cookie));
  if (size > limitsOf(state.config).maxMessage) {
    return refuse(
      state,
      errorReply(552, '5.3.4', 'NMTP_ERR_TRANSPORT_MESSAGE_TOO_LARGE', { size }),
    );
  }
  const tx: Transaction = {
    size,
    digest: digest!,
    signers,
    received: 0,
    ...(cookie === undefined ? {} : { cookie }),
    ...(send === 'full' ? { eager: true } : {}),
  };
  return enter({ ...state, phase: 'view-wait', tx }, [
    {
      type: 'choose-view',
      domain: state.domain!,
      recipients: state.recipients,
      size,
      digest: digest!,
      signers,
      ...(cookie === undefined ? {} : { cookie }),
    },
  ]);
}

function onViewChoice(state: S, choice: ViewChoice): Out {
  if (state.phase !== 'view-wait' || state.tx === undefined) return ignore(state);
  const cookie = state.tx.cookie;
  // A refused eager DATA: its chunks follow, to be dropped (§60.10.4).
  const ready = {
    ...state,
    phase: 'ready' as const,
    tx: undefined,
    ...(state.tx.eager === true ? { discard: state.tx.size } : {}),
  };
  if (choice.kind === 'unknown-cookie') return refuse(ready, unknownCookie(cookie ?? ''));
  if (choice.kind === 'not-wanted') {
    return refuse(
      ready,
      errorReply(503, '5.5.1', 'NMTP_ERR_TRANSPORT_VIEW_NOT_WANTED', { cookie: cookie ?? '' }),
    );
  }
  // "Every DATA on a cookie MUST announce the size, digest and signers of the DATA that
  // created the cookie: what the receiver agreed to is that message" (§60.10.6).
  if (cookie !== undefined && choice.announced !== undefined) {
    if (!sameAnnouncement(state.tx, choice.announced)) {
      return refuse(
        ready,
        errorReply(554, '5.6.0', 'NMTP_ERR_TRANSPORT_COOKIE_MISMATCH', { cookie }),
      );
    }
  }
  // "With send=full the 354 names view=full: that is what the client is sending; a
  // receiver that wanted less keeps what it needs" (§60.10.4).
  const view = state.tx.eager === true ? 'full' : choice.view;
  const { size, digest, signers } = state.tx;
  return enter({ ...state, phase: 'data', tx: { ...state.tx, view } }, [
    {
      type: 'check-view',
      view,
      size,
      digest,
      signers,
      ...(cookie !== undefined && choice.held !== undefined ? { held: choice.held } : {}),
    },
    { type: 'reply', reply: reply(354, '2.0.0', { view }) },
  ]);
}

/**
 * "A receiver MUST NOT hold, show or accept octets that are not the view it asked for of
 * the announced message": `554 5.6.0 view=<v> err=NMTP_ERR_TRANSPORT_VIEW_INVALID`, the
 * transaction ends, the session continues (§60.10.4).
 */
function onViewInvalid(state: S, reason: string): Out {
  if (state.phase !== 'decide-wait' || state.tx === undefined) return ignore(state);
  const { cookie, view } = state.tx;
  return refuse(
    { ...state, ...noTransaction, phase: 'ready' },
    errorReply(
      554,
      '5.6.0',
      'NMTP_ERR_TRANSPORT_VIEW_INVALID',
      { ...(cookie === undefined ? {} : { cookie }), view: view ?? 'full' },
      reason,
    ),
  );
}

function onDataEnd(state: S): Out {
  const tx = state.tx!;
  // "The full view MUST carry exactly size octets; any other view at most size" (§60.10.4).
  const ok = tx.view === 'full' ? tx.received === tx.size : tx.received <= tx.size;
  if (!ok) {
    return refuse(
      { ...state, ...noTransaction, phase: 'ready' },
      errorReply(554, '5.6.0', 'NMTP_ERR_TRANSPORT_SIZE_MISMATCH', {
        size: tx.size,
        received: tx.received,
      }),
    );
  }
  return enter({ ...state, phase: 'decide-wait' }, [
    {
      type: 'decide-message',
      domain: state.domain!,
      recipients: state.recipients,
      view: tx.view!,
      size: tx.size,
      digest: tx.digest,
      signers: tx.signers,
      received: tx.received,
      ...(tx.cookie === undefined ? {} : { cookie: tx.cookie }),
    },
  ]);
}

function onMessageDecision(state: S, answers: readonly FinalAnswer[]): Out {
  if (state.phase !== 'decide-wait' || state.tx === undefined) return ignore(state);
  const cookie = state.tx.cookie;
  const ctx = (rcpt: string): Record<string, string> =>
    cookie === undefined ? { rcpt } : { cookie, rcpt };
  // "After the last chunk the server sends exactly one reply per accepted recipient, in
  // RCPT order, each naming its recipient" (§60.10.5).
  const actions: A[] = answers.map((a): A => {
    switch (a.kind) {
      case 'accepted':
        return { type: 'reply', reply: reply(250, '2.0.0', { ...ctx(a.rcpt), id: a.id }) };
      case 'rejected':
        return {
          type: 'reply',
          reply: errorReply(
            550,
            a.enhanced ?? '5.7.1',
            'NMTP_ERR_TRANSPORT_RECIPIENT_REJECTED',
            ctx(a.rcpt),
            a.text ?? '',
          ),
        };
      case 'deferred':
        return {
          type: 'reply',
          reply: reply(350, '2.0.0', {
            rcpt: a.rcpt,
            cookie: a.cookie,
            min: a.min,
            max: a.max,
            expires: a.expires,
          }),
        };
    }
  });
  return enter({ ...state, ...noTransaction, phase: 'ready' }, actions);
}

// --- PROVE --------------------------------------------------------------------------------

/** "nonce 16 to 64 octets in base64url" (§60.4). */
function isNonce(text: string): boolean {
  const bytes = fromBase64url(text);
  return bytes !== undefined && bytes.length >= 16 && bytes.length <= 64;
}

function onProve(state: S, c: Command): Out {
  const address = canonicalAddress(state, c.args[0]!);
  if ('refused' in address) return address.refused;
  const rcpt = address.rcpt;
  const nonce = c.params.nonce!;
  if (!isNonce(nonce)) return badArgument(state, 'nonce must be 16 to 64 octets in base64url');
  // "prove-input = "NMTP-PROVE-1" LF nonce LF challenge LF server-name LF binding LF
  // address" (§60.10.8): the nonce as sent, this connection's greeting and binding, and
  // the canonical address — so the answer is worthless on any other connection.
  return enter({ ...state, phase: 'prove-wait', pendingProve: rcpt }, [
    {
      type: 'prove',
      rcpt,
      input: proveInput(nonce, state.challenge, state.config.serverName, state.binding, rcpt),
    },
  ]);
}

function onProved(state: S, event: Extract<TransferServerEvent, { type: 'proved' }>): Out {
  if (state.phase !== 'prove-wait' || state.pendingProve === undefined) return ignore(state);
  const rcpt = state.pendingProve;
  const next = { ...state, phase: 'ready' as const, pendingProve: undefined };
  if ('none' in event) {
    return enter(next, [
      {
        type: 'reply',
        reply: errorReply(550, '5.7.1', 'NMTP_ERR_TRANSPORT_PROVE_NO_KEY', { rcpt }),
      },
    ]);
  }
  return enter(next, [
    {
      type: 'reply',
      reply: reply(250, '2.7.0', {
        rcpt,
        key: toBase64url(event.key),
        proof: toBase64url(event.signature),
      }),
    },
  ]);
}

// --- STATUS / GIVEUP ----------------------------------------------------------------------

/** One reply for unknown, expired, malformed and foreign cookies alike (§60.10.6). */
function unknownCookie(cookie: string) {
  return errorReply(
    550,
    '5.5.4',
    'NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN',
    COOKIE_RE.test(cookie) ? { cookie } : {},
  );
}

function onCookieState(state: S, st: CookieState): Out {
  if (state.phase !== 'cookie-wait' || state.cookie === undefined) return ignore(state);
  const cookie = state.cookie.value;
  const next = { ...state, phase: 'ready' as const, cookie: undefined };
  const send = (r: ReturnType<typeof reply>): Out => enter(next, [{ type: 'reply', reply: r }]);
  switch (st.kind) {
    case 'unknown':
      return refuse(next, unknownCookie(cookie));
    case 'accepted':
      return send(reply(250, '2.0.0', { cookie, rcpt: st.rcpt, state: 'accepted', id: st.id }));
    case 'rejected':
      return send(
        errorReply(
          550,
          st.enhanced ?? '5.7.1',
          'NMTP_ERR_TRANSPORT_RECIPIENT_REJECTED',
          { cookie, rcpt: st.rcpt, state: 'rejected' },
          st.text ?? '',
        ),
      );
    case 'deferred':
      return send(
        reply(350, '2.0.0', {
          cookie,
          rcpt: st.rcpt,
          min: st.min,
          max: st.max,
          expires: st.expires,
        }),
      );
    case 'want-view':
      return send(reply(352, '2.0.0', { cookie, rcpt: st.rcpt, view: st.view }));
    case 'given-up':
      return send(reply(250, '2.0.0', { cookie, rcpt: st.rcpt, state: 'given-up' }));
  }
}
