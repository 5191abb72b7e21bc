/**
 * The submission client (a user's program talking to its own domain's submission server) as
 * a pure reducer (docs/protocol.md §60.11.6). A session runs jobs one after another, in the
 * order given: AUTH (PLAIN, or KEY — the host signs the proof with the user's key), send a
 * message to recipients (RCPT…, SEND, chunks, the submission id), have the server sign a
 * message (SIGN: the signed message comes back as a payload), certify a user key (CERTIFY:
 * the certificate comes back as a payload), ask for a submission's status (STATUS), or one
 * plain command (NOOP, RSET, …). Each job ends in one `result` action, a value; then the
 * session takes the next job, waits `idle` for one (kept sessions), or QUITs.
 *
 * Lock-step (§60.2): one command, then all of its replies. Message octets and payload octets
 * are never held in the state: the host streams the message (`send-message`) and collects
 * the payload (`payload`), which the reducer bounds by the size the server announced and by
 * `maxPayload`. Key signing is the host's (an action), so no key is held here either.
 */
import { tryParseAddress } from '../address/index.ts';
import { NmtpError } from '../errors/index.ts';
import { toBase64url } from '../sign/index.ts';
import {
  DECIMAL_RE,
  isWellFormedCommand,
  type Command,
  type Reply,
  type Verb,
  type WireItem,
} from '../wire/index.ts';
import {
  proofInput,
  type BaseAction,
  type BaseEvent,
  type StateInfo,
  type Step,
} from './common.ts';
import type { RecipientStatus } from './submission-server.ts';

/** How the user logs in (§60.11.2). */
export type SubmissionCredentials =
  | { readonly mechanism: 'PLAIN'; readonly user: string; readonly password: string }
  /** The host holds the private key; the reducer asks it to sign the proof input. */
  | { readonly mechanism: 'KEY'; readonly user: string; readonly publicKey: Uint8Array };

export type SubmissionJob =
  | { readonly kind: 'auth'; readonly credentials: SubmissionCredentials }
  /** RCPT for each recipient, then SEND size= and the message (streamed by the host). */
  | { readonly kind: 'send'; readonly recipients: readonly string[]; readonly size: number }
  /** SIGN size= and the message; the signed message comes back as a payload. */
  | { readonly kind: 'sign'; readonly size: number }
  /** CERTIFY key= [days=]; the certificate's field value comes back as a payload. */
  | { readonly kind: 'certify'; readonly publicKey: Uint8Array; readonly days?: number }
  | { readonly kind: 'status'; readonly id: string }
  /** One command answered by one reply line (NOOP, RSET, or a probe of the server). */
  | { readonly kind: 'command'; readonly command: Command };

export interface SubmissionClientConfig {
  /** Jobs to run after the greeting, in order (more may come as `job` events). */
  readonly jobs?: readonly SubmissionJob[];
  /** When the jobs are done: wait `idle` for more (true) or QUIT (false, the default). */
  readonly keepOpen?: boolean;
  /** Largest payload (SIGN, CERTIFY) the client takes; default 64 MiB (the frame limit). */
  readonly maxPayload?: number;
}

export const DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024;

export type SubmissionClientPhase =
  | 'greeting'
  | 'signing'
  | 'auth'
  | 'rcpt'
  | 'send'
  | 'sending'
  | 'answer'
  | 'payload'
  | 'status'
  | 'command'
  | 'rset'
  | 'idle'
  | 'quit'
  | 'closed';

/**
 * THE table of the submission client's states (§60.11.6): seconds to wait for the server
 * (0 = no timer). Where the server waits for its own host, the client waits longer than the
 * server's bound (auth-wait 30 s, host-wait 120 s, §60.11.1), so that the server's answer —
 * even a 451 — arrives before the client gives up.
 */
