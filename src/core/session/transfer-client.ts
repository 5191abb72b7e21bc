/**
 * The transfer client (sending side) as a pure reducer (docs/protocol.md §60.10.7): jobs on
 * one session — deliver a message to some recipients (optionally at a redirect target that
 * must first PROVE the recipient's key, §60.10.8), poll cookies, give them up, or send a
 * bigger view on a cookie. After a job the session either QUITs or waits `idle` for the
 * host's next job (connection pool). RCPTs and the DATA after them, and several
 * STATUS/GIVEUP, are pipelined unless the config says otherwise (§60.2); answers are matched
 * to commands in order. Proof signing, proof checking and the view octets are the host's
 * (actions), so no key or message is held in the state; randomness (the PROVE nonce) and
 * the TLS binding come in the job and the config.
 */
import { NmtpError } from '../errors/index.ts';
import { fingerprint } from '../keys/index.ts';
import { fromBase64url } from '../sign/index.ts';
import type { Command, Reply, Verb } from '../wire/index.ts';
import {
  EAGER_MAX,
  errorReply,
  proofInput,
  proveInput,
  type BaseAction,
  type BaseEvent,
  type StateInfo,
  type Step,
} from './common.ts';
import { VIEWS, type View } from './decider.ts';

/** A redirect target must prove the recipient's key before it gets the message (§60.10.8). */
export interface ProveRequest {
  /** The recipient's canonical address, as the 351 named it (`rcpt=`). */
  readonly rcpt: string;
  /** The 351's `key=`: `SHA256:<b64url>` of the recipient's public key (§40.8). */
  readonly fingerprint: string;
  /** Fresh randomness from the host, 16..64 octets in base64url. */
  readonly nonce: string;
}

export interface CookieOp {
  readonly op: 'status' | 'giveup';
  readonly cookie: string;
}

export type ClientJob =
  | {
      readonly kind: 'deliver';
      readonly recipients: readonly string[];
      readonly size: number;
      readonly digest: string;
      readonly signers: readonly string[];
      /** At a redirect target: PROVE first, deliver only if the proof holds. */
      readonly prove?: ProveRequest;
      /** Recipients whose redirect failed: sent as `RCPT <a> redirect=failed` (§60.10.2). */
      readonly redirectFailed?: readonly string[];
    }
  | {
      readonly kind: 'data-on-cookie';
      readonly cookie: string;
      readonly size: number;
      readonly digest: string;
      readonly signers: readonly string[];
      /** The cookie was issued by a redirect target: PROVE its key again first (§60.10.8). */
      readonly prove?: ProveRequest;
    }
  | { readonly kind: 'status'; readonly cookie: string; readonly prove?: ProveRequest }
  | { readonly kind: 'giveup'; readonly cookie: string; readonly prove?: ProveRequest }
  /** Several STATUS/GIVEUP, pipelined; one result per operation, in order. */
  | { readonly kind: 'cookies'; readonly ops: readonly CookieOp[]; readonly prove?: ProveRequest };

export interface TransferClientConfig {
  /** Our domain (A-label) and the selector of the key that signs proofs. */
  readonly domain: string;
  readonly selector: string;
  /** The first job; without one the session goes `idle` after HELLO. */
  readonly job?: ClientJob;
  /** After a job: wait `idle` for the next one (true) or QUIT (false, the default). */
  readonly keepOpen?: boolean;
  /** Pipeline RCPTs + DATA and cookie commands (§60.2). Default true. */
  readonly pipelining?: boolean;
  /** base64url TLS exporter output for PROVE (§60.10.8); '' (default) on plaintext. */
  readonly binding?: string;
  /**
   * The DNS name the server's certificate was verified for (the SRV target), when it was:
   * the greeting's server name must be that name before a proof is signed for it (§60.8.1).
   */
  readonly verifiedName?: string;
  /**
   * Send the full view right behind a pipelined DATA (send=full, §60.10.4) for messages of
   * at most this many octets: one round trip per message instead of two. Default
   * EAGER_MAX (65536, the most the protocol allows); 0 never does.
   */
  readonly eagerMax?: number;
}

export type TransferClientPhase =
  | 'greeting'
  | 'signing'
  | 'hello'
  | 'proving'
  | 'prove-check'
  | 'rcpt'
  | 'data'
  | 'sending'
  | 'answers'
  | 'cookie'
  | 'idle'
  | 'quit'
  | 'closed';

