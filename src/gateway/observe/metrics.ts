/**
 * The gateway's Prometheus metrics: prom-client with a registry of its own (never the global
 * one, so two gateways in one test process do not share counters), behind `Metrics`, whose
 * small typed methods are all a service sees.
 *
 * Labels take values from closed sets only (reply classes, outcomes, catalog codes), so the
 * number of series stays bounded whatever a client sends.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { isErrorCode, type ErrorCode } from '../../core/errors/index.ts';
import { classify } from '../../core/errors/policy.ts';
import type { DeliveryAction } from '../../core/delivery/index.ts';
import type { StoredCookieState } from '../../store/cookies.ts';
import type { EntryKind, StateCounts } from '../../queue/port.ts';
import type { RouteDecision } from '../ports.ts';

/** What a recipient's delivery attempt can come to, per direction. */
export interface OutOutcomes {
  readonly nmtp: 'accepted' | 'rejected' | 'deferred' | 'tempfail' | 'given-up' | 'expired';
  readonly smtp: 'delivered' | 'rejected' | 'deferred' | 'expired';
}
export type Direction = keyof OutOutcomes;

/** The outcomes that end a recipient's delivery: only these are timed. */
const FINAL: { readonly [D in Direction]: readonly OutOutcomes[D][] } = {
  nmtp: ['accepted', 'rejected', 'given-up', 'expired'],
  smtp: ['delivered', 'rejected', 'expired'],
};
const ALL_OUTCOMES: { readonly [D in Direction]: readonly OutOutcomes[D][] } = {
  nmtp: ['accepted', 'rejected', 'deferred', 'tempfail', 'given-up', 'expired'],
  smtp: ['delivered', 'rejected', 'deferred', 'expired'],
};

export type SmtpStage = 'mail' | 'rcpt' | 'data';
export type DsnOutcome = 'queued' | 'suppressed';

/** Where scrape-time gauges read from; each is optional. */
export interface MetricSources {
  /** The queue: recipients by state (QueueBackend.counts()). */
  readonly queue?: { counts(): Promise<StateCounts> };
  /** Cookies the gateway's own receiver holds, by state. */
  readonly cookies?: () => Promise<Partial<Record<StoredCookieState, number>>>;
}

export interface Metrics {
  /**
   * One SMTP connection, counted by what the connect step answered; it is in the current
   * gauge until the returned function is called (once; later calls do nothing).
   */
  smtpConnection(result: 'accepted' | 'refused'): () => void;
  /**
   * One reply smtp-in gave at MAIL, RCPT or the end of DATA (LMTP: one per recipient). An
   * accepted message is `data` with a 2xx reply. `err` is the refusal's catalog code.
   */
  smtpIn(stage: SmtpStage, reply: { readonly code: number; readonly err?: ErrorCode }): void;
  /** A queue entry stored. */
  queued(kind: EntryKind): void;
  /** A routing decision for one recipient. */
  routed(transport: RouteDecision['transport']): void;
  /**
   * One recipient's attempt came to `outcome`; `seconds` (since the entry was queued) is
   * observed in the latency histogram when the outcome is final.
   */
  delivered<D extends Direction>(direction: D, outcome: OutOutcomes[D], seconds?: number): void;
  /** A DSN written and queued, or not sent (null sender, NOTIFY, backscatter rule). */
  dsn(outcome: DsnOutcome, action: DeliveryAction): void;
  /** A legacy message that could not be converted: its catalog code, or what was thrown. */
  convertFailed(err: ErrorCode | unknown): void;
  /**
   * The reverse direction (NMTP in → SMTP out): one answer given to an NMTP sender after the
   * data (accepted, rejected, or deferred with a cookie; §52.12.3).
   */
  reverseAnswer(answer: 'accepted' | 'rejected' | 'deferred'): void;
  /** Sets (or replaces) where the queue and cookie gauges are read at scrape time. */
  collectFrom(sources: MetricSources): void;
  /** The exposition text (what GET /metrics returns). */
  text(): Promise<string>;
  /** Its HTTP Content-Type. */
  readonly contentType: string;
}

export interface MetricsOptions {
  /** prom-client's default process and Node.js metrics (CPU, memory, event loop, GC); default on. */
  readonly processMetrics?: boolean;
  /** How long one scrape-time source may take before its gauge is left empty (ms; default 5000). */
  readonly collectTimeout?: number;
}

const P = 'nmtp_gateway_';
const QUEUE_STATES = ['pending', 'accepted', 'deferred', 'rejected', 'given-up'] as const;

