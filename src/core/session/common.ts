/**
 * What the three session reducers share: the action and event shapes that cross the
 * boundary between the pure protocol and its host (sockets, timers, DNS, storage, crypto),
 * reply builders, and the transfer/submission challenge proof.
 *
 * The host's loop is: decode wire items, feed each as an event, perform the actions in
 * order, feed back each result as an event. Time and randomness arrive in events.
 */
import { NmtpError, type ErrorCode } from '../errors/index.ts';
import type { Command, Reply } from '../wire/index.ts';
import type { WireItem } from '../wire/index.ts';
import { DEFAULT_SESSION_LIMITS, type SessionLimits } from '../wire/index.ts';

/** Effects a reducer asks its host to perform, in order. */
export type BaseAction =
  | { readonly type: 'reply'; readonly reply: Reply }
  | { readonly type: 'command'; readonly command: Command }
  /** Octets of a chunk to send after the reply that announced them (SIGN, CERTIFY). */
  | { readonly type: 'chunk'; readonly bytes: Uint8Array; readonly last: boolean }
  /** (Re)start the one session timer; when it fires, feed `{ type: 'timeout' }`. */
  | { readonly type: 'set-timer'; readonly seconds: number }
  /** Octets of a message as they arrive; the host stores (and hashes) them. */
  | { readonly type: 'store-chunk'; readonly bytes: Uint8Array }
  /** Flush what was sent, then close the connection. */
  | { readonly type: 'close' };

/** Events every reducer understands. */
export type BaseEvent =
  | { readonly type: 'wire'; readonly item: WireItem }
  | { readonly type: 'timeout' }
  /** The peer closed the connection (or the host is shutting down). */
  | { readonly type: 'closed' };

export interface Step<S, A> {
  readonly state: S;
  readonly actions: readonly A[];
}

/** Per-state data: ONE table per machine (see each reducer). */
export interface StateInfo<V extends string> {
  /** Seconds the peer (or host) may take before the state times out; 0 = no timer. */
  readonly timeout: number;
  /** Commands allowed in the state; any other known verb answers OUT_OF_ORDER. */
  readonly allowed: readonly V[];
  readonly description: string;
}

export interface ServerConfig {
  /** The server's host name as it appears in the greeting and in proofs. */
  readonly serverName: string;
  readonly limits?: Partial<SessionLimits>;
}

export function limitsOf(c: ServerConfig): SessionLimits {
  return { ...DEFAULT_SESSION_LIMITS, ...c.limits };
}

export function reply(
  code: number,
  enhanced: string,
  params: Record<string, string | number> = {},
  text = '',
): Reply {
  const p: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) p[k] = String(v);
  return { code, enhanced, params: p, text };
}

/** An error reply: context parameters first, then `err=<code>` (§60.7). */
export function errorReply(
  code: number,
  enhanced: string,
  err: ErrorCode,
  context: Record<string, string | number> = {},
  text = '',
): Reply {
  return reply(code, enhanced, { ...context, err }, text);
}

/**
 * The reply to a wire error (§60.7): an unknown verb 500 5.5.1; the other line errors
 * (syntax, invalid UTF-8, a command over its verb's limit) 501 5.5.2, and the session
 * continues; framing errors 500 5.5.0 and close — so "500 5.5.0" always means the session
 * is over.
 */
export function wireErrorReply(error: NmtpError): Reply {
  const offset = error.details.offset;
  const at: Record<string, number> = offset === undefined ? {} : { offset };
  switch (error.code) {
    case 'NMTP_ERR_WIRE_UNKNOWN_COMMAND':
      return errorReply(500, '5.5.1', error.code, at);
    case 'NMTP_ERR_WIRE_SYNTAX':
    case 'NMTP_ERR_WIRE_INVALID_UTF8':
    case 'NMTP_ERR_WIRE_COMMAND_TOO_LONG':
      return errorReply(501, '5.5.2', error.code, at);
    case 'NMTP_ERR_WIRE_TRUNCATED':
      return errorReply(421, '4.4.2', error.code, at);
    default:
      return errorReply(500, '5.5.0', error.code, at);
  }
}

/** "NMTP-AUTH-1" LF: the context prefix of every challenge proof (§60.8). */
export const AUTH_CONTEXT = 'NMTP-AUTH-1\n';

/**
 * The signed input of a proof, byte for byte (§60.8):
 * "NMTP-AUTH-1" LF challenge LF server-name LF identity — ASCII except that a submission
 * identity (a user address) is UTF-8. No trailing LF.
 */
