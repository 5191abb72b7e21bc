/**
 * The DSN service: the gateway's bounce daemon at the legacy boundary (docs/protocol.md §52),
 * SMTP → NMTP direction. It watches the queue (a `QueueObserver`, told after every durable
 * change of an entry and again at start-up) and, for the messages smtp-in accepted, turns
 * each recipient's queue state into what a legacy sender understands: an RFC 3464 report
 * to the envelope sender, queued as a new 'smtp' entry with a null reverse-path, which the
 * same queue then delivers to the smarthost with retries — as Postfix's bounce daemon puts
 * a new message into the queue rather than sending it itself.
 *
 *   accepted           → "relayed" (NOTIFY=SUCCESS only; see `successOutcome` for why not
 *                        "delivered")
 *   rejected, given-up → "failed" (NOTIFY absent or with FAILURE); a give-up is 5.4.7
 *   pending, deferred  → one "delayed" report per message once `delayWarning` seconds have
 *                        passed since arrival (NOTIFY absent or with DELAY)
 *
 * Never to the null sender, never as backscatter (`dsnPermitted`, §52.5: then the outcome
 * is only logged), never about a DSN. What has been reported is written back into the
 * entry's meta (`reported`, `delayReported`), and the DSN's queue id is derived from what
 * it reports, so seeing the same state twice (or again after a crash) queues one DSN.
 */
import { createHash } from 'node:crypto';
import { buildDsn, defaultDsnSources, type DsnSources } from '../../adapters/dsn/index.ts';
import { framedToLegacy } from '../../adapters/legacy/index.ts';
import {
  STATUS_PERMANENT,
  STATUS_TEMPORARY,
  cookieExpired,
  dsnPermitted,
  fromNmtpAnswer,
  fromSmtpReply,
  isEnhancedStatus,
  parseNotify,
  statusClass,
  wantsDsn,
  type DeliveryAction,
  type Notify,
  type RecipientId,
  type RecipientOutcome,
} from '../core/delivery/index.ts';
import { classify } from '../core/errors/policy.ts';
import { decodeAndValidate } from '../core/message/index.ts';
import type { QueueBackend, QueueObserver } from '../queue/port.ts';
import { deadlineOf } from '../queue/schedule.ts';
import {
  isFinal,
  type LastResult,
  type QueuedRecipient,
  type QueuedSubmission,
} from '../queue/types.ts';
import {
  asJson,
  entryMeta,
  recipientMeta,
  type EntryMeta,
  type RecipientMeta,
} from './envelope.ts';
import type { GatewayLog } from './observe/log.ts';
import type { Metrics } from './observe/metrics.ts';
import type { Clock } from './ports.ts';

/** Postfix bounce_size_limit: a larger original is returned as its headers only. */
export const RETURN_SIZE_LIMIT = 50_000;

/** What the service needs of the queue. */
export type DsnQueue = Pick<QueueBackend, 'add' | 'get' | 'message'>;

export interface DsnServiceOptions {
  /**
   * Where DSNs are queued, and where the original message is read for RET=FULL; or a
   * function returning it, for a composition root that opens the queue with this observer.
   */
  readonly queue: DsnQueue | (() => DsnQueue);
  /** The gateway's host name: "Reporting-MTA: dns; <hostname>". */
  readonly hostname: string;
  /** The domain of "From: MAILER-DAEMON@<domain>" and of the DSN's Message-Id. */
  readonly domain: string;
  /** Postfix delay_warning_time, seconds after arrival; 0 = never send "delayed". */
  readonly delayWarning: number;
  /** Unix milliseconds; default Date.now. */
  readonly now?: Clock;
  /** `dsn.queued` per DSN, `dsn.suppressed` per recipient that gets none (the outcome logged). */
  readonly log?: Pick<GatewayLog, 'event'>;
  /** Counts DSNs queued and suppressed, by action. */
  readonly metrics?: Pick<Metrics, 'dsn'>;
  /**
   * Remote-MTA for recipients routed to SMTP whose answer does not name the server that gave
   * it (an entry answered before the SMTP deliverer recorded `relay`).
   */
  readonly smarthost?: string;
  /**
   * The smarthost offers DSN (Postfix does), so the NOTIFY/ORCPT/ENVID the SMTP deliverer
   * passes on make it report success itself: the gateway then reports no success for
   * recipients routed to SMTP (§52.4). Default true.
   */
  readonly smarthostReportsSuccess?: boolean;
  /** Message-Id and boundary of the DSNs (tests); the Date always comes from `now`. */
  readonly sources?: Pick<DsnSources, 'messageId' | 'boundary'>;
  /** Largest original (legacy octets) returned whole under RET=FULL; default 50 000. */
  readonly returnSizeLimit?: number;
}