export const SUBMISSION_CLIENT_STATES: Readonly<Record<SubmissionClientPhase, StateInfo<Verb>>> = {
  greeting: { timeout: 60, allowed: [], description: 'connected; waiting for the greeting' },
  signing: { timeout: 30, allowed: [], description: 'host signs the AUTH KEY proof' },
  auth: { timeout: 60, allowed: ['AUTH'], description: 'AUTH sent; waiting for 235 or 535' },
  rcpt: { timeout: 60, allowed: ['RCPT'], description: 'RCPT sent; waiting for its answer' },
  send: {
    timeout: 60,
    allowed: ['SEND', 'SIGN'],
    description: 'SEND or SIGN sent; waiting for 354',
  },
  sending: {
    timeout: 0,
    allowed: [],
    description: 'host sends the message in chunks (the server times out a stalled transfer)',
  },
  answer: {
    timeout: 180,
    allowed: ['STATUS', 'CERTIFY'],
    description: 'message, CERTIFY or STATUS sent; waiting for the id, payload or count line',
  },
  payload: {
    timeout: 120,
    allowed: [],
    description: 'receiving the payload chunks (restarts at every complete chunk)',
  },
  status: { timeout: 60, allowed: [], description: 'reading the count= lines after STATUS' },
  command: { timeout: 60, allowed: [], description: 'a plain command sent; waiting for its reply' },
  rset: {
    timeout: 60,
    allowed: ['RSET'],
    description: 'RSET after a failed SEND (the server may keep its recipients)',
  },
  idle: {
    timeout: 0,
    allowed: [],
    description: 'jobs done, session kept for the next one; the host decides how long',
  },
  quit: { timeout: 30, allowed: ['QUIT'], description: 'QUIT sent; waiting for 221' },
  closed: { timeout: 0, allowed: [], description: 'done' },
};

/** Why a job did not get its answer: the session failed, or the job was refused locally. */
export type SubmissionFailure = Reply | NmtpError | 'timeout' | 'closed';

/** A RCPT and its answer (250 2.1.5 rcpt=<canonical>, or the refusal). */
export interface RcptAnswer {
  readonly rcpt: string;
  readonly reply: Reply;
}

interface ResultBase {
  /** The job did what it asked (235, 250 id=, a whole payload, the status lines, < 400). */
  readonly ok: boolean;
  /** The reply that decided the job (success or refusal); absent for local refusals. */
  readonly reply?: Reply;
  /** Set when the job failed without a decision from the server (see SubmissionFailure). */
  readonly failure?: SubmissionFailure;
}

/** What became of one job: a value, never an exception. */
export type SubmissionResult =
  | (ResultBase & { readonly kind: 'auth'; readonly user?: string })
  | (ResultBase & {
      readonly kind: 'send';
      readonly rcpts: readonly RcptAnswer[];
      readonly id?: string;
    })
  /** `size`: payload octets handed out in `payload` actions (all of them when ok). */
  | (ResultBase & { readonly kind: 'sign'; readonly size: number })
  | (ResultBase & { readonly kind: 'certify'; readonly size: number })
  | (ResultBase & {
      readonly kind: 'status';
      readonly id: string;
      readonly recipients: readonly RecipientStatus[];
    })
  | (ResultBase & { readonly kind: 'command' });

export type SubmissionClientAction =
  | BaseAction
  /** Sign `input` (§60.8.1 proof input) with the user's key; feed `proof-signed`. */
  | { readonly type: 'sign-proof'; readonly input: Uint8Array }
  /** Send the job's message in chunks (≤ 1 MiB, the last LAST); feed `message-sent`. */
  | { readonly type: 'send-message'; readonly size: number }
  /** Payload octets (SIGN, CERTIFY), in order; never more than the announced size. */
  | { readonly type: 'payload'; readonly bytes: Uint8Array }
  | { readonly type: 'result'; readonly job: SubmissionJob; readonly result: SubmissionResult }
  /** The session is `idle`: the host may give it the next job (or finish it). */
  | { readonly type: 'ready' };

