/**
 * The gateway's NMTP receiver decides with two services behind one transfer host (§52.12):
 * recipients of the gateway's own NMTP domains go to the reference mailbox (src/server),
 * every other recipient to nmtp-in (service.ts), which takes legacy-hosted ones and
 * refuses the rest. One transaction is one message for one of them: the first accepted
 * recipient decides which, and a recipient for the other is answered 450 4.5.3 ("deliver
 * it in another transaction"), which a sender retries — the way an LMTP or a Postfix
 * transport splits a message by destination. Cookies are told apart by their MAC: a cookie
 * nmtp-in cannot open is the mailbox's, which answers "unknown" for anything else.
 *
 * One object per session (the transaction's owner is session state).
 */
import type {
  RecipientDecision,
  CookieState,
  FinalAnswer,
  ViewChoice,
} from '../../core/session/index.ts';
import type { Identification, MessageSink, TransferDecider } from '../../server/transfer-host.ts';
import { ReverseSink, type ReverseService } from './service.ts';

type Owner = 'mailbox' | 'reverse';

export function gatewayDecider(mailbox: TransferDecider, reverse: ReverseService): TransferDecider {
  let owner: Owner | undefined;
  const other = (want: Owner): RecipientDecision | undefined =>
    owner !== undefined && owner !== want
      ? {
          kind: 'unavailable',
          enhanced: '4.5.3',
          text: 'deliver this recipient in another transaction',
        }
      : undefined;
  const decider: TransferDecider = {
    decideRecipient(a) {
      const want: Owner = reverse.isLocal(a.rcpt) ? 'mailbox' : 'reverse';
      const refused = other(want);
      if (refused !== undefined) return refused;
      const took = (d: RecipientDecision): RecipientDecision => {
        if (d.kind === 'accept') owner = want;
        return d;
      };
      if (want === 'mailbox') {
        const d = mailbox.decideRecipient(a);
        return d instanceof Promise ? d.then(took) : took(d);
      }
      return reverse.decideRecipient(a.rcpt).then(took);
    },
    chooseView(a, client) {
      if (a.cookie !== undefined) {
        // A reverse cookie never waits for a view: the legacy side had the whole message.
        return reverse
          .cookie('status', a.domain, a.cookie)
          .then(
            (
              s,
            ):
              | { choice: ViewChoice; sink?: MessageSink }
              | Promise<{ choice: ViewChoice; sink?: MessageSink }> =>
              s === undefined
                ? mailbox.chooseView(a, client)
                : { choice: { kind: s.kind === 'unknown' ? 'unknown-cookie' : 'not-wanted' } },
          );
      }
      return owner === 'reverse' ? reverse.chooseView() : mailbox.chooseView(a, client);
    },
    async decideMessage(a, sink, client: Identification): Promise<FinalAnswer[]> {
      owner = undefined;
      if (sink instanceof ReverseSink) return reverse.decideMessage(a.recipients, sink, client);
      return mailbox.decideMessage(a, sink, client);
    },
    async cookie(a): Promise<CookieState> {
      return (await reverse.cookie(a.op, a.domain, a.cookie)) ?? mailbox.cookie(a);
    },
    async discard(sink) {
      owner = undefined;
      if (sink instanceof ReverseSink) return;
      await mailbox.discard?.(sink);
    },
  };
  return decider;
}