/** THE table of the transfer client's states (§60.10.7): seconds to wait for the server. */
export const TRANSFER_CLIENT_STATES: Readonly<Record<TransferClientPhase, StateInfo<Verb>>> = {
  greeting: { timeout: 60, allowed: [], description: 'connected; waiting for the greeting' },
  signing: { timeout: 30, allowed: [], description: 'host signs the proof' },
  hello: { timeout: 60, allowed: ['HELLO'], description: 'HELLO sent; waiting for 250' },
  proving: {
    timeout: 60,
    allowed: ['PROVE'],
    description: 'PROVE sent to a redirect target; waiting for its key proof',
  },
  'prove-check': {
    timeout: 30,
    allowed: [],
    description: 'host verifies the proof over the prove input',
  },
  rcpt: {
    timeout: 60,
    allowed: ['RCPT', 'DATA'],
    description: 'RCPT answers outstanding (the DATA may be pipelined behind them)',
  },
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
    description: 'STATUS or GIVEUP sent (several may be pipelined); waiting',
  },
  idle: {
    timeout: 0,
    allowed: [],
    description: 'job done, session kept for the next one; the host decides how long',
  },
  quit: { timeout: 30, allowed: ['QUIT'], description: 'QUIT sent; waiting for 221' },
  closed: { timeout: 0, allowed: [], description: 'done' },
};

/** What became of each recipient (or the cookie), reported once at the end of a job. */
export interface RecipientResult {
  readonly rcpt: string;
  /** The reply that decided it (RCPT answer or final answer), parameters included. */
  readonly reply: Reply;
  /** For STATUS/GIVEUP jobs: the cookie the reply answers. */
  readonly cookie?: string;
}

export type TransferClientAction =
  | BaseAction
  | { readonly type: 'sign-proof'; readonly input: Uint8Array }
  /** Verify `proof` under `key` over `input` (a PROVE answer, §60.10.8). */
  | {
      readonly type: 'verify-prove';
      readonly key: Uint8Array;
      readonly proof: Uint8Array;
      readonly input: Uint8Array;
    }
  /** Send `view` of the message as chunks (the host streams it from storage). */
  | { readonly type: 'send-view'; readonly view: View }
  | {
      readonly type: 'result';
      readonly recipients: readonly RecipientResult[];
      /** Set when the session failed as a whole (greeting, HELLO, framing, timeout). */
      readonly failure?: Reply | NmtpError | 'timeout' | 'closed';
    }
  /** The session is `idle`: the host may give it the next job (or finish it). */
  | { readonly type: 'ready' };

export type TransferClientEvent =
  | BaseEvent
  | { readonly type: 'proof-signed'; readonly signature: string }
  | { readonly type: 'prove-verified'; readonly ok: boolean }
  /** The host finished sending the view. */
  | { readonly type: 'view-sent' }
  /** The next job on an `idle` session. */
  | { readonly type: 'job'; readonly job: ClientJob }
  /** QUIT when idle, or after the job in progress. */
  | { readonly type: 'finish' };

/** A command whose answer has not arrived yet, in the order they were sent. */
type Pending =
  | { readonly kind: 'rcpt'; readonly rcpt: string }
  | { readonly kind: 'data' }
  | { readonly kind: 'cookie'; readonly op: CookieOp }
  | { readonly kind: 'prove' };

export interface TransferClientState {
  readonly phase: TransferClientPhase;
  readonly config: TransferClientConfig;
  /** The job in progress (undefined when idle). */
  readonly job?: ClientJob;
  /** The greeting's challenge and server name (PROVE input). */
  readonly challenge: string;
  readonly serverName: string;
  /** Commands sent and not yet answered, oldest first. */
  readonly pending: readonly Pending[];
  /** Index of the next recipient to send RCPT for (lock-step). */
  readonly next: number;
  readonly accepted: readonly string[];
  readonly results: readonly RecipientResult[];
  readonly reported: boolean;
  /** The host asked to finish: QUIT after the job in progress. */
  readonly finishing: boolean;
  /** The server's `eager=` from its HELLO reply (§60.10.4); 0 when it announced none. */
  readonly serverEager: number;
  /**
   * The transaction's DATA said send=full and the view went out behind it (§60.10.4):
   * `sending` until the host reports it written, then `sent`.
   */
  readonly eager?: 'sending' | 'sent';
}

type S = TransferClientState;
type A = TransferClientAction;
type Out = Step<S, A>;
type Job = ClientJob;
type DeliverJob = Extract<Job, { kind: 'deliver' }>;