export type SubmissionClientEvent =
  | BaseEvent
  | { readonly type: 'proof-signed'; readonly signature: string }
  /** The host finished sending the message. */
  | { readonly type: 'message-sent' }
  /** One more job: run now when idle, else after the jobs before it. */
  | { readonly type: 'job'; readonly job: SubmissionJob }
  /** QUIT when the jobs given so far are done. */
  | { readonly type: 'finish' };

export interface SubmissionClientState {
  readonly phase: SubmissionClientPhase;
  readonly config: SubmissionClientConfig;
  /** The greeting's challenge and server name (the AUTH KEY proof input). */
  readonly challenge: string;
  readonly serverName: string;
  /** The job in progress, and those waiting, in order. */
  readonly job?: SubmissionJob;
  readonly queue: readonly SubmissionJob[];
  /** send: RCPT answers so far, and how many were accepted. */
  readonly rcpts: readonly RcptAnswer[];
  readonly accepted: number;
  /** The reply that announced what follows (250 size= of a payload, 250 count= of STATUS). */
  readonly announced?: Reply;
  /** payload: octets announced and received; status: lines announced (expected). */
  readonly expected: number;
  readonly received: number;
  readonly statuses: readonly RecipientStatus[];
  /** The host asked to finish: QUIT once the queue is empty. */
  readonly finishing: boolean;
}

type S = SubmissionClientState;
type A = SubmissionClientAction;
type Out = Step<S, A>;
type Job = SubmissionJob;

/** "submission id = 1*64( ALPHA / DIGIT / "-" / "_" )" (§60.4). */
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const STATES: readonly RecipientStatus['state'][] = [
  'pending',
  'accepted',
  'deferred',
  'rejected',
  'given-up',
];

export function initialSubmissionClient(config: SubmissionClientConfig): S {
  return {
    phase: 'greeting',
    config,
    challenge: '',
    serverName: '',
    queue: config.jobs ?? [],
    rcpts: [],
    accepted: 0,
    expected: 0,
    received: 0,
    statuses: [],
    finishing: false,
  };
}

/**
 * Enters `state` and (re)starts its timer; 0 stops it. As for the server, "the timer
 * restarts on every complete command, complete chunk or host answer" (§60.9).
 */
function go(state: S, actions: A[]): Out {
  return {
    state,
    actions: [
      ...actions,
      { type: 'set-timer', seconds: SUBMISSION_CLIENT_STATES[state.phase].timeout },
    ],
  };
}

function command(verb: Verb, args: string[] = [], params: Record<string, string> = {}): Command {
  return { verb, args, params } as Command;
}

const empty = (job: Job): SubmissionResult => {
  switch (job.kind) {
    case 'send':
      return { kind: 'send', ok: false, rcpts: [] };
    case 'sign':
    case 'certify':
      return { kind: job.kind, ok: false, size: 0 };
    case 'status':
      return { kind: 'status', ok: false, id: job.id, recipients: [] };
    case 'auth':
    case 'command':
      return { kind: job.kind, ok: false };
  }
};

/** The result of the job in progress, from what the state collected, plus `extra`. */
function resultOf(state: S, job: Job, extra: Partial<ResultBase> & Record<string, unknown>): A {
  const base = empty(job);
  const collected: Record<string, unknown> =
    job.kind === 'send'
      ? { rcpts: state.rcpts }
      : job.kind === 'sign' || job.kind === 'certify'
        ? { size: state.received }
        : job.kind === 'status'
          ? { recipients: state.statuses }
          : {};
  return { type: 'result', job, result: { ...base, ...collected, ...extra } as SubmissionResult };
}

/** Clears the per-job scratch fields. */
function fresh(state: S): S {
  const s: S = {
    ...state,
    rcpts: [],
    accepted: 0,
    expected: 0,
    received: 0,
    statuses: [],
  };
  delete (s as { job?: Job }).job;
  delete (s as { announced?: Reply }).announced;
  return s;
}

