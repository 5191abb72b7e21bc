/**
 * `nmtp serve`: the reference mailbox receiver on a TLS listener — the listener (transport
 * host), the transfer session host, the mailbox decider and the user keys it holds (to
 * answer PROVE as a redirect target, §60.10.8), wired together.
 */
import { tryParseAddress } from '../core/address/index.ts';
import type { TxtResolver } from '../core/keys/index.ts';
import type { SigningKey } from '../core/sign/index.ts';
import type { SessionLimits } from '../core/wire/index.ts';
import { checkListenOptions, listen, type Listening, type ListenOptions } from './listener.ts';
import { Mailbox } from './mailbox.ts';
import type { Leftovers } from './mailbox-store.ts';
import { runTransferSession, type ReputationHook, type TransferDecider } from './transfer-host.ts';

export interface ServeOptions extends ListenOptions {
  /** The server's host name, named in the greeting and covered by every proof. */
  readonly serverName: string;
  readonly maildir: string;
  /** The poll window given to deferred senders, seconds (default 60 / 3600). */
  readonly minPoll?: number;
  readonly maxPoll?: number;
  readonly resolveTxt: TxtResolver;
  readonly requireCsv?: boolean;
  readonly limits?: Partial<SessionLimits>;
  readonly reputation?: ReputationHook;
  /**
   * Keys of users this endpoint holds, by address (canonicalised here, §20.6.1): PROVE for
   * them is answered with a proof (§60.10.8), for anyone else with
   * NMTP_ERR_TRANSPORT_PROVE_NO_KEY.
   */
  readonly userKeys?: ReadonlyMap<string, SigningKey>;
  readonly timeoutScale?: number;
  readonly onError?: (e: unknown) => void;
  /**
   * Journal small messages with group commit (default true); false stores every message
   * in its own fsync'd file (src/server/mailbox.ts) — for comparison (bench/).
   */
  readonly journal?: boolean;
  /** What the start-up found a crash had left in the maildir, and removed (a log line). */
  readonly onRecovered?: (found: Leftovers) => void;
  /**
   * The decider of each session, given the mailbox (default: the mailbox itself). The
   * gateway puts its reverse direction in front of the mailbox here (src/gateway/reverse).
   */
  readonly deciderFor?: (mailbox: Mailbox) => TransferDecider;
}

export interface Serving extends Listening {
  readonly mailbox: Mailbox;
}

/** The user keys by canonical address; a malformed address is its NMTP_ERR_ADDR_* error. */
function canonicalKeys(keys: ReadonlyMap<string, SigningKey>): Map<string, SigningKey> {
  const out = new Map<string, SigningKey>();
  for (const [address, key] of keys) {
    const parsed = tryParseAddress(address, { mode: 'input' });
    if (!parsed.ok) throw parsed.error;
    out.set(parsed.address.canonical, key);
  }
  return out;
}

export async function serveMailbox(o: ServeOptions): Promise<Serving> {
  const userKeys = o.userKeys === undefined ? undefined : canonicalKeys(o.userKeys);
  // A listener that may not run is refused before the maildir is claimed.
  checkListenOptions(o);
  const mailbox = await Mailbox.open({
    maildir: o.maildir,
    journal: o.journal ?? true,
    ...(o.onError === undefined ? {} : { onError: o.onError }),
    ...(o.onRecovered === undefined ? {} : { onRecovered: o.onRecovered }),
    ...(o.minPoll === undefined ? {} : { minPoll: o.minPoll }),
    ...(o.maxPoll === undefined ? {} : { maxPoll: o.maxPoll }),
  });
  const listening = await listen(o, async (socket, ip) => {
    // Eager data unless the policy holds preview recipients (read per session).
    const eagerMax = await mailbox.eagerMax();
    // Gone while the policy was read: no session to run (its 'close' has fired already).
    if (socket.destroyed) return;
    return runTransferSession(socket, ip, {
      config: {
        serverName: o.serverName,
        eagerMax,
        ...(o.requireCsv === undefined ? {} : { requireCsv: o.requireCsv }),
        ...(o.limits === undefined ? {} : { limits: o.limits }),
      },
      decider: o.deciderFor?.(mailbox) ?? mailbox,
      resolveTxt: o.resolveTxt,
      ...(o.reputation === undefined ? {} : { reputation: o.reputation }),
      ...(userKeys === undefined ? {} : { userKeys: (rcpt: string) => userKeys.get(rcpt) }),
      ...(o.timeoutScale === undefined ? {} : { timeoutScale: o.timeoutScale }),
      ...(o.onError === undefined ? {} : { onError: o.onError }),
    });
  }).catch(async (e: unknown) => {
    // Not serving: release the maildir (its writer thread and claim).
    await mailbox.close();
    throw e;
  });
  return {
    ...listening,
    close: async () => {
      await listening.close();
      await mailbox.close();
    },
    mailbox,
  };
}