/** A recipient that becomes reportable in this change, with what will be said about it. */
interface Item {
  readonly index: number;
  readonly meta: RecipientMeta;
  readonly outcome: RecipientOutcome;
  readonly notify: Notify | undefined;
}

/** What buildDsn accepts after "dns;": one token, no controls, no ";()" (§52.7). */
// eslint-disable-next-line no-control-regex
const MTA_NAME = /^[^\s;()\x00-\x1f\x7f-\x9f]+$/;
/** RFC 3461 §4.4: ENVID is printable ASCII once xtext-decoded. */
const ENVID = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

export function createDsnService(o: DsnServiceOptions): QueueObserver {
  const now = o.now ?? Date.now;
  const queue = (): DsnQueue => (typeof o.queue === 'function' ? o.queue() : o.queue);
  const limit = o.returnSizeLimit ?? RETURN_SIZE_LIMIT;
  const base = defaultDsnSources();
  const sources: DsnSources = {
    now: () => new Date(now()),
    messageId: o.sources?.messageId ?? base.messageId,
    boundary: o.sources?.boundary ?? base.boundary,
  };

  return async (s) => {
    const meta = entryMeta(s.meta);
    // A DSN is never reported on (it goes out from <>, RFC 5321 §4.5.5), nor is anything the
    // gateway did not receive by SMTP.
    if (meta === undefined || meta.origin !== 'smtp-in') return undefined;
    const nowMs = now();
    const at = new Date(nowMs);
    const nowSec = Math.floor(nowMs / 1000);
    // smtp-in may still give the receiver's answers in the LMTP session: nothing is
    // reported before it has marked what it answered (it then shows the entry again) or
    // its time is up (a crash in between: the observation at the next start reports).
    if (meta.answerUntil !== undefined && nowSec < meta.answerUntil) return undefined;

    const finals: Item[] = [];
    const quiet: number[] = [];
    const delayed: Item[] = [];
    // Outcomes the sender's own NOTIFY asked not to hear about, logged once queued work is done.
    const declined: Item[] = [];
    const delayDue =
      meta.delayReported !== true && o.delayWarning > 0 && nowSec >= meta.arrival + o.delayWarning;
    let delayTouched = false;
    s.recipients.forEach((r, index) => {
      const rm = recipientMeta(r.meta);
      // `answered`: the SMTP session already told the sender (LMTP); no DSN about it, ever.
      if (rm === undefined || rm.answered === true || rm.reported === true) return;
      const notify = notifyOf(rm);
      if (isFinal(r)) {
        const outcome = finalOutcome(s, r, rm, at);
        const item = outcome === undefined ? undefined : { index, meta: rm, outcome, notify };
        if (item !== undefined && wantsDsn(item.outcome.action, notify)) {
          finals.push(item);
        } else {
          quiet.push(index);
          if (item !== undefined && rm.notify !== undefined) declined.push(item);
        }
      } else if (delayDue) {
        delayTouched = true;
        const item = { index, meta: rm, outcome: delayOutcome(s, r, rm, at), notify };
        // RFC 3464 §2.3.3 "delayed"; one warning per message (Postfix delay_warning_time).
        if (wantsDsn('delayed', notify)) delayed.push(item);
        else if (rm.notify !== undefined) declined.push(item);
      }
    });
    if (finals.length === 0 && quiet.length === 0 && !delayTouched) return undefined;

    const items = [...finals, ...delayed];
    if (items.length > 0) {
      const trust = meta.trust;
      const permission = dsnPermitted({
        returnPath: meta.mailFrom,
        authenticated: trust?.authenticated ?? false,
        trustedRelay: trust?.trustedRelay ?? false,
        ...(trust?.spf === undefined ? {} : { spf: trust.spf }),
        ...(trust?.dkimPassDomains === undefined ? {} : { dkimPassDomains: trust.dkimPassDomains }),
      });
      if (!permission.allowed) {
        // §52.5 rule 4: "Otherwise the outcome is logged and no DSN is sent."
        suppressed(items, s.id, permission.reason);
      } else {
        await queueDsn(s, meta, items, nowSec);
      }
    }
    for (const d of declined) suppressed([d], s.id, `NOTIFY=${d.meta.notify ?? ''}`);

    const reportedNow = new Set([...finals.map((i) => i.index), ...quiet]);
    return {
      ...s,
      ...(delayTouched ? { meta: asJson({ ...meta, delayReported: true }) } : {}),
      recipients: s.recipients.map((r, i) =>
        reportedNow.has(i)
          ? { ...r, meta: asJson({ ...recipientMeta(r.meta)!, reported: true }) }
          : r,
      ),
    };
  };

  /** Builds the DSN and adds it to the queue once (a deterministic id). */
  async function queueDsn(
    s: QueuedSubmission,
    meta: EntryMeta,
    items: readonly Item[],
    nowSec: number,
  ): Promise<void> {
    const id = dsnId(s.id, items);
    // Already queued: the same state observed twice, or again after a crash.
    if ((await queue().get(id)) !== undefined) return;
    const failed = items.some((i) => i.outcome.action === 'failed');
    const returned = await returnedContent(s, meta, failed);
    const client = meta.client;
    const receivedFrom = [client?.name, client?.helo].find(
      (n): n is string => n !== undefined && MTA_NAME.test(n),
    );
    let messageId = '';
    let built;
    try {
      built = buildDsn(
        {
          reportingMta: o.hostname,
          reportingDomain: o.domain,
          returnPath: meta.mailFrom,
          ...(meta.envid !== undefined && ENVID.test(meta.envid) ? { envid: meta.envid } : {}),
          arrivalDate: new Date(meta.arrival * 1000),
          ...(receivedFrom === undefined ? {} : { receivedFromMta: receivedFrom }),
          recipients: items.map((i) => ({
            outcome: i.outcome,
            ...(i.notify === undefined ? {} : { notify: i.notify }),
          })),
          ...returned,
        },
        {
          ...sources,
          messageId: (domain) => (messageId = sources.messageId(domain)),
        },
      );
    } catch (e) {
      const v = classify(e);
      if (v.temporary) throw e;
      // A return path no report can be written to (a quoted local part with a space …):
      // retrying cannot help, so the outcome is logged and the recipients count as reported.
      suppressed(items, s.id, `no DSN can be written: ${v.message}`);
      return;
    }
    try {
      await queue().add({
        id,
        // RFC 5321 §6.1 / §4.5.5: notifications are sent with a null reverse-path.
        user: '',
        recipients: [meta.mailFrom],
        kind: 'smtp',
        meta: asJson({
          origin: 'dsn',
          mailFrom: '',
          arrival: nowSec,
          messageId: messageId.replace(/^<|>$/g, ''),
          // RFC 6533: a UTF-8 return path needs SMTPUTF8, 8bit parts BODY=8BITMIME.
          ...(built.smtputf8 ? { smtputf8: true } : {}),
          ...(built.eightBit ? { eightBit: true } : {}),
        } satisfies EntryMeta),
        message: built.bytes,
      });
    } catch (e) {
      // Queued meanwhile (another process, or the same state observed twice at once).
      if ((await queue().get(id)) === undefined) throw e;
    }
    const action = headline(items);
    o.log?.event('dsn.queued', {
      queueId: id,
      origQueueId: s.id,
      action,
      rcpt: meta.mailFrom,
      rcpts: items.length,
    });
    o.metrics?.dsn('queued', action);
  }

  /** §52.5: "the outcome is logged and no DSN is sent" — one line per recipient. */
  function suppressed(items: readonly Item[], entry: string, why: string): void {
    for (const i of items) {
      const d = i.outcome.diagnostic?.text;
      o.log?.event('dsn.suppressed', {
        origQueueId: entry,
        action: i.outcome.action,
        why: `${why}; ${i.outcome.status}${d === undefined ? '' : ` ${d}`}`,
        rcpt: i.meta.legacy,
      });
      o.metrics?.dsn('suppressed', i.outcome.action);
    }
  }

  /**
   * The third part (§52.7): RET=FULL returns the whole original when a recipient failed,
   * the queue still holds it and it is at most `limit` octets as legacy mail; otherwise
   * (RET=HDRS, RET absent, too large, gone) the header block kept in the entry's meta.
   */
  async function returnedContent(
    s: QueuedSubmission,
    meta: EntryMeta,
    failed: boolean,
  ): Promise<{ ret?: 'FULL' | 'HDRS'; original?: Uint8Array }> {
    const headers =
      meta.headers === undefined ? undefined : new Uint8Array(Buffer.from(meta.headers, 'latin1'));
    const hdrs = headers === undefined ? {} : { ret: 'HDRS' as const, original: headers };
    if (meta.ret !== 'FULL' || !failed) return hdrs;
    try {
      const full = await originalLegacy(s, meta);
      if (full !== undefined && full.length <= limit) return { ret: 'FULL', original: full };
    } catch {
      // Not convertible back (a framed message the legacy side cannot carry as it arrived):
      // the headers still say which message it was.
    }
    return hdrs;
  }

  /** The original as legacy octets, if the queue still has it and it can be small enough. */
  async function originalLegacy(
    s: QueuedSubmission,
    meta: EntryMeta,
  ): Promise<Uint8Array | undefined> {
    const source = await queue().message(s.id);
    // A framed message turns into legacy mail of about its size (base64 adds a third, the
    // framing and signatures go); four times the limit is plenty to look at.
    if (source === undefined || source.size > 4 * limit) return undefined;
    const chunks: Uint8Array[] = [];
    // A piece may be reused once the next is asked for: copy each.
    for await (const p of source.pieces('full')) chunks.push(Uint8Array.from(p));
    const bytes = new Uint8Array(Buffer.concat(chunks));
    if ((s.kind ?? 'nmtp') === 'smtp') return bytes;
    // The queue holds the NMTP form: return it as the legacy sender's world reads it (§51),
    // with the extensions the original arrived with.
    return framedToLegacy(decodeAndValidate(bytes), {
      smtputf8: meta.smtputf8 === true,
      eightBitMime: meta.eightBit === true,
    });
  }

  /** What a final queue state says about a recipient, as a DSN outcome. */
  function finalOutcome(
    s: QueuedSubmission,
    r: QueuedRecipient,
    rm: RecipientMeta,
    at: Date,
  ): RecipientOutcome | undefined {
    const ctx = context(s, r, rm, at);
    const kind = s.kind ?? 'nmtp';
    switch (r.state) {
      case 'accepted':
        if (kind === 'smtp' && (o.smarthostReportsSuccess ?? true)) return undefined;
        return withOrcpt(successOutcome(kind, r, ctx), rm);
      case 'rejected':
        return withOrcpt(
          permanent(
            kind === 'smtp'
              ? fromSmtpReply(smtpReplyOf(r.last, 5), ctx)
              : fromNmtpAnswer(
                  { kind: 'rejected', ...statusOf(r.last), text: textOf(r.last) ?? '' },
                  ctx,
                ),
          ),
          rm,
        );
      default: {
        // given-up: the queue stopped at its maximum age, or the receiver's cookie ended
        // (expiry, GIVEUP). RFC 3463 X.4.7 "Delivery time expired".
        const last = temporaryOutcome(s, r, ctx);
        const why =
          r.cookie === undefined
            ? `delivery time expired${r.last === undefined ? '' : `, last answer: ${lastLine(r.last)}`}`
            : r.cookieExpires !== undefined && r.cookieExpires < s.expires
              ? 'cookie expired'
              : 'GIVEUP sent at the maximum queue age';
        const out = cookieExpired(last, at, why);
        return withOrcpt(
          kind === 'smtp' && last.diagnostic !== undefined
            ? { ...out, diagnostic: last.diagnostic }
            : out,
          rm,
        );
      }
    }
  }

  function delayOutcome(
    s: QueuedSubmission,
    r: QueuedRecipient,
    rm: RecipientMeta,
    at: Date,
  ): RecipientOutcome {
    return withOrcpt(temporaryOutcome(s, r, context(s, r, rm, at)), rm);
  }

  /**
   * Where the recipient stands while the queue still tries (pending) or waits on a cookie
   * (deferred): "delayed", with the last answer as the diagnostic and the end of trying as
   * Will-Retry-Until. A missing or unknown status stays temporary (4.0.0).
   */
  function temporaryOutcome(s: QueuedSubmission, r: QueuedRecipient, ctx: Ctx): RecipientOutcome {
    const until = new Date(deadlineOf(s, r) * 1000);
    if ((s.kind ?? 'nmtp') === 'smtp') {
      const o2 = fromSmtpReply(smtpReplyOf(r.last, 4), { ...ctx, willRetryUntil: until });
      // A pending recipient is pending, whatever class the last answer claimed.
      return o2.action === 'delayed'
        ? o2
        : { ...o2, action: 'delayed', status: STATUS_TEMPORARY, willRetryUntil: until };
    }
    if (r.state === 'deferred' && r.cookie !== undefined) {
      const o2 = fromNmtpAnswer(
        {
          kind: 'deferred',
          cookie: {
            id: r.cookie,
            minPollSeconds: r.min ?? 0,
            maxPollSeconds: r.max ?? 0,
            expires: until,
          },
          ...statusOf(r.last),
          ...(textOf(r.last) === undefined ? {} : { text: textOf(r.last)! }),
        },
        ctx,
      );
      // The cookie names a receiver-side state and never appears in a DSN (§52.6).
      const rest: RecipientOutcome = { ...o2 };
      delete (rest as { cookie?: unknown }).cookie;
      return rest;
    }
    const given = r.last?.enhanced;
    const status =
      given !== undefined && isEnhancedStatus(given) && statusClass(given) === 4
        ? given
        : STATUS_TEMPORARY;
    const text = [r.last?.enhanced, textOf(r.last)].filter((x) => x !== undefined && x !== '');
    return {
      ...ctx,
      action: 'delayed',
      status,
      ...(r.last === undefined ? {} : { diagnostic: { type: 'nmtp', text: text.join(' ') } }),
      willRetryUntil: until,
    };
  }

  /**
   * NMTP acceptance is reported as "relayed", not "delivered". RFC 3464 §2.3.3: "relayed"
   * is "relayed or gatewayed into an environment that does not accept responsibility for
   * generating DSNs upon successful delivery" — NMTP has no success notifications at all,
   * and the accepting NMTP server may itself be a relay (redirects, §60.10.8), so the gateway
   * cannot claim final delivery; §52.3 and §52.6 say "relayed" (and `fromNmtpAnswer` does).
   */
  function successOutcome(kind: string, r: QueuedRecipient, ctx: Ctx): RecipientOutcome {
    if (kind === 'smtp')
      return fromSmtpReply(smtpReplyOf(r.last, 2), { ...ctx, successAction: 'relayed' });
    return fromNmtpAnswer(
      { kind: 'accepted', ...(r.id === undefined ? {} : { receiverId: r.id }) },
      ctx,
    );
  }

  type Ctx = { recipient: RecipientId; remoteMta?: string; at: Date };

  function context(s: QueuedSubmission, r: QueuedRecipient, rm: RecipientMeta, at: Date): Ctx {
    const kind = s.kind ?? 'nmtp';
    // RFC 3464 §2.3.5: Remote-MTA is the MTA that gave the answer: for SMTP the server the
    // deliverer recorded (the smarthost, or the MX host that answered), for NMTP the receiver.
    const remote = kind === 'smtp' ? (relayHost(r.last?.relay) ?? o.smarthost) : r.endpoint?.host;
    return {
      // The sender knows the recipient by what it gave in RCPT TO.
      recipient: kind === 'smtp' ? { legacy: rm.legacy } : { legacy: rm.legacy, nmtp: r.rcpt },
      ...(remote !== undefined && MTA_NAME.test(remote) ? { remoteMta: remote } : {}),
      at: r.last === undefined ? at : new Date(r.last.at * 1000),
    };
  }
}