/** The job in progress ends with `extra` in its result; the next one starts. */
function endJob(state: S, extra: Partial<ResultBase> & Record<string, unknown>): Out {
  const actions: A[] = state.job === undefined ? [] : [resultOf(state, state.job, extra)];
  return startNext(fresh(state), actions);
}

/** The next job, or idle, or QUIT. */
function startNext(state: S, actions: A[]): Out {
  const [job, ...queue] = state.queue;
  if (job !== undefined) return startJob({ ...state, job, queue }, job, actions);
  if (state.config.keepOpen === true && !state.finishing) {
    // seconds 0 (in go): stop the session timer; idle has none of its own.
    return go({ ...state, phase: 'idle' }, [...actions, { type: 'ready' }]);
  }
  return go({ ...state, phase: 'quit' }, [
    ...actions,
    { type: 'command', command: command('QUIT') },
  ]);
}

/** Ends at once: every job not yet answered gets `failure`; the connection closes. */
function abort(state: S, failure: SubmissionFailure): Out {
  const jobs = [...(state.job === undefined ? [] : [state.job]), ...state.queue];
  const actions: A[] = jobs.map((job, i) =>
    i === 0 && state.job !== undefined
      ? resultOf(state, job, { failure })
      : resultOf(fresh(state), job, { failure }),
  );
  return {
    state: { ...fresh(state), phase: 'closed', queue: [] },
    actions: [...actions, { type: 'set-timer', seconds: 0 }, { type: 'close' }],
  };
}

/** Sends `c` in `phase`, or refuses the job locally when `c` could not be printed. */
function send(state: S, phase: SubmissionClientPhase, c: Command, actions: A[] = []): Out {
  if (!isWellFormedCommand(c)) {
    const why = `${c.verb} would not be a well-formed command line (a word with a space or a control, or too long)`;
    const failure = new NmtpError('NMTP_ERR_TRANSPORT_BAD_ARGUMENT', why);
    return prepend(actions, endJob(state, { failure }));
  }
  return go({ ...state, phase }, [...actions, { type: 'command', command: c }]);
}

const local = (
  code: 'NMTP_ERR_TRANSPORT_BAD_ARGUMENT' | 'NMTP_ERR_TRANSPORT_NO_RECIPIENTS',
  why: string,
) => new NmtpError(code, why);

function startJob(state: S, job: Job, actions: A[]): Out {
  switch (job.kind) {
    case 'auth': {
      const c = job.credentials;
      if (c.mechanism === 'PLAIN') {
        // "the RFC 4616 message [authzid] NUL authcid NUL passwd in UTF-8, base64url-encoded;
        // authzid MUST be empty or equal to authcid" (§60.11.2): we send it empty.
        const message = new TextEncoder().encode(`\0${c.user}\0${c.password}`);
        return send(state, 'auth', command('AUTH', ['PLAIN', toBase64url(message)]), actions);
      }
      // "identity = the user's canonical address (§20.6.1) in UTF-8" (§60.8.1): the server
      // computes the proof input from the canonical form, so the client signs that form.
      const parsed = tryParseAddress(c.user);
      if (!parsed.ok) return prepend(actions, endJob(state, { failure: parsed.error }));
      const input = proofInput(state.challenge, state.serverName, parsed.address.canonical);
      return go({ ...state, phase: 'signing' }, [...actions, { type: 'sign-proof', input }]);
    }
    case 'send': {
      if (job.recipients.length === 0) {
        // What the server would answer (503 NMTP_ERR_TRANSPORT_NO_RECIPIENTS), without asking.
        return prepend(
          actions,
          endJob(state, { failure: local('NMTP_ERR_TRANSPORT_NO_RECIPIENTS', 'no recipients') }),
        );
      }
      // Every RCPT must be printable before the first is sent: a transaction refused halfway
      // would leave recipients on the server.
      if (!job.recipients.every((a) => isWellFormedCommand(command('RCPT', [wireForm(a)])))) {
        const why = 'a recipient is not one word (no space or control character)';
        return prepend(
          actions,
          endJob(state, { failure: local('NMTP_ERR_TRANSPORT_BAD_ARGUMENT', why) }),
        );
      }
      return send(state, 'rcpt', command('RCPT', [wireForm(job.recipients[0]!)]), actions);
    }
    case 'sign':
      return send(state, 'send', command('SIGN', [], { size: String(job.size) }), actions);
    case 'certify': {
      const params: Record<string, string> = { key: toBase64url(job.publicKey) };
      if (job.days !== undefined) params.days = String(job.days);
      return send(state, 'answer', command('CERTIFY', [], params), actions);
    }
    case 'status':
      if (!ID_RE.test(job.id)) {
        return prepend(
          actions,
          endJob(state, {
            failure: local(
              'NMTP_ERR_TRANSPORT_BAD_ARGUMENT',
              'a submission id is 1 to 64 of A-Z a-z 0-9 - _',
            ),
          }),
        );
      }
      return send(state, 'answer', command('STATUS', [job.id]), actions);
    case 'command':
      return send(state, 'command', job.command, actions);
  }
}

