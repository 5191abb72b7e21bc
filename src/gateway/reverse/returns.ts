/**
 * The return path of the reverse direction (§52.6): legacy DSNs about messages an NMTP
 * sender handed to the gateway come back to `<returnPath>+<entry>.<mac>@<gateway domain>`
 * (tokens.ts), are read with the DSN parser (§52.8), and update the cookies the NMTP sender
 * polls. Mail to the return path is never relayed onwards and never answered with a bounce:
 * whatever it is, smtp-in answers 250 once its effect (if any) is durable, and a report
 * that cannot be read changes nothing (logged with its code).
 *
 * Which entry: the report's Original-Envelope-Id when it is one of our tags, else the tag
 * of the return-path address it was sent to (an MTA that drops ENVID still returns to the
 * address). Which recipient: the Original-Recipient (the ORCPT we sent), else the
 * Final-Recipient, compared with the entry's legacy recipients without regard to case.
 */
import { parseDsn } from '../../../adapters/dsn/index.ts';
import { classify } from '../../core/errors/policy.ts';
import type { RecipientOutcome } from '../../core/delivery/index.ts';
import type { QueueBackend } from '../../queue/port.ts';
import { asJson } from '../envelope.ts';
import { silentLog, type GatewayLog } from '../observe/log.ts';
import {
  reverseMeta,
  reverseRecipientMeta,
  type ReverseRecipientMeta,
  type ReverseReport,
} from './state.ts';
import type { Tokens } from './tokens.ts';

export interface ReturnPathOptions {
  /** The return path's local part and domain (config reverse.returnPath, gateway.domain). */
  readonly localPart: string;
  readonly domain: string;
  readonly tokens: Tokens;
  readonly queue: () => QueueBackend;
  readonly log?: GatewayLog;
  /** Unix milliseconds. */
  readonly now?: () => number;
}

export interface ReturnPath {
  /** The entry id when `address` is a genuine return path of ours, else undefined. */
  match(address: string): string | undefined;
  /** Reads a message sent to the return path; resolves once its effect is durable. */
  receive(entryIds: readonly string[], message: Uint8Array): Promise<void>;
}

/** The recipient a report line is about, as the entry spells it (lower case compare). */
const norm = (a: string | undefined): string | undefined =>
  a === undefined ? undefined : a.trim().replace(/^<|>$/g, '').toLowerCase();

export function createReturnPath(o: ReturnPathOptions): ReturnPath {
  const log = o.log ?? silentLog();
  const now = o.now ?? Date.now;
  const prefix = `${o.localPart.toLowerCase()}+`;
  const domain = o.domain.toLowerCase().replace(/\.$/, '');

  const match = (address: string): string | undefined => {
    const a = address.trim().replace(/^<|>$/g, '');
    const at = a.lastIndexOf('@');
    if (
      at < 0 ||
      a
        .slice(at + 1)
        .toLowerCase()
        .replace(/\.$/, '') !== domain
    )
      return undefined;
    const local = a.slice(0, at).toLowerCase();
    return local.startsWith(prefix) ? o.tokens.openTag(local.slice(prefix.length)) : undefined;
  };

  const apply = async (entryId: string, outcomes: readonly RecipientOutcome[]): Promise<void> => {
    const at = Math.floor(now() / 1000);
    const q = o.queue();
    const touched: { rcpt: string; action: ReverseReport['action']; status: string }[] = [];
    const stored = await q.annotate(entryId, (cur) => {
      if (reverseMeta(cur.meta) === undefined) return undefined;
      touched.length = 0;
      return {
        ...cur,
        recipients: cur.recipients.map((r) => {
          const rm = reverseRecipientMeta(r.meta);
          if (rm === undefined) return r;
          const mine = norm(rm.legacy);
          const about = outcomes.find(
            (x) =>
              norm(x.originalRecipient?.address) === mine ||
              norm(x.recipient.legacy) === mine ||
              norm(x.recipient.nmtp) === mine,
          );
          if (about === undefined) return r;
          // A final report stands: a later "delayed" (reordered mail) does not undo it.
          if (
            rm.report !== undefined &&
            rm.report.action !== 'delayed' &&
            about.action === 'delayed'
          ) {
            return r;
          }
          const report: ReverseReport = {
            action: about.action,
            status: about.status,
            ...(about.diagnostic === undefined
              ? {}
              : { text: about.diagnostic.text.slice(0, 300) }),
            at,
          };
          touched.push({ rcpt: rm.legacy, action: about.action, status: about.status });
          return { ...r, meta: asJson({ ...rm, report } as ReverseRecipientMeta) };
        }),
      };
    });
    if (stored === undefined) {
      log.event('reverse.report.ignored', { why: 'unknown entry', detail: entryId });
      return;
    }
    if (touched.length === 0) {
      log.event('reverse.report.ignored', { why: 'no recipient of the entry', detail: entryId });
    }
    for (const t of touched) {
      log.event('reverse.report', {
        queueId: entryId,
        rcpt: t.rcpt,
        action: t.action,
        enhanced: t.status,
      });
    }
  };

  return {
    match,
    async receive(entryIds, message) {
      let parsed;
      try {
        parsed = parseDsn(message);
      } catch (e) {
        const v = classify(e);
        // Not a report (an auto-reply, spam to the return path): nothing to do, and nothing
        // is ever sent back or onwards.
        log.event('reverse.report.ignored', {
          why: 'not a readable DSN',
          err: v.code,
          detail: v.message,
        });
        return;
      }
      const byEnvid = parsed.envid === undefined ? undefined : o.tokens.openTag(parsed.envid);
      const ids = byEnvid !== undefined ? [byEnvid] : [...new Set(entryIds)];
      for (const id of ids) await apply(id, parsed.outcomes);
    },
  };
}
