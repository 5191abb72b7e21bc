/**
 * The whole sending procedure for one message to one destination domain
 * (docs/protocol.md §60.10.8, §60.15): the domain's transfer SRV targets in RFC 2782 order,
 * the next one when a target cannot be reached or drops the session before answering; then,
 * for every recipient answered 351, the redirect target — connect, PROVE with a fresh nonce,
 * deliver there only if the target proves the recipient's key — and, when that fails, the
 * normal path again with `RCPT <a> redirect=failed`. At most one redirect per recipient.
 */
import { randomBytes } from 'node:crypto';
import { NmtpError } from '../core/errors/index.ts';
import {
  isRedirectLoop,
  redirectFailure,
  type ClientJob,
  type RecipientResult,
} from '../core/session/index.ts';
import { toBase64url } from '../core/sign/index.ts';
import { orderTargets, type NmtpService, type SrvAnswer } from '../dns/srv.ts';
import { TransferPool, type PoolOptions } from './pool.ts';
import type { ClientIdentity, ConnectOptions, Endpoint, SessionFailure } from './session.ts';
import { bytesSource, type Announcement, type MessageSource } from './source.ts';

export type SrvLookup = (service: NmtpService, domain: string) => Promise<SrvAnswer>;

/** The transfer SRV targets of `domain` in the order to try them (RFC 2782, §60.15). */
export async function transferTargets(domain: string, srv: SrvLookup): Promise<Endpoint[]> {
  const answer = await srv('transfer', domain);
  if (answer.status !== 'ok') {
    throw new NmtpError(
      'NMTP_ERR_TRANSPORT_NO_ROUTE',
      answer.status === 'none' ? `no SRV for ${domain}` : answer.detail,
    );
  }
  return orderTargets(answer.targets).map((t) => ({ host: t.name, port: t.port }));
}

export interface DeliverOptions extends PoolOptions {
  readonly srv: SrvLookup;
  /**
   * A pool to run the sessions in (kept open; its own connect options apply); default: one
   * of its own with these options, closed at the end.
   */
  readonly pool?: TransferPool;
  /**
   * Connect options for redirect targets, over the pool's; `insecureTls` is always set (the
   * key proof authenticates the target, §60.10.8). Tests may set `plaintext`.
   */
  readonly redirect?: ConnectOptions;
  /** A fresh PROVE nonce; default base64url of 18 random octets. */
  readonly nonce?: () => string;
}

export interface Delivered extends RecipientResult {
  /** The server whose answer this is. */
  readonly endpoint: Endpoint;
  /** The 351 that named a redirect target for this recipient, and what became of it. */
  readonly redirect?: {
    readonly target: Endpoint;
    readonly fingerprint: string;
    /** True: `reply` is the target's answer; false: the target failed, `reply` is the fallback's. */
    readonly followed: boolean;
  };
}

export interface DeliveryResult {
  /** One entry per answered recipient: domain answers first, then redirect outcomes. */
  readonly recipients: readonly Delivered[];
  /** Recipients nobody answered (no route, every target unreachable or dropped). */
  readonly unanswered: readonly string[];
  /** Why those were not answered. */
  readonly failure?: SessionFailure;
}

/** The deliver job for `recipients` with a source's announcement. */
export function deliverSourceJob(
  recipients: readonly string[],
  a: Announcement,
  extra: {
    prove?: NonNullable<Extract<ClientJob, { kind: 'deliver' }>['prove']>;
    redirectFailed?: readonly string[];
  } = {},
): ClientJob {
  return {
    kind: 'deliver',
    recipients,
    size: a.size,
    digest: a.digest,
    signers: a.signers,
    ...(extra.prove === undefined ? {} : { prove: extra.prove }),
    ...(extra.redirectFailed === undefined || extra.redirectFailed.length === 0
      ? {}
      : { redirectFailed: extra.redirectFailed }),
  };
}

interface Pass {
  readonly answered: Delivered[];
  readonly unanswered: string[];
  readonly failure?: SessionFailure;
}