/**
 * An address as the server wants it: "address an address in wire form (§20.6.2)" (§60.4),
 * i.e. canonical — a user may type `Bob@Example.NET`. What does not parse goes as written,
 * so that the server's refusal (501 5.1.3) is that recipient's result.
 */
function wireForm(address: string): string {
  const parsed = tryParseAddress(address);
  return parsed.ok ? parsed.address.canonical : address;
}

function prepend(actions: A[], out: Out): Out {
  return { state: out.state, actions: [...actions, ...out.actions] };
}

export function submissionClient(state: S, event: SubmissionClientEvent): Out {
  if (state.phase === 'closed') return { state, actions: [] };
  switch (event.type) {
    case 'timeout':
      // Idle and sending have no timer; a stale one changes nothing.
      if (SUBMISSION_CLIENT_STATES[state.phase].timeout === 0) return { state, actions: [] };
      return abort(state, 'timeout');
    case 'closed':
      if (state.phase === 'quit') return { state: { ...state, phase: 'closed' }, actions: [] };
      return abort(state, 'closed');
    case 'proof-signed': {
      const job = state.job;
      if (
        state.phase !== 'signing' ||
        job?.kind !== 'auth' ||
        job.credentials.mechanism !== 'KEY'
      ) {
        return { state, actions: [] };
      }
      const c = job.credentials;
      const user = tryParseAddress(c.user);
      const canonical = user.ok ? user.address.canonical : c.user;
      return send(
        state,
        'auth',
        command('AUTH', ['KEY', canonical, toBase64url(c.publicKey), event.signature]),
      );
    }
    case 'message-sent':
      if (state.phase !== 'sending') return { state, actions: [] };
      return go({ ...state, phase: 'answer' }, []);
    case 'job':
      if (state.phase === 'idle') return startNext({ ...state, queue: [event.job] }, []);
      return { state: { ...state, queue: [...state.queue, event.job] }, actions: [] };
    case 'finish':
      if (state.phase === 'idle') return startNext({ ...state, finishing: true }, []);
      return { state: { ...state, finishing: true }, actions: [] };
    case 'wire':
      return onWire(state, event.item);
    default:
      return { state, actions: [] };
  }
}

function onWire(state: S, item: WireItem): Out {
  switch (item.kind) {
    case 'error':
      // A reply we cannot parse, or framing lost: nothing more can be trusted.
      return abort(state, item.error);
    case 'command':
      return abort(state, new NmtpError('NMTP_ERR_WIRE_SYNTAX', 'a command from the server'));
    case 'reply':
      return onReply(state, item.reply);
    case 'chunk':
      if (state.phase !== 'payload') {
        return abort(
          state,
          new NmtpError('NMTP_ERR_WIRE_UNEXPECTED_CHUNK', 'a chunk outside a payload', {
            offset: item.offset,
          }),
        );
      }
      return { state, actions: [] };
    case 'chunk-data': {
      if (state.phase !== 'payload') return { state, actions: [] };
      const received = state.received + item.bytes.length;
      // "followed, from the server, by n octets in chunks" (§60.11.4): never more.
      if (received > state.expected) return abort(state, mismatch(state.expected, received));
      return { state: { ...state, received }, actions: [{ type: 'payload', bytes: item.bytes }] };
    }
    case 'chunk-end':
      if (state.phase !== 'payload') return { state, actions: [] };
      if (!item.last) return go(state, []);
      if (state.received !== state.expected) {
        return abort(state, mismatch(state.expected, state.received));
      }
      return endJob(state, { ok: true, ...(state.announced ? { reply: state.announced } : {}) });
  }
}

