/**
 * nmtp-in: the reverse direction's receiving service (NMTP in → SMTP out, §52.6, §52.12).
 * The gateway's NMTP receiver asks it about recipients that live on the legacy side (the
 * organisation's Postfix users, or with `reverse.relayAny` any domain without NMTP); it
 *
 *   RCPT   accepts a legacy-hosted recipient, refuses anything else (no open relay), and
 *          refuses an address the smarthost cannot take (non-ASCII without SMTPUTF8) while
 *          the sender is connected, when what the smarthost offers is known;
 *   DATA   always asks for the full message (a legacy peer takes only whole messages);
 *          verifies every signature and applies the replay rule per recipient (§30.7),
 *          converts to RFC 5322/MIME for what the smarthost offers (§51) with the verdicts
 *          in an Authentication-Results field, DKIM-signs and ARC-seals when configured,
 *          checks that no octet could be read as a second message, and queues one 'smtp'
 *          entry (origin 'nmtp-in') with NOTIFY=SUCCESS,FAILURE,DELAY, an ENVID and a
 *          return path that name the entry — durably, before any answer;
 *   answer waits up to `reverse.answerBudget` for the legacy side's final word, then answers
 *          accepted, rejected, or deferred with a cookie (tokens.ts) whose STATUS is computed
 *          from the queue entry (state.ts) — across restarts and gateway processes alike.
 *
 * An NMTP sender never receives a bounce message: the queue's outcomes and the legacy DSNs
 * that come back (returns.ts) only change what STATUS answers.
 */
import { randomBytes } from 'node:crypto';
import {
  authResultsValue,
  framedToLegacyChunks,
  type SignatureVerdict,
} from '../../../adapters/legacy/index.ts';
import { formatRfc5322Date } from '../../../adapters/dsn/date.ts';
import { parseAddress, processDomain, toLegacyAddress } from '../../core/address/index.ts';
import { NmtpError } from '../../core/errors/index.ts';
import { classify } from '../../core/errors/policy.ts';
import type { TxtResolver } from '../../core/keys/index.ts';
import type { DecodedMessage } from '../../core/frame/index.ts';
import { verifyForRecipients } from '../../core/message/index.ts';
import type {
  CookieState,
  FinalAnswer,
  RecipientDecision,
  View,
} from '../../core/session/index.ts';
import type { SignatureResult } from '../../core/sign/index.ts';
import type { Json, QueueBackend } from '../../queue/port.ts';
import type { QueuedSubmission } from '../../queue/types.ts';
import type { GatewayConfig } from '../config.ts';
import { asJson } from '../envelope.ts';
import { silentLog, type GatewayLog } from '../observe/log.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { Router } from '../ports.ts';
import {
  cookieExpiry,
  reverseCookieState,
  reverseMeta,
  reverseRecipientMeta,
  type ReverseEntryMeta,
  type ReverseRecipientMeta,
  type StatePolicy,
} from './state.ts';
import type { Tokens } from './tokens.ts';

/** What the legacy peer offers, as far as known (adapters/smtp-sender learns it). */
export interface PeerOffers {
  readonly smtputf8: boolean;
  readonly eightBitMime: boolean;
}

/** The client's identification (what the transfer host passes; §60.8). */
export interface ReverseClient {
  readonly domain: string;
  readonly ip: string;
}

export interface ReverseServiceOptions {
  readonly config: GatewayConfig;
  readonly queue: () => QueueBackend;
  readonly tokens: Tokens;
  /** TXT lookups for the signers' domain keys (the receiver's resolver). */
  readonly resolveTxt: TxtResolver;
  /** The router (relayAny: only recipients it sends to SMTP are taken). */
  readonly router: Router;
  /** What the legacy peer for `rcpt` offers (the smarthost, or its MX), when known. */
  readonly offers?: (rcpt: string) => PeerOffers | undefined;
  /** As `offers`, asking the peer (EHLO) when not known; undefined when it cannot be reached. */
  readonly probe?: (rcpt: string) => Promise<PeerOffers | undefined>;
  /** DKIM signature + ARC seal (adapters/legacy-auth); absent = not configured. */
  readonly sign?: (message: Uint8Array, authResults: string) => Promise<Uint8Array>;
  /** Refuses octets that a legacy peer could read as a second message (coded error). */
  readonly checkOutgoing?: (message: Uint8Array) => void;
  readonly log?: GatewayLog;
  readonly metrics?: Metrics;
  /** Unix milliseconds. */
  readonly now?: () => number;
  readonly random?: (n: number) => Uint8Array;
}