export function initialTransferClient(config: TransferClientConfig): S {
  return {
    phase: 'greeting',
    config,
    ...(config.job === undefined ? {} : { job: config.job }),
    challenge: '',
    serverName: '',
    pending: [],
    next: 0,
    accepted: [],
    results: [],
    reported: false,
    finishing: false,
    serverEager: 0,
  };
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
  if (state.reported || state.job === undefined) return [];
  return [
    { type: 'result', recipients: state.results, ...(failure === undefined ? {} : { failure }) },
  ];
}

const pipelined = (state: S): boolean => state.config.pipelining !== false;

/**
 * The job is done: report it, then QUIT, or (a kept session) go `idle` with no timer of
 * its own — the host's pool decides how long an idle session lives.
 */
function endJob(state: S): Out {
  const actions = report(state);
  const done = { ...state, reported: true, pending: [] };
  if (state.config.keepOpen !== true || state.finishing) {
    return go({ ...done, phase: 'quit' }, [...actions, cmd('QUIT')]);
  }
  return toIdle(done, actions);
}

function toIdle(state: S, actions: A[]): Out {
  if (state.finishing) return go({ ...state, phase: 'quit' }, [...actions, cmd('QUIT')]);
  const rest: S = {
    ...state,
    phase: 'idle',
    pending: [],
    accepted: [],
    next: 0,
    eager: undefined,
  };
  delete (rest as { job?: Job }).job;
  // seconds 0: stop the session timer (idle has none, §60.10.7).
  return {
    state: rest,
    actions: [...actions, { type: 'set-timer', seconds: 0 }, { type: 'ready' }],
  };
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
      // Idle and sending have no timer; a stale one from the previous state changes nothing.
      if (TRANSFER_CLIENT_STATES[state.phase].timeout === 0) return { state, actions: [] };
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
    case 'prove-verified':
      if (state.phase !== 'prove-check' || state.job === undefined) {
        return { state, actions: [] };
      }
      return event.ok
        ? startProven(state, state.job)
        : redirectFailed(state, state.job, 'the proof does not verify');
    case 'view-sent':
      // An eager view is written before the DATA is answered; the 354 then finds it sent.
      if (state.eager === 'sending' && state.phase !== 'sending') {
        return { state: { ...state, eager: 'sent' }, actions: [] };
      }
      if (state.phase !== 'sending') return { state, actions: [] };
      return go({ ...state, phase: 'answers', eager: undefined }, []);
    case 'job':
      // "never two jobs at once on one session": only an idle session takes a job.
      if (state.phase !== 'idle') return { state, actions: [] };
      return startJob({ ...state, job: event.job, results: [], reported: false }, event.job);
    case 'finish':
      if (state.phase === 'idle') return go({ ...state, phase: 'quit' }, [cmd('QUIT')]);
      return { state: { ...state, finishing: true }, actions: [] };
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

function startJob(state: S, job: Job): Out {
  if (job.prove !== undefined) {
    // "sends PROVE <a> nonce=<fresh ≥16 octets>" before anything else (§60.10.8) — also
    // before STATUS, GIVEUP or DATA on a cookie the target issued: the key proof is what
    // authenticates that endpoint, every time.
    return go({ ...state, phase: 'proving', pending: [{ kind: 'prove' }] }, [
      cmd('PROVE', [job.prove.rcpt], { nonce: job.prove.nonce }),
    ]);
  }
  return startProven(state, job);
}

/** The job's own commands (after PROVE, if it needed one). */
function startProven(state: S, job: Job): Out {
  switch (job.kind) {
    case 'deliver':
      return startDeliver(state, job);
    case 'data-on-cookie':
      return go({ ...state, phase: 'data', accepted: [job.cookie], pending: [{ kind: 'data' }] }, [
        dataCommand(job),
      ]);
    case 'status':
    case 'giveup':
      return cookieOps(state, [{ op: job.kind, cookie: job.cookie }]);
    case 'cookies':
      return cookieOps(state, job.ops);
  }
}

function cookieOps(state: S, ops: readonly CookieOp[]): Out {
  if (ops.length === 0) return endJob(state);
  const verb = (o: CookieOp): Verb => (o.op === 'status' ? 'STATUS' : 'GIVEUP');
  // "several STATUS/GIVEUP may be pipelined" (§60.2); lock-step sends one at a time.
  const send = pipelined(state) ? ops : ops.slice(0, 1);
  return go(
    {
      ...state,
      phase: 'cookie',
      next: send.length,
      pending: send.map((op) => ({ kind: 'cookie', op })),
    },
    send.map((o) => cmd(verb(o), [o.cookie])),
  );
}

function dataCommand(job: Job, eager = false): A {
  if (job.kind !== 'deliver' && job.kind !== 'data-on-cookie') return cmd('NOOP');
  const params: Record<string, string> = { size: String(job.size), digest: job.digest };
  if (job.signers.length > 0) params.signers = job.signers.join(',');
  if (job.kind === 'data-on-cookie') params.cookie = job.cookie;
  if (eager) params.send = 'full';
  return cmd('DATA', [], params);
}

/**
 * "A client MUST NOT send send=full to a server that did not announce eager=, nor for a
 * size above it" (§60.10.4); and only behind a pipelined DATA.
 */
function eagerFor(state: S, job: DeliverJob): boolean {
  const limit = Math.min(state.config.eagerMax ?? EAGER_MAX, state.serverEager, EAGER_MAX);
  return limit > 0 && job.size <= limit;
}

function rcptCommand(job: DeliverJob, rcpt: string): A {
  return job.redirectFailed?.includes(rcpt) === true
    ? cmd('RCPT', [rcpt], { redirect: 'failed' })
    : cmd('RCPT', [rcpt]);
}

function startDeliver(state: S, job: DeliverJob): Out {
  const s: S = { ...state, accepted: [], next: 0, pending: [], eager: undefined };
  if (job.recipients.length === 0) return endJob(s);
  if (!pipelined(state)) return nextRcpt(s, job);
  // "A client MAY send all RCPT commands of a transaction and the DATA after them without
  // waiting" (§60.2): answers come back in order, one per command. A small message goes
  // right behind them (send=full, §60.10.4): the whole transaction in one flight.
  const pending: Pending[] = [...job.recipients.map((rcpt) => ({ kind: 'rcpt', rcpt }) as const)];
  pending.push({ kind: 'data' });
  const eager = eagerFor(state, job);
  return go(
    {
      ...s,
      phase: 'rcpt',
      next: job.recipients.length,
      pending,
      ...(eager ? { eager: 'sending' as const } : {}),
    },
    [
      ...job.recipients.map((r) => rcptCommand(job, r)),
      dataCommand(job, eager),
      ...(eager ? [{ type: 'send-view', view: 'full' } as const] : []),
    ],
  );
}

/** Lock-step: the next RCPT, or the DATA once every recipient is answered. */
function nextRcpt(state: S, job: DeliverJob): Out {
  const rcpt = job.recipients[state.next];
  if (rcpt !== undefined) {
    return go(
      { ...state, phase: 'rcpt', next: state.next + 1, pending: [{ kind: 'rcpt', rcpt }] },
      [rcptCommand(job, rcpt)],
    );
  }
  // "DATA … only after an accepted RCPT" (§60.10.4): nobody accepted, nothing to send.
  if (state.accepted.length === 0) return endJob(state);
  return go({ ...state, phase: 'data', pending: [{ kind: 'data' }] }, [dataCommand(job)]);
}

/**
 * A redirect that did not work out: every recipient of the job gets the (never sent on the
 * wire) temporary failure NMTP_ERR_TRANSPORT_REDIRECT_FAILED, and the host falls back to
 * the normal path (§60.10.8 step 4).
 */
function redirectFailed(state: S, job: Job, why: string): Out {
  const rcpt = job.prove?.rcpt ?? '';
  const fail = (cookie: string): RecipientResult => ({
    rcpt,
    reply: redirectFailure(rcpt, why),
    cookie,
  });
  // Nothing is sent to an endpoint that did not prove the key: each recipient, or each
  // cookie operation, gets the failure (temporary: the host tries again later).
  const results: RecipientResult[] =
    job.kind === 'deliver'
      ? job.recipients.map((r) => ({ rcpt: r, reply: redirectFailure(r, why) }))
      : job.kind === 'cookies'
        ? job.ops.map((o) => fail(o.cookie))
        : [fail(job.cookie)];
  return endJob({ ...state, results: [...state.results, ...results] });
}

/**
 * The synthetic reply recording a failed redirect for `rcpt` (never on the wire): `4.7.0`
 * when the target did not prove the key (the sender falls back to the normal path), `4.4.6`
 * ("routing loop detected", RFC 3463) when a second redirect was offered (final for this
 * attempt: "A sender follows at most one redirect per recipient and message", §60.10.8).
 */
export function redirectFailure(rcpt: string, why: string, loop = false): Reply {
  return errorReply(
    451,
    loop ? '4.4.6' : '4.7.0',
    'NMTP_ERR_TRANSPORT_REDIRECT_FAILED',
    { rcpt },
    why,
  );
}

/** A redirect failure that is final (a second redirect), not a reason to fall back. */
export function isRedirectLoop(r: Reply): boolean {
  return r.params.err === 'NMTP_ERR_TRANSPORT_REDIRECT_FAILED' && r.enhanced === '4.4.6';
}

function onProveReply(state: S, job: Job, r: Reply): Out {
  const prove = job.prove!;
  if (r.code !== 250) {
    const err = r.params.err ?? String(r.code);
    return redirectFailed(state, job, `PROVE refused: ${err}`);
  }
  // "checks that the reply is 250, that rcpt= is the canonical address, that the SHA-256
  // fingerprint of key= equals the 351's key=, and that proof= verifies under key=" (§60.10.8).
  if (r.params.rcpt !== prove.rcpt)
    return redirectFailed(state, job, 'PROVE answered for another address');
  const key = fromBase64url(r.params.key ?? '', 32);
  const proof = fromBase64url(r.params.proof ?? '', 64);
  if (key === undefined || proof === undefined) {
    return redirectFailed(state, job, 'PROVE answer without a key and a proof');
  }
  if (fingerprint(key) !== prove.fingerprint) {
    return redirectFailed(state, job, 'the target proved another key');
  }
  const input = proveInput(
    prove.nonce,
    state.challenge,
    state.serverName,
    state.config.binding ?? '',
    prove.rcpt,
  );
  return go({ ...state, phase: 'prove-check', pending: [] }, [
    { type: 'verify-prove', key, proof, input },
  ]);
}

/** The phase that waits for the oldest outstanding answer. */
function phaseFor(p: Pending | undefined): TransferClientPhase {
  return p?.kind === 'data' ? 'data' : 'rcpt';
}

function onRcptReply(state: S, job: DeliverJob, rcpt: string, r: Reply): Out {
  const rest = state.pending.slice(1);
  let s: S;
  if (r.code === 250) s = { ...state, pending: rest, accepted: [...state.accepted, rcpt] };
  else {
    // "A sender follows at most one redirect per recipient and message": a 351 from a
    // redirect target, or in answer to redirect=failed, is a temporary failure (§60.10.8).
    const second =
      r.code === 351 && (job.prove !== undefined || job.redirectFailed?.includes(rcpt));
    const reply =
      second === true ? redirectFailure(rcpt, 'a second redirect was offered', true) : r;
    // Rejected, unavailable, redirected or refused: that answer is this recipient's result.
    s = { ...state, pending: rest, results: [...state.results, { rcpt, reply }] };
  }
  if (rest.length === 0) return nextRcpt(s, job);
  return go({ ...s, phase: phaseFor(rest[0]) }, []);
}

function onDataReply(state: S, r: Reply): Out {
  const view = r.params.view as View | undefined;
  if (state.accepted.length === 0) {
    // Pipelined DATA after RCPTs that all failed: the server refuses it
    // (503 NMTP_ERR_TRANSPORT_NO_RECIPIENTS) — and drops an eager view unanswered —;
    // every recipient already has its result.
    if (r.code === 354) return abort(state, r); // it wants data for nobody: out of step
    return endJob(state);
  }
  if (r.code !== 354 || view === undefined || !VIEWS.includes(view)) {
    const results = state.accepted.map((rcpt) => ({ rcpt, reply: r }));
    return endJob({ ...state, accepted: [], results: [...state.results, ...results] });
  }
  if (state.eager !== undefined) {
    // "With send=full the 354 names view=full" (§60.10.4): anything else is out of step.
    if (view !== 'full') return abort(state, r);
    if (state.eager === 'sent')
      return go({ ...state, phase: 'answers', pending: [], eager: undefined }, []);
    return {
      state: { ...state, phase: 'sending', pending: [] },
      actions: [{ type: 'set-timer', seconds: 0 }],
    };
  }
  // `sending` has no timer of its own (§60.10.7: the server's data timer bounds a stall), so
  // the one `data` started is stopped first — before the host starts writing, which may
  // take longer than any reply timeout on a slow link.
  return {
    state: { ...state, phase: 'sending', pending: [] },
    actions: [
      { type: 'set-timer', seconds: 0 },
      { type: 'send-view', view },
    ],
  };
}

function onReply(state: S, r: Reply): Out {
  const job = state.job;
  // 421: the server is closing (timeout, too many errors): the session fails as a whole.
  if (r.code === 421 && state.phase !== 'quit') return abort(state, r);
  switch (state.phase) {
    case 'greeting': {
      // "A client that does not know the version MUST close" (§60.8).
      if (r.code !== 220 || r.params.version !== 'NMTP/1' || r.params.service !== 'transfer') {
        return abort(state, r);
      }
      const challenge = r.params.challenge ?? '';
      const server = r.params.server ?? '';
      // "A client signs a proof only for the server it has verified: when it checked the
      // certificate against a DNS name, the greeting's server name MUST be that name" (§60.8.1):
      // otherwise a server could pass on another server's challenge and name, and hand the
      // proof it gets to that server as ours.
      const verified = state.config.verifiedName;
      if (verified !== undefined && server.toLowerCase() !== verified.toLowerCase()) {
        return abort(
          state,
          new NmtpError(
            'NMTP_ERR_TRANSPORT_SERVER_NAME_MISMATCH',
            `the greeting names ${JSON.stringify(server.slice(0, 255))}, the certificate was verified for ${verified}`,
          ),
        );
      }
      return go({ ...state, phase: 'signing', challenge, serverName: server }, [
        { type: 'sign-proof', input: proofInput(challenge, server, state.config.domain) },
      ]);
    }
    case 'hello': {
      if (r.code !== 250) return abort(state, r);
      // The eager data the server takes (§60.10.4); anything unreadable counts as none.
      const announced = r.params.eager ?? '';
      const eager = /^(0|[1-9][0-9]{0,5})$/.test(announced) ? Number(announced) : 0;
      const s = { ...state, serverEager: eager };
      // "it MUST wait for HELLO's reply before anything else" (§60.2).
      return job === undefined ? toIdle(s, []) : startJob(s, job);
    }
    case 'proving':
      return job?.prove !== undefined ? onProveReply(state, job, r) : abort(state, r);
    case 'rcpt':
    case 'data': {
      const p = state.pending[0];
      if (p?.kind === 'rcpt' && job?.kind === 'deliver') return onRcptReply(state, job, p.rcpt, r);
      if (p?.kind === 'data') return onDataReply(state, r);
      return abort(state, r);
    }
    case 'sending':
    case 'answers': {
      // A refusal of the data as a whole (554, 552) ends the transaction for everyone.
      if (r.params.rcpt === undefined) {
        const results = state.accepted.map((rcpt) => ({ rcpt, reply: r }));
        return endJob({ ...state, accepted: [], results: [...state.results, ...results] });
      }
      // A deliver job reports each recipient as it was sent (answers come in RCPT order,
      // §60.10.5); a cookie's recipient is known only from the answer.
      const rcpt = job?.kind === 'deliver' ? (state.accepted[0] ?? r.params.rcpt) : r.params.rcpt;
      const results = [...state.results, { rcpt, reply: r }];
      const next = { ...state, results, accepted: state.accepted.slice(1) };
      return next.accepted.length === 0 ? endJob(next) : { state: next, actions: [] };
    }
    case 'cookie': {
      const p = state.pending[0];
      if (p?.kind !== 'cookie') return abort(state, r);
      const { cookie } = p.op;
      const results = [...state.results, { rcpt: r.params.rcpt ?? cookie, reply: r, cookie }];
      const rest = state.pending.slice(1);
      const s = { ...state, results, pending: rest };
      if (rest.length > 0) return go(s, []);
      const ops = job?.kind === 'cookies' ? job.ops : [];
      // Lock-step: the next operation, if any.
      if (state.next < ops.length) {
        const o = ops[state.next]!;
        return go({ ...s, next: state.next + 1, pending: [{ kind: 'cookie', op: o }] }, [
          cmd(o.op === 'status' ? 'STATUS' : 'GIVEUP', [o.cookie]),
        ]);
      }
      return endJob(s);
    }
    case 'idle':
      // Nothing is outstanding: an unsolicited reply means the server is out of step.
      return abort(state, r);
    case 'quit':
      return { state: { ...state, phase: 'closed' }, actions: [{ type: 'close' }] };
    default:
      return { state, actions: [] };
  }
}
