/**
 * The transfer client host (docs/protocol.md §60.10.7, §60.15): connects (implicit TLS,
 * §60.2), runs the transfer-client reducer (src/core/session/transfer-client.ts) for a job,
 * and returns each recipient's answer. The pieces live next to this file — one session on a
 * socket (session.ts), the message and its views, from memory or a file (source.ts), the
 * connection pool (pool.ts) and the whole sending procedure with SRV fallback and redirects
 * (deliver.ts); this module keeps the one-job entry points and re-exports the rest.
 */
import type { Duplex } from 'node:stream';
import { NmtpError } from '../core/errors/index.ts';
import type { ClientJob } from '../core/session/index.ts';
import {
  openConnection,
  runTransferJob,
  type ClientIdentity,
  type ConnectOptions,
  type Endpoint,
  type JobResult,
} from './session.ts';
import { transferTargets, type SrvLookup } from './deliver.ts';
import { announce, type MessageSource } from './source.ts';

export {
  ClientSession,
  openConnection,
  proveBinding,
  runTransferJob,
  type ClientIdentity,
  type ConnectOptions,
  type Endpoint,
  type JobResult,
  type SessionFailure,
} from './session.ts';
export {
  announce,
  bytesSource,
  fileSource,
  LayoutScanner,
  viewOf,
  viewRanges,
  type Announcement,
  type MessageLayout,
  type MessageSource,
} from './source.ts';
export { TransferPool, type PoolOptions } from './pool.ts';
export {
  deliver,
  deliverSourceJob,
  transferTargets,
  type SrvLookup,
  type Delivered,
  type DeliverOptions,
  type DeliveryResult,
} from './deliver.ts';

/** Connects to `endpoint` and runs `job` there (one job, then QUIT). */
export async function transferTo(
  endpoint: Endpoint,
  identity: ClientIdentity,
  job: ClientJob,
  message: MessageSource | Uint8Array | undefined,
  o: ConnectOptions = {},
): Promise<JobResult> {
  const socket = await openConnection(endpoint, o);
  return runTransferJob(socket, endpoint, identity, job, message, o);
}

/**
 * Runs `job` at the destination domain's transfer server: SRV targets in RFC 2782 order,
 * falling back to the next when one cannot be connected to or drops the session before
 * answering (a server that answered is never retried: its answers stand).
 */
export async function transferToDomain(
  domain: string,
  srv: SrvLookup,
  identity: ClientIdentity,
  job: ClientJob,
  message: MessageSource | Uint8Array | undefined,
  o: ConnectOptions = {},
): Promise<JobResult> {
  const errors: string[] = [];
  for (const endpoint of await transferTargets(domain, srv)) {
    let socket: Duplex;
    try {
      socket = await openConnection(endpoint, o);
    } catch (e) {
      errors.push((e as Error).message);
      continue;
    }
    const r = await runTransferJob(socket, endpoint, identity, job, message, o);
    if (r.failure === 'closed' && r.recipients.length === 0) {
      errors.push(`${endpoint.host}:${endpoint.port}: closed before answering`);
      continue;
    }
    return r;
  }
  throw new NmtpError('NMTP_ERR_TRANSPORT_CONNECT_FAILED', errors.join('; '));
}

/** The job that delivers `message` to `recipients` (announcement computed from it). */
export function deliverJob(recipients: readonly string[], message: Uint8Array): ClientJob {
  return { kind: 'deliver', recipients, ...announce(message) };
}
