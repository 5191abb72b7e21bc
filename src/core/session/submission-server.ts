/**
 * The submission server as a pure reducer (docs/protocol.md §60.11). "AUTH is
 * required before anything else"; there is no HELLO and no sender: the sender is who
 * authenticated. SEND queues a message (the host adds Date and Message-Id, signs, queues and
 * returns an id), SIGN signs and gives it back, CERTIFY issues a certificate for the user's
 * key, STATUS <id> reports per-recipient delivery status.
 */
import { tryParseAddress } from '../address/index.ts';
import type { ErrorCode } from '../errors/index.ts';
import { fromBase64url } from '../sign/index.ts';
import { DECIMAL_RE, VERBS, isWellFormedCommand, type Command, type Verb } from '../wire/index.ts';
import {
  errorReply,
  limitsOf,
  proofInput,
  reply,
  type BaseAction,
  type BaseEvent,
  type ServerConfig,
  type StateInfo,
  type Step,
  serverSteps,
} from './common.ts';

export type SubmissionPhase =
  'start' | 'auth' | 'auth-wait' | 'ready' | 'data' | 'host-wait' | 'closed';

/** THE table of the submission server's states (§60.11.1). */
export const SUBMISSION_SERVER_STATES: Readonly<Record<SubmissionPhase, StateInfo<Verb>>> = {
  start: { timeout: 0, allowed: [], description: 'connection accepted; greeting not yet sent' },
  auth: {
    timeout: 60,
    allowed: ['AUTH', 'NOOP', 'QUIT'],
    description: 'greeting with challenge sent; only AUTH is accepted',
  },
  'auth-wait': { timeout: 30, allowed: [], description: 'host checks the credentials' },
  ready: {
    timeout: 300,
    allowed: ['RCPT', 'SEND', 'SIGN', 'CERTIFY', 'STATUS', 'RSET', 'NOOP', 'QUIT'],
    description: 'authenticated; recipients may be collected for SEND',
  },
  data: { timeout: 120, allowed: [], description: 'receiving the chunks of SEND or SIGN' },
  'host-wait': {
    timeout: 120,
    allowed: [],
    description: 'host queues, signs, certifies or reports status',
  },
  closed: { timeout: 0, allowed: [], description: 'QUIT, fatal error or timeout' },
};

export type SubmissionAction =
  | BaseAction
  | {
      readonly type: 'authenticate';
      readonly mechanism: 'PLAIN';
      readonly user: string;
      readonly password: string;
    }
  | {
      readonly type: 'authenticate';
      readonly mechanism: 'KEY';
      readonly user: string;
      readonly publicKey: Uint8Array;
      /** "NMTP-AUTH-1" LF challenge LF server LF user (§60.8.1). */
      readonly input: Uint8Array;
      readonly signature: Uint8Array;
    }
  | {
      readonly type: 'submit';
      readonly user: string;
      readonly recipients: readonly string[];
      readonly size: number;
    }
  | { readonly type: 'sign'; readonly user: string; readonly size: number }
  | {
      readonly type: 'certify';
      readonly user: string;
      readonly publicKey: Uint8Array;
      readonly days?: number;
    }
  | { readonly type: 'submission-status'; readonly user: string; readonly id: string };

/** Per-recipient delivery status of a submission (compare JMAP deliveryStatus). */
export interface RecipientStatus {
  readonly rcpt: string;
  readonly state: 'pending' | 'accepted' | 'deferred' | 'rejected' | 'given-up';
  /**
   * Deferred: the receiver's cookie, when the sender polls next and when the cookie
   * expires (unix seconds), so the user sees how long the wait may be (§60.11.5).
   */
  readonly cookie?: string;
  readonly next?: number;
  readonly expires?: number;
}

export type SubmissionEvent =
  | BaseEvent
  | { readonly type: 'connected'; readonly challenge: string; readonly ip: string }
  | { readonly type: 'auth-result'; readonly ok: boolean }
  | { readonly type: 'submitted'; readonly id: string }
  | { readonly type: 'signed'; readonly bytes: Uint8Array }
  | { readonly type: 'certified'; readonly certificate: string }
  | {
      readonly type: 'status-result';
      readonly id: string;
      readonly recipients: readonly RecipientStatus[] | undefined;
    }
  /** The host could not do what was asked (storage, signing): a temporary failure. */
  | { readonly type: 'host-failed'; readonly text: string }
  /**
   * The host refused the message or key on its merits (a From that is not the user, a
   * malformed message, §60.11.3): permanent, answered with the error's own code.
   */
  | {
      readonly type: 'host-refused';
      readonly code: number;
      readonly enhanced: string;
      readonly err: ErrorCode;
    };