const mismatch = (size: number, received: number): NmtpError =>
  new NmtpError(
    'NMTP_ERR_TRANSPORT_SIZE_MISMATCH',
    `the payload announced ${size} octets, its chunks carry ${received > size ? 'more' : received}`,
    { size, received },
  );

/** The server answered something the current state cannot take: it is out of step. */
const outOfStep = (state: S, r: Reply): Out => abort(state, r);

function onReply(state: S, r: Reply): Out {
  const job = state.job;
  // 421: the server is closing (timeout, too many errors): the session fails as a whole.
  if (r.code === 421 && state.phase !== 'quit') return abort(state, r);
  switch (state.phase) {
    case 'greeting': {
      // "A client that does not know the version MUST close" (§60.8); a transfer service is
      // not one a submission client can use ("each connection serves exactly one", §60.2).
      const p = r.params;
      if (
        r.code !== 220 ||
        p.version !== 'NMTP/1' ||
        p.service !== 'submission' ||
        p.challenge === undefined ||
        p.server === undefined
      ) {
        return abort(state, r);
      }
      return startNext({ ...state, challenge: p.challenge, serverName: p.server }, []);
    }
    case 'auth':
      if (job?.kind !== 'auth') return outOfStep(state, r);
      // "Success: 235 2.7.0 user=<canonical address>. Failure: 535 … (the session stays in
      // auth)" (§60.11.2): a refusal is this job's result; the next job may try again.
      return endJob(state, {
        ok: r.code === 235,
        reply: r,
        ...(r.code === 235 && r.params.user !== undefined ? { user: r.params.user } : {}),
      });
    case 'rcpt': {
      if (job?.kind !== 'send') return outOfStep(state, r);
      const rcpts = [...state.rcpts, { rcpt: job.recipients[state.rcpts.length]!, reply: r }];
      const accepted = state.accepted + (r.code === 250 ? 1 : 0);
      const s = { ...state, rcpts, accepted };
      const next = job.recipients[rcpts.length];
      if (next !== undefined) return send(s, 'rcpt', command('RCPT', [wireForm(next)]));
      // Nobody accepted: there is no transaction to send the message in.
      if (accepted === 0) return endJob(s, {});
      return send(s, 'send', command('SEND', [], { size: String(job.size) }));
    }
    case 'send':
      if (job?.kind !== 'send' && job?.kind !== 'sign') return outOfStep(state, r);
      if (r.code !== 354) return failedTransaction(state, job, r);
      return go({ ...state, phase: 'sending' }, [{ type: 'send-message', size: job.size }]);
    case 'answer':
      return onAnswer(state, r);
    case 'status': {
      if (job?.kind !== 'status') return outOfStep(state, r);
      // "one line per recipient, each naming it": 250 2.0.0 rcpt=<a> state=<…> (§60.11.5).
      const rcpt = r.params.rcpt;
      const st = r.params.state as RecipientStatus['state'] | undefined;
      if (r.code !== 250 || rcpt === undefined || st === undefined || !STATES.includes(st)) {
        return outOfStep(state, r);
      }
      // A deferred recipient's details, when the server gives them (§60.11.5).
      const { cookie, next, expires } = r.params;
      const when = (t: string | undefined): number | undefined =>
        t !== undefined && /^\d{1,12}$/.test(t) ? Number(t) : undefined;
      const status: RecipientStatus = {
        rcpt,
        state: st,
        ...(cookie === undefined ? {} : { cookie }),
        ...(when(next) === undefined ? {} : { next: when(next)! }),
        ...(when(expires) === undefined ? {} : { expires: when(expires)! }),
      };
      const statuses = [...state.statuses, status];
      const s = { ...state, statuses };
      if (statuses.length < state.expected) return go(s, []);
      return endJob(s, { ok: true, reply: state.announced! });
    }
    case 'command':
      // A 354 or a payload would be followed by data this job does not know about.
      if (r.code === 354 || (r.code === 250 && r.params.size !== undefined)) {
        return outOfStep(state, r);
      }
      return endJob(state, { ok: r.code < 400, reply: r });
    case 'rset':
      // Whatever RSET was answered, the next transaction starts from nothing.
      return startNext(state, []);
    case 'quit':
      return {
        state: { ...state, phase: 'closed' },
        actions: [{ type: 'set-timer', seconds: 0 }, { type: 'close' }],
      };
    case 'signing':
    case 'sending':
    case 'payload':
    case 'idle':
      // Nothing is outstanding: an unsolicited reply means the server is out of step.
      return outOfStep(state, r);
    default:
      return { state, actions: [] };
  }
}

