/**
 * Per-destination concurrency: at most `perDestination` delivery jobs to one destination at
 * the same time in this process, besides the backend's active window of entries — Postfix's
 * default_destination_concurrency_limit (20), so one slow or popular domain cannot take
 * every connection while mail for other domains waits. A destination is the recipient
 * domain (lower case) of an NMTP job; for an SMTP job `SMARTHOST` (they all go to the one
 * smarthost), or toward MX hosts `smtp:` and the recipient domain (`smtpDestination`), apart
 * from the same domain's NMTP jobs as Postfix counts per transport and destination.
 *
 * A job holds one slot while it runs and never waits for a second one (a delivery pass does
 * its jobs one after another), so the limiter cannot deadlock; waiters are served in order.
 */
import { NmtpError } from '../core/errors/index.ts';

/** Postfix's default_destination_concurrency_limit. */
export const DEFAULT_PER_DESTINATION = 20;

/** The one destination of every 'smtp' entry (src/queue/port.ts): the smarthost. */
export const SMARTHOST = 'smarthost';

/** The destination of an SMTP job to `domain`'s MX hosts (QueueBackendOptions.smtpRoute 'mx'). */
export function smtpDestination(domain: string): string {
  return `smtp:${domain}`;
}

export class DestinationLimiter {
  private readonly active = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();

  constructor(readonly perDestination: number = DEFAULT_PER_DESTINATION) {
    if (!Number.isInteger(perDestination) || perDestination < 1) {
      throw new NmtpError('NMTP_ERR_CONFIG', 'perDestination must be a positive integer');
    }
  }

  /** Runs `f` once a slot for `destination` is free, and frees it when `f` settles. */
  async run<T>(destination: string, f: () => Promise<T>): Promise<T> {
    const d = destination.toLowerCase();
    await this.acquire(d);
    try {
      return await f();
    } finally {
      this.release(d);
    }
  }

  /** Jobs running for `destination` now (for tests and metrics). */
  inFlight(destination: string): number {
    return this.active.get(destination.toLowerCase()) ?? 0;
  }

  private acquire(d: string): Promise<void> | undefined {
    const n = this.active.get(d) ?? 0;
    if (n < this.perDestination) {
      this.active.set(d, n + 1);
      return undefined;
    }
    return new Promise((resolve) => {
      const q = this.waiting.get(d);
      if (q === undefined) this.waiting.set(d, [resolve]);
      else q.push(resolve);
    });
  }

  private release(d: string): void {
    const q = this.waiting.get(d);
    const next = q?.shift();
    if (q !== undefined && q.length === 0) this.waiting.delete(d);
    // A waiter takes the slot over: the count stays as it is.
    if (next !== undefined) return next();
    const n = (this.active.get(d) ?? 1) - 1;
    if (n === 0) this.active.delete(d);
    else this.active.set(d, n);
  }
}