/**
 * The host of a `relay` the SMTP deliverer recorded: "name[addr]:port" → name (addr when the
 * name is empty), "host:port" → host.
 */
export function relayHost(relay: string | undefined): string | undefined {
  if (relay === undefined) return undefined;
  const m = /^([^[]*)\[([^\]]*)\]:\d+$/.exec(relay);
  if (m !== null) return m[1] !== '' ? m[1] : m[2];
  const i = relay.lastIndexOf(':');
  return i > 0 ? relay.slice(0, i) : relay;
}

/**
 * A final queue state whose answer reads as temporary (a 5xx reply carrying a 4.x.x code)
 * is final all the same: the queue will not try again, so the sender hears "failed" — with
 * the generic 5.0.0, the answer itself kept as the diagnostic.
 */
function permanent(o: RecipientOutcome): RecipientOutcome {
  if (o.action === 'failed') return o;
  const rest: RecipientOutcome = { ...o, action: 'failed', status: STATUS_PERMANENT };
  delete (rest as { willRetryUntil?: unknown }).willRetryUntil;
  delete (rest as { cookie?: unknown }).cookie;
  return rest;
}

function withOrcpt(o: RecipientOutcome, rm: RecipientMeta): RecipientOutcome {
  return rm.orcpt === undefined
    ? o
    : {
        ...o,
        originalRecipient: { addrType: rm.orcpt.type.toLowerCase(), address: rm.orcpt.address },
      };
}

