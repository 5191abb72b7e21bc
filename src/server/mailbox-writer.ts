/**
 * The mailbox writer: the main thread's handle on the writer thread
 * (mailbox-writer.worker.ts), which journals small accepted messages with group commit and
 * puts them into new/ (mailbox-store.ts). `store` resolves once the message is durable (in
 * the journal; its files appear in new/ moments later, `settled` waits for them); it rejects with NMTP_ERR_TRANSPORT_LOCAL (temporary: the sender
 * tries again) if the write failed or the thread died.
 *
 * Starting claims the maildir (one writer per maildir) and replays what a crash left in
 * the journal before the thread starts; a thread that dies is replaced the same way.
 */
import type { Worker } from 'node:worker_threads';
import { NmtpError } from '../core/errors/index.ts';
import {
  claimMaildir,
  recoverMailbox,
  removeLeftovers,
  type Leftovers,
  type StoredMessage,
} from './mailbox-store.ts';
import type { FromWriter, ToWriter } from './mailbox-writer.worker.ts';
import { restartPause, spawnThread } from '../thread/spawn.ts';

const WORKER = new URL('./mailbox-writer.worker.ts', import.meta.url);

/** The thread's entry. */
const spawn = (maildir: string): Worker => spawnThread(WORKER, { maildir });

export class MailboxWriter {
  private worker: Worker | undefined;
  private n = 0;
  private readonly waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private closing: Promise<void> | undefined;
  private outbox: ToWriter[] = [];
  /** Bodies whose memory goes with the next batch (postMessage's transfer list). */
  private handOver: ArrayBuffer[] = [];
  /** Restarts of the thread after it died (the pause before the next grows with it). */
  private restarts = 0;

  private constructor(
    private readonly maildir: string,
    private readonly release: () => void,
    private readonly onError: (e: unknown) => void,
  ) {}

  /**
   * Claims `maildir`, removes what a crash left (`removeLeftovers`: told to `onRecovered`
   * when there was any), replays its journal, starts the thread.
   */
  static async start(
    maildir: string,
    onError: (e: unknown) => void = () => undefined,
    onRecovered?: (found: Leftovers) => void,
  ): Promise<MailboxWriter> {
    const release = await claimMaildir(maildir);
    try {
      // Before the replay, which writes its copies through tmp/ again.
      const found = await removeLeftovers(maildir);
      if (found.tmp + found.cookieTemps + found.held > 0) onRecovered?.(found);
      await recoverMailbox(maildir, onError);
    } catch (e) {
      release();
      throw e;
    }
    const w = new MailboxWriter(maildir, release, onError);
    w.run();
    return w;
  }

  /**
   * Journals `m` (resolves once durable). With `handOver`, the body's memory moves to the
   * thread instead of being copied: the caller must not use the body afterwards, and it
   * must span its whole ArrayBuffer.
   */
  store(m: StoredMessage, handOver = false): Promise<void> {
    if (this.closing !== undefined || this.worker === undefined) {
      return Promise.reject(new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'mailbox writer closed'));
    }
    const n = ++this.n;
    return new Promise((resolve, reject) => {
      this.wait(n, { resolve, reject });
      const b = m.body;
      const whole = b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;
      if (handOver && whole && b.buffer instanceof ArrayBuffer) this.handOver.push(b.buffer);
      this.post({ kind: 'store', n, ...m });
    });
  }

  /**
   * Messages for the thread go out once per turn of the event loop, together: with many
   * sessions, one postMessage (one structured clone, one wake-up) carries many messages.
   */
  private post(m: ToWriter): void {
    this.outbox.push(m);
    if (this.outbox.length === 1) setImmediate(() => this.flushOutbox());
  }

  private flushOutbox(): void {
    const batch = this.outbox;
    const moved = this.handOver;
    this.outbox = [];
    this.handOver = [];
    if (batch.length > 0) this.worker?.postMessage(batch, moved);
  }

  /** Resolves once every message stored so far has its files in new/. */
  settled(): Promise<void> {
    if (this.closing !== undefined || this.worker === undefined) return Promise.resolve();
    const n = ++this.n;
    return new Promise((resolve) => {
      // A thread that dies meanwhile settles it too (its journal is replayed before the
      // next thread starts).
      this.wait(n, { resolve, reject: () => resolve() });
      this.post({ kind: 'settle', n });
    });
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const w = this.worker;
      if (w === undefined) return resolve();
      // The process stays up until the thread's last checkpoint is done.
      w.ref();
      w.once('exit', () => resolve());
      this.flushOutbox();
      w.postMessage([{ kind: 'close' }] satisfies ToWriter[]);
    }).finally(() => this.release());
    return this.closing;
  }

  private run(): void {
    const w = spawn(this.maildir);
    // The thread keeps the process alive only while something waits on it (a store, a
    // settle, close): an idle writer does not hold a process that is otherwise done.
    w.unref();
    this.worker = w;
    w.on('message', (m: FromWriter) => {
      switch (m.kind) {
        case 'stored':
          this.restarts = 0;
          for (const n of m.n) this.settle(n);
          break;
        case 'failed':
          for (const n of m.n) this.settle(n, m.message);
          break;
        case 'settled':
          this.settle(m.n);
          break;
        case 'warning':
          this.onError(new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `mailbox writer: ${m.message}`));
          break;
        case 'closed':
          break;
      }
    });
    w.on('error', (e) => this.onError(e));
    w.on('exit', (code) => {
      for (const n of [...this.waiting.keys()]) this.settle(n, `writer thread exited (${code})`);
      if (this.worker !== w || this.closing !== undefined) return;
      // Died: replay what it committed (its files may be missing), then a fresh thread.
      this.worker = undefined;
      this.restartLater(code);
    });
  }

  private wait(n: number, p: { resolve: () => void; reject: (e: Error) => void }): void {
    if (this.waiting.size === 0) this.worker?.ref();
    this.waiting.set(n, p);
  }

  /**
   * A fresh thread after a pause that grows while it keeps dying (a thread that cannot
   * start must not spin); the journal is replayed first. Meanwhile stores are refused
   * (451: the sender tries again).
   */
  private restartLater(code: number): void {
    this.restarts++;
    const pause = restartPause(this.restarts);
    this.onError(
      new NmtpError(
        'NMTP_ERR_TRANSPORT_LOCAL',
        `mailbox writer exited (${code}); restart in ${pause} ms`,
      ),
    );
    setTimeout(() => {
      if (this.closing !== undefined) return;
      recoverMailbox(this.maildir, this.onError).then(
        () => {
          if (this.closing === undefined) this.run();
        },
        (e: unknown) => {
          this.onError(e);
          this.restartLater(code);
        },
      );
    }, pause).unref();
  }

  private settle(n: number, failure?: string): void {
    const p = this.waiting.get(n);
    if (p === undefined) return;
    this.waiting.delete(n);
    if (this.waiting.size === 0 && this.closing === undefined) this.worker?.unref();
    if (failure === undefined) p.resolve();
    else p.reject(new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `mailbox store: ${failure}`));
  }
}
