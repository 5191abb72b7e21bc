/**
 * The transfer client (sending side) as a pure reducer (docs/protocol.md
 * §60.10): one job per session — deliver a message to some recipients, poll a cookie,
 * give one up, or send a bigger view on a cookie. Lock-step: one command, its replies, the
 * next command (§60.2). Proof signing and the view octets are the host's (actions), so
 * no key or message is held in the state.
 */
import type { NmtpError } from '../errors/index.ts';
import type { Command, Reply, Verb } from '../wire/index.ts';
import {
  proofInput,
  type BaseAction,
  type BaseEvent,
  type StateInfo,
  type Step,
} from './common.ts';
import { VIEWS, type View } from './decider.ts';

export type ClientJob =
  | {
      readonly kind: 'deliver';
      readonly recipients: readonly string[];
      readonly size: number;
      readonly digest: string;
      readonly signers: readonly string[];
    }
  | {
      readonly kind: 'data-on-cookie';
      readonly cookie: string;
      readonly size: number;
      readonly digest: string;
      readonly signers: readonly string[];
    }
  | { readonly kind: 'status'; readonly cookie: string }
  | { readonly kind: 'giveup'; readonly cookie: string };

export interface TransferClientConfig {
  /** Our domain (A-label) and the selector of the key that signs proofs. */
  readonly domain: string;
  readonly selector: string;
  readonly job: ClientJob;
}

export type TransferClientPhase =
  | 'greeting'
  | 'signing'
  | 'hello'
  | 'rcpt'
  | 'data'
  | 'sending'
  | 'answers'
  | 'cookie'
  | 'quit'
  | 'closed';

/** THE table of the transfer client's states: seconds to wait for the server. */
export const TRANSFER_CLIENT_STATES: Readonly<Record<TransferClientPhase, StateInfo<Verb>>> = {
  greeting: { timeout: 60, allowed: [], description: 'connected; waiting for the greeting' },
  signing: { timeout: 30, allowed: [], description: 'host signs the proof' },
  hello: { timeout: 60, allowed: ['HELLO'], description: 'HELLO sent; waiting for 250' },
  rcpt: { timeout: 60, allowed: ['RCPT'], description: 'one RCPT sent; waiting for its answer' },
  data: { timeout: 60, allowed: ['DATA'], description: 'DATA sent; waiting for 354 and the view' },
  sending: { timeout: 0, allowed: [], description: 'host sends the view in chunks' },
  answers: {
    timeout: 600,
    allowed: [],
    description: 'waiting for one answer per accepted recipient',
  },
  cookie: {
    timeout: 60,
    allowed: ['STATUS', 'GIVEUP'],
    description: 'STATUS or GIVEUP sent; waiting',
  },
  quit: { timeout: 30, allowed: ['QUIT'], description: 'QUIT sent; waiting for 221' },
  closed: { timeout: 0, allowed: [], description: 'done' },
};

/** What became of each recipient (or the cookie), reported once at the end. */
export interface RecipientResult {
  readonly rcpt: string;
  /** The reply that decided it (RCPT answer or final answer), parameters included. */
  readonly reply: Reply;
}

export type TransferClientAction =
  | BaseAction
  | { readonly type: 'sign-proof'; readonly input: Uint8Array }
  /** Send `view` of the message as chunks (the host streams it from storage). */
  | { readonly type: 'send-view'; readonly view: View }
  | {
      readonly type: 'result';
      readonly recipients: readonly RecipientResult[];
      /** Set when the session failed as a whole (greeting, HELLO, framing, timeout). */
      readonly failure?: Reply | NmtpError | 'timeout' | 'closed';
    };

export type TransferClientEvent =
  | BaseEvent
  | { readonly type: 'proof-signed'; readonly signature: string }
  /** The host finished sending the view. */
  | { readonly type: 'view-sent' };

export interface TransferClientState {
  readonly phase: TransferClientPhase;
  readonly config: TransferClientConfig;
  readonly next: number;
  readonly accepted: readonly string[];
  readonly results: readonly RecipientResult[];
  readonly reported: boolean;
}

type S = TransferClientState;
type A = TransferClientAction;
type Out = Step<S, A>;

export function initialTransferClient(config: TransferClientConfig): S {
  return { phase: 'greeting', config, next: 0, accepted: [], results: [], reported: false };
}

function go(state: S, actions: A[]): Out {
  const t = TRANSFER_CLIENT_STATES[state.phase].timeout;
  if (t > 0) actions.push({ type: 'set-timer', seconds: t });
  return { state, actions };
}

function cmd(verb: Verb, args: string[] = [], params: Record<string, string> = {}): A {
  return { type: 'command', command: { verb, args, params } as Command };
}

function report(state: S, failure?: Reply | NmtpError | 'timeout' | 'closed'): A[] {
  if (state.reported) return [];
  return [
    { type: 'result', recipients: state.results, ...(failure === undefined ? {} : { failure }) },
  ];
}

/** Ends politely: report, QUIT, wait for 221. */
function finish(state: S): Out {
  const actions = report(state);
  return go({ ...state, phase: 'quit', reported: true }, [...actions, cmd('QUIT')]);
}