/** How long RCPT waits for the peer's EHLO when what it offers is not known yet. */
const PROBE_MS = 3000;
/**
 * How often the answer wait looks at the queue when no change is reported to it (the
 * queue's observer wakes it at once: `observe`; a change made by another process of a
 * BullMQ cluster is seen by this look).
 */
const ANSWER_POLL_MS = 200;
/** RFC 3461 NOTIFY for every recipient: every outcome comes back to the cookie. */
const NOTIFY = 'SUCCESS,FAILURE,DELAY';

/** The reverse direction's message buffer: the full view, kept in memory (size-bounded). */
export class ReverseSink {
  readonly chunks: Uint8Array[] = [];
  write(bytes: Uint8Array): void {
    // The transfer host reuses nothing it hands over, but a copy costs little and
    // protects the message from any later reuse of the read buffer.
    this.chunks.push(Uint8Array.from(bytes));
  }
  bytes(): Uint8Array {
    return Buffer.concat(this.chunks);
  }
}

const reject = (enhanced: string, text: string): RecipientDecision => ({
  kind: 'reject',
  enhanced,
  text,
});

/** One line of text for a reply: no CR/LF, at most 200 characters. */
const oneLine = (s: string): string => s.replace(/[\r\n]+/g, ' ').slice(0, 200);

export class ReverseService {
  private readonly domains: Set<string>;
  private readonly addresses: Set<string>;
  private readonly localDomains: Set<string>;
  private readonly now: () => number;
  private readonly random: (n: number) => Uint8Array;
  private readonly log: GatewayLog;
  readonly policy: StatePolicy;
  /** Answer waits by entry id, woken by `observe`. */
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(private readonly o: ReverseServiceOptions) {
    const c = o.config;
    this.domains = new Set(c.reverse.domains.map(asciiDomain));
    this.addresses = new Set(c.reverse.addresses.map((a) => parseAddress(a).canonical));
    this.localDomains = new Set(c.nmtp.receiver.domains.map(asciiDomain));
    this.now = o.now ?? Date.now;
    this.random = o.random ?? ((n) => randomBytes(n));
    this.log = o.log ?? silentLog();
    this.policy = {
      confirm: c.reverse.confirm,
      confirmWindow: c.reverse.confirmWindow,
      minPoll: c.nmtp.receiver.minPoll,
      maxPoll: c.nmtp.receiver.maxPoll,
    };
  }

  /** True when the recipient's mailbox is the gateway's own NMTP receiver's. */
  isLocal(rcpt: string): boolean {
    return this.localDomains.has(asciiDomain(rcpt.slice(rcpt.lastIndexOf('@') + 1)));
  }

  /** RCPT of a recipient that is not local (§52.12 "Recipients"). */
  async decideRecipient(rcpt: string): Promise<RecipientDecision> {
    const address = parseAddress(rcpt);
    const listed = this.addresses.has(address.canonical) || this.domains.has(address.domainAscii);
    if (!listed) {
      if (!this.o.config.reverse.relayAny) {
        // No open relay: only the configured legacy-hosted recipients.
        return reject('5.7.1', 'relay access denied (not a legacy-hosted recipient here)');
      }
      const d = await this.o.router.route(toLegacyAddress(address, { smtputf8: true }));
      if (d.transport === 'temperror') {
        return { kind: 'unavailable', enhanced: '4.4.3', text: oneLine(d.why) };
      }
      if (d.transport !== 'smtp') {
        // The domain has NMTP of its own: relaying it back out over NMTP would loop.
        return reject('5.7.1', 'relay access denied (the domain publishes NMTP: deliver there)');
      }
    }
    const offers = /[^\p{ASCII}]/u.test(address.local)
      ? await this.peer(address.canonical)
      : undefined;
    if (offers !== undefined && !offers.smtputf8) {
      // "an address that cannot be downgraded is a per-recipient rejection … at RCPT time
      // where it can be known" (§52.12).
      return reject(
        '5.6.7',
        'NMTP_ERR_GW_SMTPUTF8_NOT_OFFERED: the legacy side does not offer SMTPUTF8 and the local part is not ASCII',
      );
    }
    return { kind: 'accept' };
  }