/**
 * "A SEND that does not end in an id is followed by RSET" (§60.11.6): a server that refused
 * SEND (552) or failed to queue the message (451) may still hold the recipients, and the
 * next transaction must not inherit them.
 */
function failedTransaction(state: S, job: Job, r: Reply): Out {
  if (job.kind !== 'send' || state.accepted === 0) return endJob(state, { reply: r });
  const result = resultOf(state, job, { reply: r });
  return go({ ...fresh(state), phase: 'rset' }, [
    result,
    { type: 'command', command: command('RSET') },
  ]);
}

function onAnswer(state: S, r: Reply): Out {
  const job = state.job;
  switch (job?.kind) {
    case 'send': {
      // "answers 250 2.0.0 id=<id>" (§60.11.3).
      const id = r.params.id;
      if (r.code === 250 && id !== undefined && ID_RE.test(id))
        return endJob(state, { ok: true, reply: r, id });
      if (r.code === 250) return outOfStep(state, r);
      return failedTransaction(state, job, r);
    }
    case 'sign':
    case 'certify': {
      // "a payload reply: 250 2.0.0 size=<n> followed, from the server, by n octets in
      // chunks (§60.5), the last marked LAST" (§60.11.4).
      if (r.code !== 250) return endJob(state, { reply: r });
      const text = r.params.size;
      if (text === undefined || !DECIMAL_RE.test(text)) return outOfStep(state, r);
      const size = Number(text);
      // "A client takes a payload only up to its limit (default 64 MiB), and never more
      // octets than size= announced" (§60.11.6).
      const max = state.config.maxPayload ?? DEFAULT_MAX_PAYLOAD;
      if (size > max) {
        // The chunks follow whether we want them or not: the only way to refuse is to close.
        return abort(
          state,
          new NmtpError(
            'NMTP_ERR_TRANSPORT_MESSAGE_TOO_LARGE',
            `the server announced a payload of ${size} octets; the limit is ${max}`,
            { size, limit: max },
          ),
        );
      }
      return go({ ...state, phase: 'payload', announced: r, expected: size, received: 0 }, []);
    }
    case 'status': {
      // "STATUS <id> → 250 2.0.0 id=<id> count=<n>, then one line per recipient" (§60.11.5).
      if (r.code !== 250) return endJob(state, { reply: r });
      const text = r.params.count;
      if (text === undefined || !DECIMAL_RE.test(text)) return outOfStep(state, r);
      const count = Number(text);
      if (count === 0) return endJob(state, { ok: true, reply: r });
      return go({ ...state, phase: 'status', announced: r, expected: count }, []);
    }
    default:
      return outOfStep(state, r);
  }
}