/** RFC 3461 NOTIFY; an unreadable value counts as absent (FAILURE,DELAY): never lose a failure. */
function notifyOf(rm: RecipientMeta): Notify | undefined {
  if (rm.notify === undefined) return undefined;
  try {
    return parseNotify(rm.notify);
  } catch {
    return undefined;
  }
}

function statusOf(last: LastResult | undefined): { status?: string } {
  return last?.enhanced === undefined ? {} : { status: last.enhanced };
}

/** The last answer's text; a local failure (no reply) says its error code. */
function textOf(last: LastResult | undefined): string | undefined {
  if (last === undefined) return undefined;
  if (last.text !== undefined && last.text !== '') return last.text;
  return last.err;
}

function lastLine(last: LastResult): string {
  return [last.code, last.enhanced, textOf(last)]
    .filter((x) => x !== undefined && x !== '')
    .join(' ');
}

/**
 * The SMTP reply behind an 'smtp' entry's last answer. The queue keeps the reply code it
 * acted on (2xx as 250, other non-5xx as 450) and writes the smarthost's own code first in
 * the text ("550 User unknown"); that original code is what the DSN quotes. Without any
 * answer, the generic code of the class the state implies stands in (a pending recipient's
 * is 4: a missing answer never reads as permanent).
 */