export interface SubmissionState {
  readonly phase: SubmissionPhase;
  readonly config: ServerConfig;
  readonly challenge: string;
  readonly user?: string;
  readonly pendingUser?: string;
  readonly recipients: readonly string[];
  readonly op?: 'SEND' | 'SIGN';
  readonly size: number;
  readonly received: number;
  /** `received` when the current chunk began: did the chunk make progress? */
  readonly mark?: number;
  readonly errors: number;
}

type S = SubmissionState;
type A = SubmissionAction;
type Out = Step<S, A>;

const {
  enter,
  close,
  refuse,
  badArgument,
  wireError: onWireError,
} = serverSteps<S['phase'], S, A>(SUBMISSION_SERVER_STATES, 'closed');

/** "id = 1*64( ALPHA / DIGIT / "-" / "_" )" (§60.11). */
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
/** Returned payloads (SIGN, CERTIFY) go back in chunks no larger than the peer's limit. */
const CHUNK = 1_048_576;

export function initialSubmissionServer(config: ServerConfig): S {
  return { phase: 'start', config, challenge: '', recipients: [], size: 0, received: 0, errors: 0 };
}

/** Sends a payload reply: `250 … size=<n>` then the octets as chunks, the last one LAST. */
function payload(state: S, bytes: Uint8Array, params: Record<string, string | number>): Out {
  const actions: A[] = [
    { type: 'reply', reply: reply(250, '2.0.0', { ...params, size: bytes.length }) },
  ];
  for (let i = 0; i < bytes.length || i === 0; i += CHUNK) {
    const piece = bytes.subarray(i, Math.min(bytes.length, i + CHUNK));
    actions.push({ type: 'chunk', bytes: piece, last: i + CHUNK >= bytes.length });
  }
  return enter({ ...state, phase: 'ready' }, actions);
}

export function submissionServer(state: S, event: SubmissionEvent): Out {
  if (state.phase === 'closed') return { state, actions: [] };
  switch (event.type) {
    case 'connected':
      if (state.phase !== 'start') return { state, actions: [] };
      return enter({ ...state, phase: 'auth', challenge: event.challenge }, [
        {
          type: 'reply',
          reply: reply(220, '2.0.0', {
            version: 'NMTP/1',
            service: 'submission',
            server: state.config.serverName,
            challenge: event.challenge,
          }),
        },
      ]);
    case 'closed':
      return { state: { ...state, phase: 'closed' }, actions: [] };
    case 'timeout':
      return close(state, [
        { type: 'reply', reply: errorReply(421, '4.4.2', 'NMTP_ERR_TRANSPORT_TIMEOUT') },
      ]);
    case 'wire':
      return onWire(state, event.item);
    case 'auth-result': {
      if (state.phase !== 'auth-wait' || state.pendingUser === undefined)
        return { state, actions: [] };
      if (!event.ok) {
        return refuse(
          { ...state, phase: 'auth', pendingUser: undefined },
          errorReply(535, '5.7.8', 'NMTP_ERR_TRANSPORT_AUTH_FAILED'),
        );
      }
      const user = state.pendingUser;
      return enter({ ...state, phase: 'ready', user, pendingUser: undefined }, [
        { type: 'reply', reply: reply(235, '2.7.0', { user }) },
      ]);
    }
    case 'submitted':
      if (state.phase !== 'host-wait') return { state, actions: [] };
      return enter({ ...state, phase: 'ready', recipients: [] }, [
        { type: 'reply', reply: reply(250, '2.0.0', { id: event.id }) },
      ]);
    case 'signed':
      if (state.phase !== 'host-wait') return { state, actions: [] };
      return payload(state, event.bytes, {});
    case 'certified':
      if (state.phase !== 'host-wait') return { state, actions: [] };
      return payload(state, new TextEncoder().encode(event.certificate), {});
    case 'status-result': {
      if (state.phase !== 'host-wait') return { state, actions: [] };
      const next = { ...state, phase: 'ready' as const };
      // "An id the user did not submit is answered like an unknown one" (§60.11.5).
      if (event.recipients === undefined) {
        return refuse(
          next,
          errorReply(550, '5.5.4', 'NMTP_ERR_TRANSPORT_SUBMISSION_UNKNOWN', { id: event.id }),
        );
      }
      // "The first line gives the count; then one line per recipient, each naming it."
      return enter(next, [
        {
          type: 'reply',
          reply: reply(250, '2.0.0', { id: event.id, count: event.recipients.length }),
        },
        ...event.recipients.map((r): A => ({
          type: 'reply',
          reply: reply(250, '2.0.0', {
            rcpt: r.rcpt,
            state: r.state,
            ...(r.cookie === undefined ? {} : { cookie: r.cookie }),
            ...(r.next === undefined ? {} : { next: r.next }),
            ...(r.expires === undefined ? {} : { expires: r.expires }),
          }),
        })),
      ]);
    }
    case 'host-refused':
      if (state.phase !== 'host-wait') return { state, actions: [] };
      // "A refused message ends the transaction" (§60.11.3): the recipients go with it.
      return refuse(
        { ...state, phase: 'ready', recipients: [] },
        errorReply(event.code, event.enhanced, event.err),
      );
    case 'host-failed':
      if (state.phase !== 'host-wait') return { state, actions: [] };
      // Not the message's fault: the recipients are kept, so SEND may be repeated (§60.11.3).
      return enter({ ...state, phase: 'ready' }, [
        {
          type: 'reply',
          reply: errorReply(451, '4.3.0', 'NMTP_ERR_TRANSPORT_LOCAL', {}, event.text),
        },
      ]);
    default:
      // An event of another machine (a host bug): ignored, never thrown.
      return { state, actions: [] };
  }
}

