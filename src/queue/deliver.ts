/**
 * The queue's default deliver function: the transfer client (src/client/) with the
 * submission domain's key as its HELLO identity. A new message goes through `deliver()`,
 * which follows redirects (PROVE, fallback with redirect=failed, §60.10.8); each answer
 * names the endpoint that gave it. A job on a cookie goes first to the endpoint that
 * issued the cookie (the receiver binds cookies there), and to the domain's SRV targets
 * when that endpoint cannot be reached. The queue takes any `DeliverFn`.
 */
import { NmtpError } from '../core/errors/index.ts';
import { deliver } from '../client/deliver.ts';
import {
  transferTo,
  transferToDomain,
  type ClientIdentity,
  type ConnectOptions,
  type SrvLookup,
} from '../client/transfer.ts';
import type { DeliverFn } from './queue.ts';

export interface TransferDeliverOptions {
  readonly identity: ClientIdentity;
  readonly srv: SrvLookup;
  readonly connect?: ConnectOptions;
}

export function transferDeliver(o: TransferDeliverOptions): DeliverFn {
  const c = o.connect ?? {};
  return async (r) => {
    if (r.job.kind === 'deliver' && r.message !== undefined) {
      const d = await deliver(r.domain, r.job.recipients, r.message, o.identity, {
        ...c,
        srv: o.srv,
        // Plaintext (loopback tests) applies to redirect targets too.
        redirect: c.plaintext === true ? { plaintext: true } : {},
      });
      // Unanswered recipients have no entry: the queue retries them (`failure` says why).
      return {
        recipients: d.recipients,
        ...(d.failure === undefined ? {} : { failure: d.failure }),
      };
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
}