function smtpReplyOf(
  last: LastResult | undefined,
  cls: 2 | 4 | 5,
): { code: number; lines: string[] } {
  const text = textOf(last) ?? '';
  const m = /^([2-5]\d\d)(?:[ -](.*))?$/s.exec(text);
  const code = m !== null ? Number(m[1]) : (last?.code ?? cls * 100 + (cls === 2 ? 50 : 51));
  const rest = m !== null ? (m[2] ?? '') : text;
  const enhanced = last?.enhanced;
  const line =
    enhanced !== undefined && isEnhancedStatus(enhanced) && !rest.startsWith(enhanced)
      ? `${enhanced} ${rest}`.trim()
      : rest;
  return { code, lines: line === '' ? [] : [line] };
}

/**
 * "<entry id>-d<hash>": the hash covers the reported recipients and their actions, so one
 * report has one id however often its state is observed (§60.4 id syntax, ≤ 64 characters).
 */
function dsnId(entry: string, items: readonly Item[]): string {
  const what = items
    .map((i) => `${i.index}:${i.outcome.action}`)
    .sort()
    .join(',');
  const hash = createHash('sha256').update(`${entry}\n${what}`).digest('hex').slice(0, 12);
  const suffix = `-d${hash}`;
  return entry.slice(0, 64 - suffix.length) + suffix;
}

/** The action a DSN is logged and counted under: its gravest (failed, then delayed). */
function headline(items: readonly Item[]): DeliveryAction {
  const actions = items.map((i) => i.outcome.action);
  if (actions.includes('failed')) return 'failed';
  if (actions.includes('delayed')) return 'delayed';
  return actions[0] ?? 'relayed';
}
