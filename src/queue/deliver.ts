/**
 * The queue's default deliver function: the transfer client (src/client/transfer.ts) with
 * the submission domain's key as its HELLO identity. A job on a cookie goes first to the
 * endpoint that issued the cookie (the receiver binds cookies there), and to the domain's
 * SRV targets when that endpoint cannot be reached. The queue takes any `DeliverFn`, so a
 * redirect-following client can replace this one without touching the queue.
 */
import { NmtpError } from '../core/errors/index.ts';
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