  /** What the peer offers, asking it for at most PROBE_MS when not known. */
  private async peer(rcpt: string): Promise<PeerOffers | undefined> {
    const known = this.o.offers?.(rcpt);
    if (known !== undefined || this.o.probe === undefined) return known;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), PROBE_MS)));
    try {
      return await Promise.race([this.o.probe(rcpt).catch(() => undefined), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** What every recipient's peer offers: an extension counts only when all offer it. */
  private offersFor(rcpts: readonly string[]): PeerOffers | undefined {
    const all = rcpts.map((r) => this.o.offers?.(r));
    if (all.some((x) => x === undefined)) return undefined;
    return {
      smtputf8: all.every((x) => x!.smtputf8),
      eightBitMime: all.every((x) => x!.eightBitMime),
    };
  }

  /** DATA: the legacy side takes whole messages only (§52.12 "Views"). */
  chooseView(): { choice: { kind: 'view'; view: View }; sink: ReverseSink } {
    return { choice: { kind: 'view', view: 'full' }, sink: new ReverseSink() };
  }

  async decideMessage(
    recipients: readonly string[],
    sink: ReverseSink,
    client: ReverseClient,
  ): Promise<FinalAnswer[]> {
    const answers = await this.decide(recipients, sink, client);
    for (const a of answers) this.o.metrics?.reverseAnswer(a.kind);
    return answers;
  }

  private async decide(
    recipients: readonly string[],
    sink: ReverseSink,
    client: ReverseClient,
  ): Promise<FinalAnswer[]> {
    const bytes = sink.bytes();
    const nowMs = this.now();
    const now = Math.floor(nowMs / 1000);
    const answers = new Map<string, FinalAnswer>();
    const refuseAll = (e: unknown, enhanced = '5.6.0'): FinalAnswer[] => {
      const v = classify(e);
      // A temporary failure (a DNS lookup of a signer's key): the session answers 451 and
      // the sender tries the whole transaction again later.
      if (v.temporary) throw e;
      this.log.event('reverse.refused', { client: client.domain, err: v.code, detail: v.message });
      return recipients.map((rcpt) => ({
        kind: 'rejected',
        rcpt,
        enhanced,
        text: oneLine(v.message),
      }));
    };

    // Signatures: every one verified on its own; the replay rule per recipient (§30.7).
    let verdicts: SignatureVerdict[];
    let message: DecodedMessage;
    const take: string[] = [];
    try {
      // One decoding and one check of each signature, whatever the number of recipients.
      const v = await verifyForRecipients(bytes, {
        resolveTxt: this.o.resolveTxt,
        now,
        recipients,
        authenticatedDomain: client.domain,
      });
      message = v.message;
      verdicts = v.signatures.flatMap((s) => verdictOf(s));
      for (const rcpt of recipients) {
        const replay = v.replay.get(rcpt);
        if (replay?.ok === true) {
          take.push(rcpt);
          continue;
        }
        if (replay?.temporary === true) {
          throw new NmtpError(replay.code ?? 'NMTP_ERR_KEY_LOOKUP_FAILED', 'key lookup failed');
        }
        answers.set(rcpt, {
          kind: 'rejected',
          rcpt,
          enhanced: '5.7.7',
          text: `${replay?.code ?? 'NMTP_ERR_SIG_NO_TRANSFER_SIGNATURE'}: the replay rule (§30.7) failed for this recipient`,
        });
      }
    } catch (e) {
      return refuseAll(e);
    }
    if (take.length === 0) return recipients.map((r) => answers.get(r)!);

    // Conversion for what the legacy peer offers; 7-bit and no SMTPUTF8 when not known.
    const offers = this.offersFor(take);
    const id = this.o.tokens.entryId(this.random);
    let legacy: Uint8Array;
    let smtputf8: boolean;
    let rcptsLegacy: string[];
    const authservId = this.o.config.gateway.hostname;
    try {
      const needUtf8 = take.some((r) => /[^\p{ASCII}]/u.test(parseAddress(r).local));
      smtputf8 = needUtf8 || offers?.smtputf8 === true;
      // The converter's pieces, joined once with the Received field in front (a 100 KB
      // message is copied once here, not twice).
      const convert = (utf8: boolean): Uint8Array[] => [
        ...framedToLegacyChunks(message, {
          smtputf8: utf8,
          eightBitMime: offers?.eightBitMime ?? false,
          authResults: { authservId, verdicts },
        }),
      ];
      let pieces: Uint8Array[];
      try {
        pieces = convert(smtputf8);
      } catch (e) {
        // A header that needs UTF-8 (an address that has no ASCII form): only a peer
        // with SMTPUTF8 can take the message, which delivery then checks.
        if (smtputf8 || offers !== undefined) throw e;
        smtputf8 = true;
        pieces = convert(true);
      }
      rcptsLegacy = take.map((r) => toLegacyAddress(parseAddress(r), { smtputf8 }));
      legacy = Buffer.concat([
        Buffer.from(receivedField(this.o.config, client, id, rcptsLegacy, new Date(nowMs)), 'utf8'),
        ...pieces,
      ]);
      if (this.o.sign !== undefined) {
        const ar = authResultsValue({ authservId, verdicts });
        legacy = await this.o.sign(legacy, ar);
      }
      // "Nothing the gateway emits toward the legacy side can be read as a second
      // message" (§52.12): checked on the final octets, whatever produced them.
      this.o.checkOutgoing?.(legacy);
    } catch (e) {
      for (const a of refuseAll(e)) if (take.includes(a.rcpt)) answers.set(a.rcpt, a);
      return recipients.map((r) => answers.get(r)!);
    }

    const c = this.o.config;
    const tag = this.o.tokens.tag(id);
    const returnPath = `${c.reverse.returnPath}+${tag}@${asciiDomain(c.gateway.domain)}`;
    const meta: ReverseEntryMeta = {
      origin: 'nmtp-in',
      mailFrom: returnPath,
      envid: tag,
      // Only the headers come back in a DSN: the NMTP sender needs no copy of its message.
      ret: 'HDRS',
      smtputf8,
      eightBit: offers?.eightBitMime ?? false,
      arrival: now,
      client: { ip: client.ip, helo: client.domain },
      reverse: { client: processDomain(client.domain).ascii, rcpts: take },
    };
    const rmeta = (legacyAddr: string): ReverseRecipientMeta => ({
      legacy: legacyAddr,
      notify: NOTIFY,
      orcpt: { type: smtputf8 ? 'utf-8' : 'rfc822', address: legacyAddr },
    });
    // "Accepted means stored": nothing is answered before the entry is durable.
    await this.o.queue().add({
      id,
      user: returnPath,
      recipients: rcptsLegacy,
      kind: 'smtp',
      meta: meta as unknown as Json,
      recipientMeta: rcptsLegacy.map((a) => asJson(rmeta(a))),
      message: legacy,
    });
    this.log.event('reverse.queued', {
      queueId: id,
      client: client.domain,
      rcpts: take.length,
      size: legacy.length,
    });

    const entry = await this.waitForAnswers(id, take.length);
    take.forEach((rcpt, index) => {
      answers.set(rcpt, this.answerFor(entry, index, rcpt, client.domain, now));
    });
    return recipients.map((r) => answers.get(r)!);
  }

  /**
   * The queue's observer (composed with the others by the composition root): an entry
   * changed durably, so an answer wait on it looks again now. Changes nothing.
   */
  readonly observe = (s: QueuedSubmission): Promise<undefined> => {
    for (const wake of this.waiters.get(s.id) ?? []) wake();
    return Promise.resolve(undefined);
  };

  /** Until the entry changes, `ms` pass, or (at most) the answer budget's end. */
  private changeOf(id: string, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const set = this.waiters.get(id) ?? new Set<() => void>();
      this.waiters.set(id, set);
      const done = (): void => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0) this.waiters.delete(id);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      set.add(done);
    });
  }

  /**
   * Waits up to the answer budget for every recipient's cookie state to be final — "It
   * stops waiting earlier once every recipient is final or can no longer change within the
   * budget: a recipient the legacy side answered 4xx (or that could not be delivered for
   * want of a connection) and whose next attempt is due after the budget ends" (§52.12.3),
   * so a smarthost that defers (greylisting, a full queue) does not hold every NMTP
   * session for the whole budget.
   */
  private async waitForAnswers(id: string, n: number): Promise<QueuedSubmission | undefined> {
    const end = Date.now() + this.o.config.reverse.answerBudget * 1000;
    let s = await this.o.queue().get(id);
    const settled = (x: QueuedSubmission | undefined): boolean => {
      if (x === undefined) return true;
      const t = Math.floor(this.now() / 1000);
      for (let i = 0; i < n; i++) {
        const k = reverseCookieState(x, i, t, this.policy).kind;
        if (k === 'accepted' || k === 'rejected') continue;
        const r = x.recipients[i];
        if (r?.state === 'pending' && r.attempts > 0 && r.nextAt * 1000 >= end) continue;
        return false;
      }
      return true;
    };
    while (!settled(s) && Date.now() < end) {
      await this.changeOf(id, Math.min(ANSWER_POLL_MS, end - Date.now()));
      s = await this.o.queue().get(id);
    }
    return s;
  }

  private answerFor(
    s: QueuedSubmission | undefined,
    index: number,
    rcpt: string,
    clientDomain: string,
    now: number,
  ): FinalAnswer {
    const state: CookieState =
      s === undefined ? { kind: 'unknown' } : reverseCookieState(s, index, now, this.policy);
    if (state.kind === 'accepted') return { kind: 'accepted', rcpt, id: state.id };
    if (state.kind === 'rejected') return { ...state, rcpt };
    const id = s?.id ?? '';
    return {
      kind: 'deferred',
      rcpt,
      cookie: this.o.tokens.cookie(id, index, processDomain(clientDomain).ascii),
      min: this.policy.minPoll,
      max: this.policy.maxPoll,
      expires: s === undefined ? now + this.policy.maxPoll : cookieExpiry(s, this.policy),
    };
  }

  /**
   * STATUS or GIVEUP on a cookie of this direction; undefined when the cookie is not one
   * of ours for this client (the caller asks the mailbox, which answers unknown).
   */
  async cookie(
    op: 'status' | 'giveup',
    domain: string,
    cookie: string,
  ): Promise<CookieState | undefined> {
    const opened = this.o.tokens.openCookie(cookie, processDomain(domain).ascii);
    if (opened === undefined) return undefined;
    const q = this.o.queue();
    let s = await q.get(opened.entryId);
    const meta = reverseMeta(s?.meta);
    // Bound to the client domain twice over: the MAC, and the entry's own record.
    if (
      s === undefined ||
      meta === undefined ||
      meta.reverse.client !== processDomain(domain).ascii
    ) {
      return { kind: 'unknown' };
    }
    const now = Math.floor(this.now() / 1000);
    if (op === 'giveup') {
      const state = reverseCookieState(s, opened.index, now, this.policy);
      if (state.kind === 'deferred') {
        // "the receiver MAY discard what it holds for that recipient" (§60.10.6): the
        // queue gives it up at its next pass instead of delivering it (src/queue/work.ts).
        s =
          (await q.annotate(s.id, (cur) => ({
            ...cur,
            recipients: cur.recipients.map((r, i) =>
              i === opened.index
                ? {
                    ...r,
                    meta: asJson({
                      ...reverseRecipientMeta(r.meta)!,
                      cancel: true,
                    } as ReverseRecipientMeta),
                  }
                : r,
            ),
          }))) ?? s;
        await q.retry(s.id);
        this.log.event('reverse.giveup', { queueId: s.id, rcpt: state.rcpt });
        // Already handed over to the legacy side? Then it stands (a 2xx cannot be undone).
        const after = reverseCookieState(s, opened.index, now, this.policy);
        return after.kind === 'deferred' ? { kind: 'given-up', rcpt: state.rcpt } : after;
      }
      return state;
    }
    return reverseCookieState(s, opened.index, now, this.policy);
  }
}