/** `host:port` of a 351's `redirect=` (a bracketed IPv6 literal allowed). */
function parseTarget(text: string | undefined): Endpoint | undefined {
  const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(text ?? '');
  const port = Number(m?.[2]);
  if (m === null || port < 1 || port > 65535) return undefined;
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/**
 * Delivers `message` to `recipients` (all of domain `domain`) and returns every recipient's
 * answer. Throws only for a message that cannot be read or decoded.
 */
export async function deliver(
  domain: string,
  recipients: readonly string[],
  message: MessageSource | Uint8Array,
  identity: ClientIdentity,
  o: DeliverOptions,
): Promise<DeliveryResult> {
  const source = message instanceof Uint8Array ? bytesSource(message) : message;
  const announcement = await source.layout();
  const pool = o.pool ?? new TransferPool(identity, o);
  const nonce = o.nonce ?? ((): string => toBase64url(randomBytes(18)));

  /** The normal path: SRV targets in order; unanswered recipients go on to the next one. */
  const atDomain = async (
    rcpts: readonly string[],
    redirectFailed: readonly string[],
  ): Promise<Pass> => {
    let remaining = [...rcpts];
    const answered: Delivered[] = [];
    let failure: SessionFailure | undefined;
    let targets: Endpoint[];
    try {
      targets = await transferTargets(domain, o.srv);
    } catch (e) {
      return { answered, unanswered: remaining, failure: e as NmtpError };
    }
    for (const endpoint of targets) {
      if (remaining.length === 0) break;
      const failed = redirectFailed.filter((r) => remaining.includes(r));
      const job = deliverSourceJob(remaining, announcement, { redirectFailed: failed });
      let r;
      try {
        r = await pool.run(endpoint, job, source);
      } catch (e) {
        failure = e instanceof NmtpError ? e : new NmtpError('NMTP_ERR_TRANSPORT_CONNECT_FAILED');
        continue;
      }
      for (const x of r.recipients) answered.push({ ...x, endpoint });
      const done = new Set(r.recipients.map((x) => x.rcpt));
      remaining = remaining.filter((x) => !done.has(x));
      failure = r.failure;
    }
    return {
      answered,
      unanswered: remaining,
      ...(remaining.length > 0 && failure !== undefined ? { failure } : {}),
    };
  };

  /** Follows one 351; undefined when the redirect failed (fall back). */
  const follow = async (r: Delivered): Promise<Delivered | undefined> => {
    const target = parseTarget(r.reply.params.redirect);
    const fingerprint = r.reply.params.key;
    const rcpt = r.reply.params.rcpt ?? r.rcpt;
    if (target === undefined || fingerprint === undefined) return undefined;
    const job = deliverSourceJob([rcpt], announcement, {
      prove: { rcpt, fingerprint, nonce: nonce() },
    });
    let res;
    try {
      res = await pool.run(target, job, source, { ...o.redirect, insecureTls: true });
    } catch {
      return undefined; // unreachable: "the sender falls back to the normal path"
    }
    const answer = res.recipients.find((x) => x.rcpt === rcpt);
    // A session failure before the recipient was answered, a refused PROVE, another key or
    // a bad proof: the redirect failed (§60.10.8 step 4).
    if (answer === undefined) return undefined;
    const err = answer.reply.params.err;
    if (err === 'NMTP_ERR_TRANSPORT_REDIRECT_FAILED' && !isRedirectLoop(answer.reply)) {
      return undefined;
    }
    return { ...answer, endpoint: target, redirect: { target, fingerprint, followed: true } };
  };

  try {
    const first = await atDomain(recipients, []);
    const out: Delivered[] = [];
    const redirected: Delivered[] = [];
    for (const r of first.answered) (r.reply.code === 351 ? redirected : out).push(r);
    const followed = await Promise.all(redirected.map(follow));
    const failed = redirected.filter((_, i) => followed[i] === undefined);
    for (const f of followed) if (f !== undefined) out.push(f);
    let unanswered = first.unanswered;
    let failure = first.failure;
    if (failed.length > 0) {
      const back = failed.map((r) => r.rcpt);
      const second = await atDomain(back, back);
      for (const x of second.answered) {
        const orig = failed.find((r) => r.rcpt === x.rcpt);
        const target = parseTarget(orig?.reply.params.redirect);
        out.push({
          ...x,
          // "a 351 … in answer to redirect=failed, is that recipient's temporary failure"
          // (§60.10.8) — the reducer already made it one; any other answer stands.
          ...(x.reply.code === 351
            ? { reply: redirectFailure(x.rcpt, 'redirected again', true) }
            : {}),
          ...(target === undefined
            ? {}
            : {
                redirect: { target, fingerprint: orig?.reply.params.key ?? '', followed: false },
              }),
        });
      }
      unanswered = [...unanswered, ...second.unanswered];
      failure = second.failure ?? failure;
    }
    return { recipients: out, unanswered, ...(failure === undefined ? {} : { failure }) };
  } finally {
    if (o.pool === undefined) await pool.close();
  }
}