export function proofInput(challenge: string, serverName: string, identity: string): Uint8Array {
  return new TextEncoder().encode(`${AUTH_CONTEXT}${challenge}\n${serverName}\n${identity}`);
}

/** "NMTP-PROVE-1" LF: the context prefix of a redirect target's key proof (§60.10.8). */
export const PROVE_CONTEXT = 'NMTP-PROVE-1\n';

/** The TLS exporter label of the PROVE binding (§60.10.8); 32 octets, empty context. */
export const PROVE_EXPORTER_LABEL = 'EXPORTER-NMTP-PROVE-1';

/**
 * The signed input of a PROVE answer, byte for byte (§60.10.8):
 * "NMTP-PROVE-1" LF nonce LF challenge LF server-name LF binding LF address — the nonce as
 * in the command, challenge and server name as in the greeting, the binding (base64url TLS
 * exporter output, '' on a plaintext test session) and the canonical address in UTF-8.
 */
export function proveInput(
  nonce: string,
  challenge: string,
  serverName: string,
  binding: string,
  address: string,
): Uint8Array {
  return new TextEncoder().encode(
    `${PROVE_CONTEXT}${nonce}\n${challenge}\n${serverName}\n${binding}\n${address}`,
  );
}

/** What both server machines keep for the steps below. */
export interface ServerStateBase<P extends string> {
  readonly phase: P;
  /** Refused commands so far: "after 10 refused commands the server closes" (§60.9). */
  readonly errors: number;
  readonly config: ServerConfig;
}

/**
 * "A client MAY send the full view right behind DATA … only when size is at most 65536"
 * (§60.10.4, eager data): a refused eager DATA costs the server at most this to discard.
 */
export const EAGER_MAX = 65536;

/** The steps both servers take, bound to one machine's state table. */
export interface ServerSteps<St, Act> {
  /** Enters `state`, restarting its timer: every complete command, chunk or host answer does. */
  enter(state: St, actions: Act[]): Step<St, Act>;
  /** Sends `actions`, then closes. */
  close(state: St, actions: Act[]): Step<St, Act>;
  /** A refused command: counted, and the session closes with 421 when the budget is spent. */
  refuse(state: St, r: Reply): Step<St, Act>;
  /** 501 5.5.4 NMTP_ERR_TRANSPORT_BAD_ARGUMENT, refused as above. */
  badArgument(state: St, why: string, context?: Record<string, string>): Step<St, Act>;
  /** A wire error: refused, or, when framing is lost, one reply and close. */
  wireError(state: St, error: NmtpError, fatal: boolean): Step<St, Act>;
}

export function serverSteps<P extends string, St extends ServerStateBase<P>, Act>(
  table: Readonly<Record<P, { readonly timeout: number }>>,
  closed: P,
): ServerSteps<St, Act | BaseAction> {
  type Out = Step<St, Act | BaseAction>;
  const enter = (state: St, actions: (Act | BaseAction)[]): Out => {
    const info = table[state.phase];
    if (info.timeout > 0) actions.push({ type: 'set-timer', seconds: info.timeout });
    return { state, actions };
  };
  const close = (state: St, actions: (Act | BaseAction)[]): Out => ({
    state: { ...state, phase: closed },
    actions: [...actions, { type: 'close' }],
  });
  const refuse = (state: St, r: Reply): Out => {
    const errors = state.errors + 1;
    if (errors >= limitsOf(state.config).maxErrors) {
      return close({ ...state, errors }, [
        { type: 'reply', reply: r },
        {
          type: 'reply',
          reply: errorReply(421, '4.7.0', 'NMTP_ERR_TRANSPORT_OUT_OF_ORDER', {}, 'too many errors'),
        },
      ]);
    }
    return enter({ ...state, errors }, [{ type: 'reply', reply: r }]);
  };
  const badArgument = (state: St, why: string, context: Record<string, string> = {}): Out =>
    refuse(state, errorReply(501, '5.5.4', 'NMTP_ERR_TRANSPORT_BAD_ARGUMENT', context, why));
  const wireError = (state: St, error: NmtpError, fatal: boolean): Out => {
    const r = wireErrorReply(error);
    // "After a framing error the server MUST send one reply and close: it can no longer
    // tell where the next command starts" (§60.7).
    if (fatal) return close(state, [{ type: 'reply', reply: r }]);
    return refuse(state, r);
  };
  return { enter, close, refuse, badArgument, wireError };
}

/** A tiny exhaustiveness helper. */
export function never(x: never): never {
  throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `unreachable: ${JSON.stringify(x)}`);
}