function asciiDomain(d: string): string {
  return processDomain(d.trim().replace(/\.$/, '')).ascii;
}

/** A signature result as an Authentication-Results verdict (RFC 8601 result names). */
function verdictOf(r: SignatureResult): SignatureVerdict[] {
  const sig = r.signature;
  if (sig === undefined) return [];
  const result: SignatureVerdict['result'] =
    r.status === 'valid' ? 'pass' : r.temporary ? 'temperror' : 'fail';
  return [{ domain: sig.domain, result, ...(sig.user === undefined ? {} : { user: sig.user }) }];
}

/** The Received field (RFC 5321 §4.4) of the NMTP hop, on top of the legacy message. */
function receivedField(
  c: GatewayConfig,
  client: ReverseClient,
  id: string,
  rcpts: readonly string[],
  at: Date,
): string {
  const forClause = rcpts.length === 1 ? `\r\n\tfor <${rcpts[0]}>` : '';
  // RFC 5321 §4.1.3: an IPv6 address literal is written "IPv6:" and the address.
  const literal = client.ip.includes(':') ? `IPv6:${client.ip}` : client.ip;
  return `Received: from ${asciiDomain(client.domain)} ([${literal}])\r\n\tby ${c.gateway.hostname} (nmtp-gateway) with NMTP id ${id}${forClause};\r\n\t${formatRfc5322Date(at)}\r\n`;
}