function onWire(state: S, item: Extract<BaseEvent, { type: 'wire' }>['item']): Out {
  switch (item.kind) {
    case 'error':
      return onWireError(state, item.error, item.fatal);
    case 'reply':
      return { state, actions: [] };
    case 'chunk':
      if (state.phase !== 'data') {
        return refuse(
          state,
          errorReply(503, '5.5.1', 'NMTP_ERR_WIRE_UNEXPECTED_CHUNK', { offset: item.offset }),
        );
      }
      return { state: { ...state, mark: state.received }, actions: [] };
    case 'chunk-data':
      if (state.phase !== 'data') return { state, actions: [] };
      {
        // Counted but not stored beyond the announced size (as in transfer, §60.10.4).
        const received = state.received + item.bytes.length;
        return {
          state: { ...state, received },
          actions: received <= state.size ? [{ type: 'store-chunk', bytes: item.bytes }] : [],
        };
      }
    case 'chunk-end': {
      if (state.phase !== 'data') return { state, actions: [] };
      // "The timer restarts on every complete command, complete chunk or host answer —
      // never on a partial line or partial chunk" (§60.9), as in transfer; only a chunk with
      // octets within the announced size counts.
      if (!item.last) {
        const progress = state.received > (state.mark ?? 0) && state.received <= state.size;
        return progress ? enter(state, []) : { state, actions: [] };
      }
      if (state.received !== state.size) {
        return refuse(
          { ...state, phase: 'ready', recipients: [] },
          errorReply(554, '5.6.0', 'NMTP_ERR_TRANSPORT_SIZE_MISMATCH', {
            size: state.size,
            received: state.received,
          }),
        );
      }
      const user = state.user!;
      const action: A =
        state.op === 'SEND'
          ? { type: 'submit', user, recipients: state.recipients, size: state.size }
          : { type: 'sign', user, size: state.size };
      return enter({ ...state, phase: 'host-wait' }, [action]);
    }
    case 'command':
      return onCommand(state, item.command);
  }
}

