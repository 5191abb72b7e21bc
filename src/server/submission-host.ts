/**
 * The submission-server session host (src/core/session/submission-server.ts on a socket):
 * the generic loop (session-loop.ts) plus a pluggable `SubmissionBackend` that checks
 * logins, takes messages (SEND), signs them (SIGN), certifies user keys (CERTIFY) and
 * reports delivery status. A backend failure is a temporary one: the reducer answers
 * "451 4.3.0 NMTP_ERR_TRANSPORT_LOCAL" (§60.11) and the session goes on.
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { NmtpError } from '../core/errors/index.ts';
import { ed25519, toBase64url } from '../core/sign/index.ts';
import {
  initialSubmissionServer,
  submissionServer,
  type RecipientStatus,
  type ServerConfig,
  type SubmissionAction,
  type SubmissionEvent,
  type SubmissionState,
} from '../core/session/index.ts';
import { runSession } from './session-loop.ts';
import type { MessageSink } from './transfer-host.ts';

type Act<T extends SubmissionAction['type']> = Extract<SubmissionAction, { type: T }>;

export interface SubmissionBackend {
  /**
   * PLAIN: is the password right? KEY: is this key the user's? (The host has already
   * verified the signature over the challenge with that key.)
   */
  authenticate(a: Act<'authenticate'>): Promise<boolean>;
  /** Where the octets of a SEND or SIGN go, opened at the first chunk. */
  open(user: string): Promise<MessageSink>;
  /** Queues the message; returns the submission id (STATUS asks about it later). */
  submit(a: Act<'submit'>, message: MessageSink): Promise<string>;
  /** Signs the message; returns the signed octets. */
  sign(a: Act<'sign'>, message: MessageSink): Promise<Uint8Array>;
  /** Issues a certificate for the user's key; returns the Certificate field value. */
  certify(a: Act<'certify'>): Promise<string>;
  /** Per-recipient status, or undefined for an id this user never submitted. */
  status(a: Act<'submission-status'>): Promise<readonly RecipientStatus[] | undefined>;
  discard?(message: MessageSink): Promise<void>;
}

export interface SubmissionHostOptions {
  readonly config: ServerConfig;
  readonly backend: SubmissionBackend;
  readonly timeoutScale?: number;
  readonly onError?: (e: unknown) => void;
}

export function runSubmissionSession(
  socket: Duplex,
  ip: string,
  o: SubmissionHostOptions,
): Promise<void> {
  let sink: MessageSink | undefined;
  let user = '';
  const b = o.backend;
  const take = (): MessageSink | undefined => {
    const s = sink;
    sink = undefined;
    return s;
  };

  const perform = async (a: SubmissionAction): Promise<SubmissionEvent | undefined> => {
    try {
      switch (a.type) {
        case 'authenticate': {
          // KEY: "the user signs the challenge" (§60.11) — checked here, once, for every
          // backend; the backend only says whether the key is the user's.
          const signed =
            a.mechanism === 'PLAIN' || ed25519.verify(a.publicKey, a.input, a.signature);
          const ok = signed && (await b.authenticate(a));
          if (ok) user = a.user;
          return { type: 'auth-result', ok };
        }
        case 'store-chunk':
          // Chunks only flow after AUTH succeeded, so `user` is known (§60.11).
          sink ??= await b.open(user);
          await sink.write(a.bytes);
          return undefined;
        case 'submit': {
          const m = take() ?? (await b.open(a.user));
          return { type: 'submitted', id: await b.submit(a, m) };
        }
        case 'sign': {
          const m = take() ?? (await b.open(a.user));
          return { type: 'signed', bytes: await b.sign(a, m) };
        }
        case 'certify':
          return { type: 'certified', certificate: await b.certify(a) };
        case 'submission-status':
          return { type: 'status-result', id: a.id, recipients: await b.status(a) };
        default:
          return undefined;
      }
    } catch (e) {
      o.onError?.(e);
      // "refused `550 5.7.1 err=NMTP_ERR_TRANSPORT_FROM_MISMATCH`"; a malformed message
      // "`554 5.6.0 err=<its code>`" (§60.11.3). Anything else is a local, temporary failure.
      if (e instanceof NmtpError && !e.temporary && (a.type === 'submit' || a.type === 'sign')) {
        const from = e.code === 'NMTP_ERR_TRANSPORT_FROM_MISMATCH';
        return from
          ? { type: 'host-refused', code: 550, enhanced: '5.7.1', err: e.code }
          : { type: 'host-refused', code: 554, enhanced: '5.6.0', err: e.code };
      }
      return { type: 'host-failed', text: '' };
    }
  };

  return runSession<SubmissionState, SubmissionEvent, SubmissionAction>(socket, {
    initial: initialSubmissionServer(o.config),
    reducer: submissionServer,
    connected: { type: 'connected', challenge: toBase64url(randomBytes(18)), ip },
    perform,
    ended() {
      const s = take();
      if (s && b.discard) void b.discard(s).catch(o.onError);
    },
    ...(o.timeoutScale === undefined ? {} : { timeoutScale: o.timeoutScale }),
    ...(o.onError === undefined ? {} : { onError: o.onError }),
  });
}
