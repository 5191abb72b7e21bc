/**
 * The queue's default deliver function: the transfer client (src/client/) with the
 * submission domain's key as its HELLO identity. A new message goes through `deliver()`,
 * which follows redirects (PROVE, fallback with redirect=failed, §60.10.8); each answer
 * names the endpoint that gave it. A job on a cookie goes first to the endpoint that
 * issued the cookie (the receiver binds cookies there), and to the domain's SRV targets
 * when that endpoint cannot be reached — except a redirect target's cookie, which goes
 * only to that target, after it proves the recipient's key again. The queue takes any
 * `DeliverFn`.
 */
import { randomBytes } from 'node:crypto';
import { NmtpError } from '../core/errors/index.ts';
import { deliver } from '../client/deliver.ts';
import {
  TransferPool,
  transferTo,
  transferToDomain,
  type ClientIdentity,
  type ConnectOptions,
  type PoolOptions,
  type SrvLookup,
} from '../client/transfer.ts';
import type { DeliverFn } from './queue.ts';

export interface TransferDeliverOptions {
  readonly identity: ClientIdentity;
  readonly srv: SrvLookup;
  /** How to connect, and how many sessions to keep per receiver (`maxPerDestination`). */
  readonly connect?: PoolOptions;
}

/** A DeliverFn that holds connections: `close` QUITs them (after the queue's close). */
export type ClosableDeliverFn = DeliverFn & { close(): Promise<void> };

export function transferDeliver(o: TransferDeliverOptions): ClosableDeliverFn {
  const c = o.connect ?? {};
  // Plaintext (loopback tests) applies to redirect targets too.
  const redirect: ConnectOptions = c.plaintext === true ? { plaintext: true } : {};
  // One pool for every new message: a session to a destination is kept for the next one
  // (a connection cache, as Postfix's scache), so a busy queue pays the TLS handshake and
  // the HELLO proof once per session instead of once per message. Idle sessions close
  // after the pool's idle timeout and never keep the process alive.
  const pool = new TransferPool(o.identity, c);
  const fn: DeliverFn = async (r) => {
    if (r.job.kind === 'deliver' && r.message !== undefined) {
      const d = await deliver(r.domain, r.job.recipients, r.message, o.identity, {
        ...c,
        srv: o.srv,
        redirect,
        pool,
      });
      // Unanswered recipients have no entry: the queue retries them (`failure` says why).
      // An answer from a redirect target keeps the key it proved: a cookie it issued is
      // polled there with a new proof (below).
      return {
        recipients: d.recipients.map((x) =>
          x.redirect?.followed === true
            ? { ...x, endpoint: { ...x.endpoint, fingerprint: x.redirect.fingerprint } }
            : x,
        ),
        ...(d.failure === undefined ? {} : { failure: d.failure }),
      };
    }
    const fingerprint = r.endpoint?.fingerprint;
    if (r.endpoint !== undefined && fingerprint !== undefined && r.job.kind !== 'deliver') {
      // A redirect target's cookie: only there, and only once it proves the recipient's
      // key again (its certificate proves nothing, §60.10.8). Its domain never issued the
      // cookie, so there is no fallback: a failure is temporary, and the queue tries later.
      const prove = {
        rcpt: r.rcpt ?? '',
        fingerprint,
        nonce: randomBytes(18).toString('base64url'),
      };
      const { host, port } = r.endpoint;
      return transferTo({ host, port }, o.identity, { ...r.job, prove }, r.message, {
        ...c,
        ...redirect,
        insecureTls: true,
      });
    }
    if (r.endpoint !== undefined && r.job.kind !== 'deliver') {
      try {
        return await transferTo(r.endpoint, o.identity, r.job, r.message, c);
      } catch (e) {
        if (!(e instanceof NmtpError) || e.code !== 'NMTP_ERR_TRANSPORT_CONNECT_FAILED') throw e;
      }
    }
    return transferToDomain(r.domain, o.srv, o.identity, r.job, r.message, c);
  };
  return Object.assign(fn, { close: () => pool.close() });
}