/** Ends at once: report the failure and close. */
function abort(state: S, failure: Reply | NmtpError | 'timeout' | 'closed'): Out {
  return {
    state: { ...state, phase: 'closed', reported: true },
    actions: [...report(state, failure), { type: 'close' }],
  };
}

export function transferClient(state: S, event: TransferClientEvent): Out {
  if (state.phase === 'closed') return { state, actions: [] };
  switch (event.type) {
    case 'timeout':
      return abort(state, 'timeout');
    case 'closed':
      return abort(state, 'closed');
    case 'proof-signed': {
      if (state.phase !== 'signing') return { state, actions: [] };
      const { domain, selector } = state.config;
      return go({ ...state, phase: 'hello' }, [
        cmd('HELLO', [domain], { sel: selector, proof: event.signature }),
      ]);
    }
    case 'view-sent':
      if (state.phase !== 'sending') return { state, actions: [] };
      return go({ ...state, phase: 'answers' }, []);
    case 'wire': {
      const item = event.item;
      if (item.kind === 'error') return abort(state, item.error);
      // Chunks from a transfer server are never expected; framing is kept by the codec.
      if (item.kind !== 'reply') return { state, actions: [] };
      return onReply(state, item.reply);
    }
    default:
      return { state, actions: [] };
  }
}

function afterHello(state: S): Out {
  const job = state.config.job;
  switch (job.kind) {
    case 'deliver':
      return nextRcpt(state);
    case 'data-on-cookie':
      return go({ ...state, phase: 'data', accepted: [job.cookie] }, [dataCommand(state)]);
    case 'status':
      return go({ ...state, phase: 'cookie' }, [cmd('STATUS', [job.cookie])]);
    case 'giveup':
      return go({ ...state, phase: 'cookie' }, [cmd('GIVEUP', [job.cookie])]);
  }
}

function dataCommand(state: S): A {
  const job = state.config.job;
  if (job.kind !== 'deliver' && job.kind !== 'data-on-cookie') return cmd('NOOP');
  const params: Record<string, string> = { size: String(job.size), digest: job.digest };
  if (job.signers.length > 0) params.signers = job.signers.join(',');
  if (job.kind === 'data-on-cookie') params.cookie = job.cookie;
  return cmd('DATA', [], params);
}

function nextRcpt(state: S): Out {
  const job = state.config.job;
  if (job.kind !== 'deliver') return finish(state);
  const rcpt = job.recipients[state.next];
  if (rcpt !== undefined) {
    return go({ ...state, phase: 'rcpt', next: state.next + 1 }, [cmd('RCPT', [rcpt])]);
  }
  // "DATA … only after an accepted RCPT" (§60.10.4): nobody accepted, nothing to send.
  if (state.accepted.length === 0) return finish(state);
  return go({ ...state, phase: 'data' }, [dataCommand(state)]);
}

function onReply(state: S, r: Reply): Out {
  const job = state.config.job;
  switch (state.phase) {
    case 'greeting': {
      // "A client that does not know the version MUST close" (§60.8).
      if (r.code !== 220 || r.params.version !== 'NMTP/1' || r.params.service !== 'transfer') {
        return abort(state, r);
      }
      const challenge = r.params.challenge ?? '';
      const server = r.params.server ?? '';
      return go({ ...state, phase: 'signing' }, [
        { type: 'sign-proof', input: proofInput(challenge, server, state.config.domain) },
      ]);
    }
    case 'hello':
      return r.code === 250 ? afterHello(state) : abort(state, r);
    case 'rcpt': {
      const rcpt = job.kind === 'deliver' ? job.recipients[state.next - 1]! : '';
      if (r.code === 250) return nextRcpt({ ...state, accepted: [...state.accepted, rcpt] });
      // Rejected, unavailable, redirected or refused: that answer is this recipient's result.
      return nextRcpt({ ...state, results: [...state.results, { rcpt, reply: r }] });
    }
    case 'data': {
      const view = r.params.view as View | undefined;
      if (r.code !== 354 || view === undefined || !VIEWS.includes(view)) {
        const results = state.accepted.map((rcpt) => ({ rcpt, reply: r }));
        return finish({ ...state, results: [...state.results, ...results] });
      }
      return go({ ...state, phase: 'sending' }, [{ type: 'send-view', view }]);
    }
    case 'sending':
    case 'answers': {
      // A refusal of the data as a whole (554, 552) ends the transaction for everyone.
      if (r.params.rcpt === undefined) {
        const results = state.accepted.map((rcpt) => ({ rcpt, reply: r }));
        return finish({ ...state, accepted: [], results: [...state.results, ...results] });
      }
      const results = [...state.results, { rcpt: r.params.rcpt, reply: r }];
      const pending = state.accepted.length - 1;
      const next = { ...state, results, accepted: state.accepted.slice(1) };
      return pending === 0 ? finish(next) : { state: next, actions: [] };
    }
    case 'cookie': {
      const cookie = job.kind === 'status' || job.kind === 'giveup' ? job.cookie : '';
      return finish({ ...state, results: [{ rcpt: r.params.rcpt ?? cookie, reply: r }] });
    }
    case 'quit':
      return { state: { ...state, phase: 'closed' }, actions: [{ type: 'close' }] };
    default:
      return { state, actions: [] };
  }
}