function onCommand(state: S, c: Command): Out {
  if (!isWellFormedCommand(c)) {
    return refuse(state, errorReply(501, '5.5.2', 'NMTP_ERR_WIRE_SYNTAX'));
  }
  if (!VERBS[c.verb].services.includes('submission')) {
    return refuse(state, errorReply(502, '5.5.1', 'NMTP_ERR_TRANSPORT_WRONG_SERVICE'));
  }
  const allowed = SUBMISSION_SERVER_STATES[state.phase].allowed;
  if (!allowed.includes(c.verb)) {
    // "Before AUTH succeeds, every command but AUTH, NOOP and QUIT is answered 530" (§60.11).
    if (state.phase === 'auth') {
      return refuse(state, errorReply(530, '5.7.0', 'NMTP_ERR_TRANSPORT_AUTH_REQUIRED'));
    }
    return refuse(state, errorReply(503, '5.5.1', 'NMTP_ERR_TRANSPORT_OUT_OF_ORDER'));
  }
  switch (c.verb) {
    case 'QUIT':
      return close(state, [{ type: 'reply', reply: reply(221, '2.0.0') }]);
    case 'NOOP':
      return enter(state, [{ type: 'reply', reply: reply(250, '2.0.0') }]);
    case 'RSET':
      return enter({ ...state, recipients: [] }, [{ type: 'reply', reply: reply(250, '2.0.0') }]);
    case 'AUTH':
      return onAuth(state, c);
    case 'RCPT': {
      // `redirect` is a transfer parameter: "the parameter is refused the same way on the
      // submission service" (§60.10.2) — a submission server never answers 351.
      if (c.params.redirect !== undefined) {
        return badArgument(state, 'redirect is a transfer parameter');
      }
      const parsed = tryParseAddress(c.args[0]!, { mode: 'wire' });
      if (!parsed.ok) {
        return refuse(
          state,
          errorReply(
            501,
            '5.1.3',
            'NMTP_ERR_TRANSPORT_BAD_ARGUMENT',
            { rcpt: c.args[0]! },
            parsed.error.code,
          ),
        );
      }
      const rcpt = parsed.address.canonical;
      if (state.recipients.includes(rcpt)) {
        return refuse(
          state,
          errorReply(501, '5.5.4', 'NMTP_ERR_TRANSPORT_DUPLICATE_RECIPIENT', { rcpt }),
        );
      }
      if (state.recipients.length >= limitsOf(state.config).maxRecipients) {
        return refuse(
          state,
          errorReply(452, '4.5.3', 'NMTP_ERR_TRANSPORT_TOO_MANY_RECIPIENTS', { rcpt }),
        );
      }
      return enter({ ...state, recipients: [...state.recipients, rcpt] }, [
        { type: 'reply', reply: reply(250, '2.1.5', { rcpt }) },
      ]);
    }
    case 'SEND':
    case 'SIGN': {
      if (!DECIMAL_RE.test(c.params.size!))
        return badArgument(state, 'size must be a decimal number');
      const size = Number(c.params.size);
      if (c.verb === 'SEND' && state.recipients.length === 0) {
        return refuse(state, errorReply(503, '5.5.1', 'NMTP_ERR_TRANSPORT_NO_RECIPIENTS'));
      }
      if (size > limitsOf(state.config).maxMessage) {
        return refuse(
          state,
          errorReply(552, '5.3.4', 'NMTP_ERR_TRANSPORT_MESSAGE_TOO_LARGE', { size }),
        );
      }
      return enter({ ...state, phase: 'data', op: c.verb, size, received: 0 }, [
        { type: 'reply', reply: reply(354, '2.0.0', { view: 'full' }) },
      ]);
    }
    case 'CERTIFY': {
      const key = fromBase64url(c.params.key!, 32);
      if (key === undefined) return badArgument(state, 'key must be 32 octets in base64url');
      const daysText = c.params.days;
      if (
        daysText !== undefined &&
        (!DECIMAL_RE.test(daysText) || Number(daysText) === 0 || Number(daysText) > 366)
      ) {
        return badArgument(state, 'days must be 1..366');
      }
      return enter({ ...state, phase: 'host-wait' }, [
        {
          type: 'certify',
          user: state.user!,
          publicKey: key,
          ...(daysText === undefined ? {} : { days: Number(daysText) }),
        },
      ]);
    }
    case 'STATUS': {
      const id = c.args[0]!;
      if (!ID_RE.test(id)) {
        return refuse(state, errorReply(550, '5.5.4', 'NMTP_ERR_TRANSPORT_SUBMISSION_UNKNOWN'));
      }
      return enter({ ...state, phase: 'host-wait' }, [
        { type: 'submission-status', user: state.user!, id },
      ]);
    }
    default:
      return refuse(state, errorReply(502, '5.5.1', 'NMTP_ERR_TRANSPORT_WRONG_SERVICE'));
  }
}

function onAuth(state: S, c: Command): Out {
  const [mechanism, a1, a2, a3] = c.args;
  if (mechanism === 'PLAIN') {
    // RFC 4616 message, base64url: [authzid] NUL authcid NUL passwd. "authzid MUST be empty
    // or equal to authcid: submission has no proxy authorisation" (§60.11.2).
    const raw = fromBase64url(a1!);
    const parts = raw === undefined ? [] : new TextDecoder().decode(raw).split('\0');
    if (parts.length !== 3 || (parts[0] !== '' && parts[0] !== parts[1]) || parts[1] === '') {
      return badArgument(
        state,
        'PLAIN credentials must be base64url of [authzid] NUL user NUL password',
      );
    }
    const user = parts[1]!;
    return enter({ ...state, phase: 'auth-wait', pendingUser: user }, [
      { type: 'authenticate', mechanism: 'PLAIN', user, password: parts[2]! },
    ]);
  }
  // AUTH KEY <user> <public key> <signature over the proof input with identity = user>
  const parsed = tryParseAddress(a1!, { mode: 'wire' });
  const publicKey = fromBase64url(a2!, 32);
  const signature = fromBase64url(a3!, 64);
  if (!parsed.ok || publicKey === undefined || signature === undefined) {
    return badArgument(state, 'AUTH KEY <user> <32-octet key> <64-octet signature>, base64url');
  }
  const user = parsed.address.canonical;
  return enter({ ...state, phase: 'auth-wait', pendingUser: user }, [
    {
      type: 'authenticate',
      mechanism: 'KEY',
      user,
      publicKey,
      input: proofInput(state.challenge, state.config.serverName, user),
      signature,
    },
  ]);
}
