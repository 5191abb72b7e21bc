/**
 * `nmtp serve`: the reference mailbox receiver on a TLS listener — the listener (transport
 * host), the transfer session host, and the mailbox decider, wired together.
 */
import type { TxtResolver } from '../core/keys/index.ts';
import type { SessionLimits } from '../core/wire/index.ts';
import { listen, type Listening, type ListenOptions } from './listener.ts';
import { Mailbox } from './mailbox.ts';
import { runTransferSession, type ReputationHook } from './transfer-host.ts';

export interface ServeOptions extends ListenOptions {
  /** The server's host name, named in the greeting and covered by every proof. */
  readonly serverName: string;
  readonly maildir: string;
  readonly resolveTxt: TxtResolver;
  readonly requireCsv?: boolean;
  readonly limits?: Partial<SessionLimits>;
  readonly reputation?: ReputationHook;
  readonly timeoutScale?: number;
  readonly onError?: (e: unknown) => void;
}

export interface Serving extends Listening {
  readonly mailbox: Mailbox;
}

export async function serveMailbox(o: ServeOptions): Promise<Serving> {
  const mailbox = await Mailbox.open({ maildir: o.maildir });
  const listening = await listen(o, (socket, ip) =>
    runTransferSession(socket, ip, {
      config: {
        serverName: o.serverName,
        ...(o.requireCsv === undefined ? {} : { requireCsv: o.requireCsv }),
        ...(o.limits === undefined ? {} : { limits: o.limits }),
      },
      decider: mailbox,
      resolveTxt: o.resolveTxt,
      ...(o.reputation === undefined ? {} : { reputation: o.reputation }),
      ...(o.timeoutScale === undefined ? {} : { timeoutScale: o.timeoutScale }),
      ...(o.onError === undefined ? {} : { onError: o.onError }),
    }),
  );
  return { ...listening, close: () => listening.close(), mailbox };
}