/** Seconds from queued to a final answer: a second up to the 5-day maximum age. */
const LATENCY_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400, 5 * 86400];

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const timeout = options.collectTimeout ?? 5000;
  let sources: MetricSources = {};

  const connections = new Gauge({
    name: `${P}smtp_connections`,
    help: 'SMTP and LMTP connections open now.',
    registers,
  });
  const connectionsTotal = new Counter({
    name: `${P}smtp_connections_total`,
    help: 'SMTP and LMTP connections, by what the connect step answered (accepted, refused).',
    labelNames: ['result'],
    registers,
  });
  const smtpIn = new Counter({
    name: `${P}smtp_in_total`,
    help: 'Replies smtp-in gave, by stage (mail, rcpt, data), class (2xx, 4xx, 5xx) and catalog code; accepted messages are stage="data",class="2xx".',
    labelNames: ['stage', 'class', 'err'],
    registers,
  });
  const queued = new Counter({
    name: `${P}queued_total`,
    help: 'Queue entries stored, by kind (nmtp: to NMTP receivers; smtp: legacy recipients and DSNs).',
    labelNames: ['kind'],
    registers,
  });
  const routed = new Counter({
    name: `${P}routes_total`,
    help: 'Routing decisions per recipient, by transport (nmtp, smtp, temperror, invalid).',
    labelNames: ['transport'],
    registers,
  });
  const out = new Counter({
    name: `${P}recipients_out_total`,
    help: 'Recipient delivery results, by direction (nmtp, smtp) and outcome.',
    labelNames: ['direction', 'outcome'],
    registers,
  });
  const latency = new Histogram({
    name: `${P}delivery_seconds`,
    help: 'Seconds from queue add to a final answer, by direction and outcome.',
    labelNames: ['direction', 'outcome'],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const dsn = new Counter({
    name: `${P}dsn_total`,
    help: 'Delivery status notifications, by outcome (queued, suppressed) and action.',
    labelNames: ['outcome', 'action'],
    registers,
  });
  const convertErrors = new Counter({
    name: `${P}convert_errors_total`,
    help: 'Legacy messages that could not be converted, by catalog code.',
    labelNames: ['err'],
    registers,
  });
  const reverseAnswers = new Counter({
    name: `${P}reverse_answers_total`,
    help: 'Answers given to NMTP senders for legacy recipients after the data, by answer (accepted, rejected, deferred).',
    labelNames: ['answer'],
    registers,
  });
  const collectErrors = new Counter({
    name: `${P}collect_errors_total`,
    help: 'Scrape-time reads that failed or timed out, by source (queue, cookies); that gauge is empty for the scrape.',
    labelNames: ['source'],
    registers,
  });
  const queueDepth = new Gauge({
    name: `${P}queue_recipients`,
    help: 'Recipients in the queue by state (read from the queue backend at scrape time).',
    labelNames: ['state'],
    registers,
  });
  const cookies = new Gauge({
    name: `${P}cookies`,
    help: "Cookies the gateway's receiver holds, by state (read at scrape time).",
    labelNames: ['state'],
    registers,
  });

  /**
   * Reads the sources before the registry is serialised (not in a gauge's collect(), which
   * prom-client runs in parallel with the serialisation of collect_errors_total), so one
   * scrape shows both a failed read and its count.
   */
  async function refresh(): Promise<void> {
    const { queue, cookies: readCookies } = sources;
    const [q, c] = await Promise.all([
      queue === undefined ? undefined : bounded(() => queue.counts(), timeout).catch(() => null),
      readCookies === undefined ? undefined : bounded(readCookies, timeout).catch(() => null),
    ]);
    queueDepth.reset();
    if (q === null) collectErrors.inc({ source: 'queue' });
    else if (q !== undefined)
      for (const state of QUEUE_STATES) queueDepth.set({ state }, q[state] ?? 0);
    cookies.reset();
    if (c === null) collectErrors.inc({ source: 'cookies' });
    else if (c !== undefined) {
      for (const [state, n] of Object.entries(c)) if (n !== undefined) cookies.set({ state }, n);
    }
  }

  // Series that exist from the start read 0 rather than absent, so rate() and alerts work
  // before the first event.
  for (const answer of ['accepted', 'rejected', 'deferred'] as const)
    reverseAnswers.inc({ answer }, 0);
  connectionsTotal.inc({ result: 'accepted' }, 0);
  connectionsTotal.inc({ result: 'refused' }, 0);
  for (const direction of ['nmtp', 'smtp'] as const) {
    for (const outcome of ALL_OUTCOMES[direction]) out.inc({ direction, outcome }, 0);
  }
  for (const outcome of ['queued', 'suppressed'] as const) {
    for (const action of ['failed', 'delayed', 'relayed'] as const) dsn.inc({ outcome, action }, 0);
  }

  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });

  return {
    smtpConnection(result) {
      connectionsTotal.inc({ result });
      connections.inc();
      let open = true;
      return () => {
        if (open) connections.dec();
        open = false;
      };
    },
    smtpIn(stage, reply) {
      const cls =
        reply.code >= 200 && reply.code < 600 ? `${Math.floor(reply.code / 100)}xx` : 'other';
      smtpIn.inc({ stage, class: cls, err: reply.err ?? 'none' });
    },
    queued(kind) {
      queued.inc({ kind });
    },
    routed(transport) {
      routed.inc({ transport });
    },
    delivered(direction, outcome, seconds) {
      out.inc({ direction, outcome });
      const final: readonly string[] = FINAL[direction];
      if (seconds !== undefined && Number.isFinite(seconds) && final.includes(outcome)) {
        latency.observe({ direction, outcome }, Math.max(0, seconds));
      }
    },
    dsn(outcome, action) {
      dsn.inc({ outcome, action });
    },
    convertFailed(err) {
      // Anything not a catalog code is classified (NMTP_ERR_INTERNAL): the label set stays closed.
      convertErrors.inc({
        err: typeof err === 'string' && isErrorCode(err) ? err : classify(err).code,
      });
    },
    reverseAnswer(answer) {
      reverseAnswers.inc({ answer });
    },
    collectFrom(s) {
      sources = s;
    },
    async text() {
      await refresh();
      return registry.metrics();
    },
    contentType: registry.contentType,
  };
}

/** `f()`, or a rejection once `ms` have passed (the timer never outlives the call). */
export async function bounded<T>(f: () => Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      f(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
