/**
 * The reference mailbox receiver: a `TransferDecider` that stores accepted messages in a
 * directory, so the protocol can be tried end to end without the gateway (issue 4).
 *
 *     <maildir>/tmp/      messages being received (deleted after the decision)
 *     <maildir>/new/      accepted messages, one `<id>.nmtp` per accepted recipient
 *     <maildir>/journal/  accepted messages not yet durable in new/ (`nmtp serve` only;
 *                         src/server/mailbox-store.ts), and `owner`: the serving process
 *     <maildir>/held/     messages of deferred recipients, `<cookie>.nmtp`
 *     <maildir>/cookies/  the durable cookie store (src/store/cookies.ts)
 *     <maildir>/policy.json  optional:
 *         { "defer": [addr…], "reject": [addr…],
 *           "redirect": { "<addr>": "<host>:<port> SHA256:<fingerprint>" },
 *           "preview": { "<addr>": "headers" | "text" | "signers" | "digest" } }; others accept
 *
 * A preview recipient is held on the view named (asked for when every recipient of the
 * transaction is a preview recipient, else the full message is held); `nmtp mailbox
 * approve` then turns its cookie into "send me the full message" (STATUS → 352), and the
 * full message that arrives on the cookie is stored and the cookie answers accepted.
 *
 * policy.json is stat'ed on every decision and parsed again only when it changed (its
 * inode, size, mtime or ctime differ): an edit is seen by the next decision. A file written
 * less than 2 s ago is re-read every time (an edit within one tick of the file system's
 * clock could keep all four), so a rewrite is never missed.
 *
 * A redirected recipient is answered 351 (§60.10.2) — deliver to the recipient's own
 * endpoint once it proves the key with that fingerprint (§60.10.8) — unless the RCPT says
 * `redirect=failed`: then the sender could not deliver there, and the mailbox takes the
 * message the normal way (stores it), so the recipient still gets it.
 *
 * Each accepted recipient gets its own copy, `new/<id>.nmtp`: the message as received
 * with one `Received` trace field added (§60.8.4) naming the recipient, the time, and the
 * client identification with the reputation hook's verdict (§60.8.3) — the record travels
 * with the message, as a Received header does in legacy mail. A held message is kept as
 * received and its cookie keeps the identification until it is approved.
 *
 * Nothing is answered 250 before it is durable ("accepted means stored"), two ways:
 * - With `journal` (what `nmtp serve` does), a message of at most `inlineLimit` octets is
 *   kept in memory while it arrives and handed to the writer thread, which appends it to
 *   the journal and answers once one fdatasync covers it (shared by every message that
 *   arrived meanwhile); the copies appear in new/ moments later (`settled()` waits for
 *   them), and a restart replays what a crash left (src/server/mailbox-store.ts).
 * - Otherwise (and for larger messages) the message is received into a file in tmp/, and
 *   each copy is written from it through tmp/, fsync'd and renamed into new/; new/ is
 *   then fsync'd once for all of them — shared with other sessions' copies meanwhile
 *   (`fsyncDirShared`).
 * A deferred recipient is decided later by
 * `decideCookie` (the `nmtp mailbox approve|reject` command), possibly from another
 * process: the running server reads the cookie store on every STATUS.
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { link, mkdir, open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { NmtpError } from '../core/errors/index.ts';
import {
  DEFAULT_LIMITS,
  END,
  FrameDecoder,
  NEED_MORE,
  type TraceInsertion,
} from '../core/frame/index.ts';
import { toBase64url } from '../core/sign/index.ts';
import {
  EAGER_MAX,
  formatReceived,
  RECEIVED_FIELD,
  VIEWS,
  viewSha256,
  type CookieState,
  type FinalAnswer,
  type RecipientDecision,
  type View,
  type ViewChoice,
} from '../core/session/index.ts';
import { CookieStore, type StoredCookie } from '../store/cookies.ts';
import { MailboxWriter } from './mailbox-writer.ts';
import { heldPath, heldRef, partName, withReceived, type Leftovers } from './mailbox-store.ts';
import { fsyncDirShared, writeSynced } from '../store/durable.ts';
import type {
  Identification,
  MaybePromise,
  MessageSink,
  TransferDecider,
} from './transfer-host.ts';

const ignore = (): void => undefined;

/**
 * Random ids and cookies, base64url, from a pool refilled 4 KiB at a time: one CSPRNG
 * call per few hundred ids instead of one per id (a synchronous call that showed up in
 * the receiver's profile). The octets are the same CSPRNG's; none is used twice.
 */
let pool = new Uint8Array(0);
let poolAt = 0;
function randomId(octets: number): string {
  if (poolAt + octets > pool.length) {
    pool = randomBytes(4096);
    poolAt = 0;
  }
  poolAt += octets;
  return toBase64url(pool.subarray(poolAt - octets, poolAt));
}

/** What becomes of one recipient of a checked full message (`Mailbox.plan`). */
type Plan =
  | {
      readonly kind: 'accept';
      readonly rcpt: string;
      readonly id: string;
      /** Its Received field value and where it goes. */
      readonly field: string;
      readonly ins: TraceInsertion;
    }
  | { readonly kind: 'hold'; readonly rcpt: string }
  | { readonly kind: 'refuse'; readonly rcpt: string; readonly code: string };

/**
 * How many first octets of a message hold its whole trace block: the version line and
 * at most `maxHeaderBytes` of trace block (§10.8).
 */
const HEAD_MAX = 8 + DEFAULT_LIMITS.maxHeaderBytes;
const CRLFCRLF = Buffer.from('\r\n\r\n');

/** Appends the octets of the file `path` from `offset` on to `h`, a piece at a time. */
async function copyFrom(path: string, offset: number, h: FileHandle): Promise<void> {
  const src = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (let at = offset; ;) {
      const { bytesRead } = await src.read(buf, 0, buf.length, at);
      if (bytesRead === 0) return;
      await h.writeFile(buf.subarray(0, bytesRead));
      at += bytesRead;
    }
  } finally {
    await src.close();
  }
}

/** The first HEAD_MAX octets of a file, and its size. */
async function readHead(path: string): Promise<{ head: Uint8Array; size: number }> {
  const h = await open(path, 'r');
  try {
    const { size } = await h.stat();
    const buf = Buffer.alloc(Math.min(size, HEAD_MAX));
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await h.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return { head: buf.subarray(0, n), size };
  } finally {
    await h.close();
  }
}

export interface MailboxOptions {
  readonly maildir: string;
  /** Unix seconds now. */
  readonly now?: () => number;
  /** Poll window given to deferred senders and how long a cookie lives (seconds). */
  readonly minPoll?: number;
  readonly maxPoll?: number;
  readonly cookieLifetime?: number;
  /**
   * Journal small messages through a writer thread (group commit; what `nmtp serve` does).
   * It claims the maildir: one server per maildir. Without it (the CLI's `mailbox approve`,
   * unit tests) every message goes through a file in tmp/.
   */
  readonly journal?: boolean;
  /** Messages up to this size are journalled (default 256 KiB); larger ones use tmp/. */
  readonly inlineLimit?: number;
  readonly onError?: (e: unknown) => void;
  /** With `journal`: what the start-up found a crash had left, and removed (a log line). */
  readonly onRecovered?: (found: Leftovers) => void;
}

interface Policy {
  readonly defer?: readonly string[];
  readonly reject?: readonly string[];
  /** Canonical address → "<host>:<port> SHA256:<fingerprint>". */
  readonly redirect?: Readonly<Record<string, string>>;
  /**
   * Canonical address → the view to ask for first (headers, text, signers, digest): the
   * recipient is held on that preview; approving it asks the sender for the full message
   * (STATUS → 352), which is then stored (§60.10.4, §60.10.6).
   */
  readonly preview?: Readonly<Record<string, View>>;
}

/** "<host>:<port> SHA256:<43 base64url>"; host may be a bracketed IPv6 literal. */
const REDIRECT_RE =
  /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5}) (SHA256:[A-Za-z0-9_-]{43})$/;

/** A recipient's answer under `p` (§60.10.2). */
function decideWith(p: Policy, a: { rcpt: string; redirectFailed?: true }): RecipientDecision {
  if (p.reject?.includes(a.rcpt) === true) return { kind: 'reject', text: 'refused by policy' };
  const r = p.redirect;
  const redirected = typeof r === 'object' && r !== null && Object.hasOwn(r, a.rcpt);
  // "A server MUST NOT answer 351 to an RCPT that carries redirect=failed" (§60.10.2):
  // the sender tried the recipient's endpoint and could not deliver there, so the mailbox
  // is the fallback and takes the message.
  if (redirected && a.redirectFailed !== true) return parseRedirect(a.rcpt, r[a.rcpt]);
  return { kind: 'accept' };
}

/** A policy.json redirect entry as a decision; a malformed entry is a local failure. */
export function parseRedirect(rcpt: string, text: unknown): RecipientDecision {
  const m = typeof text === 'string' ? REDIRECT_RE.exec(text) : null;
  const port = Number(m?.[2]);
  if (m === null || port < 1 || port > 65535) {
    throw new NmtpError(
      'NMTP_ERR_TRANSPORT_LOCAL',
      `policy.json: redirect for ${rcpt} must be "<host>:<port> SHA256:<fingerprint>"`,
    );
  }
  // The decision carries the bare host; the reducer brackets an IPv6 literal on the wire.
  return { kind: 'redirect', host: m[1]!.replace(/^\[|\]$/g, ''), port, fingerprint: m[3]! };
}

/**
 * A message being received, hashed by the streaming frame decoder. Up to `inlineLimit`
 * octets it is kept in memory (for the journal); beyond that, and always when the limit
 * is 0, it goes to a file in tmp/.
 */
class Incoming implements MessageSink {
  private readonly decoder = new FrameDecoder({});
  digest: string | undefined;
  bad: NmtpError | undefined;
  /** The octets while in memory; undefined once spilled to `file`. */
  private parts: Uint8Array[] | undefined = [];
  /** Octets received so far. */
  size = 0;
  /** The first HEAD_MAX octets: they hold the whole trace block of any valid message. */
  private headParts: Uint8Array[] = [];
  private headSize = 0;

  private file: FileHandle | undefined;
  private spoolPath: string | undefined;
  /**
   * A spilled message is written with the first recipient's Received field already in
   * place (`first`), so that, accepted, the spool file is that recipient's copy — renamed,
   * not copied. Until the end of the trace block is seen, the spool's octets wait (`waiting`)
   * (at most HEAD_MAX); `streamed` then says where the field went.
   */
  private waiting: Uint8Array[] = [];
  private waitingSize = 0;
  streamed: { readonly at: number; readonly length: number; readonly field: string } | undefined;
  private noStream = false;

  private constructor(
    private readonly tmpDir: string,
    private readonly inlineLimit: number,
    /** The policy this transaction is decided by (read once, at DATA). */
    readonly policy: Policy,
    /** When the message arrived (its DATA): the time every Received field names. */
    readonly receivedAt: number,
    /** The Received field value of the first recipient, written into a spilled message. */
    private readonly first: string | undefined,
  ) {}

  /** At once when the message starts in memory; a file from the start when the limit is 0. */
  static create(
    tmpDir: string,
    inlineLimit: number,
    policy: Policy,
    receivedAt: number,
    first: string | undefined,
  ): MaybePromise<Incoming> {
    const sink = new Incoming(tmpDir, inlineLimit, policy, receivedAt, first);
    if (inlineLimit === 0) return sink.spill().then(() => sink);
    return sink;
  }

  /** The spool file in tmp/ (named when first needed: most messages never have one). */
  get path(): string {
    this.spoolPath ??= join(this.tmpDir, `${randomId(12)}.nmtp`);
    return this.spoolPath;
  }

  /** The whole message if it stayed in memory. */
  get inline(): Uint8Array | undefined {
    if (this.parts === undefined) return undefined;
    if (this.parts.length !== 1) {
      // Its own ArrayBuffer (Buffer.concat may cut a small one from a shared pool), so the
      // journal can take the memory instead of a copy (MailboxWriter.store's handOver).
      const all = new Uint8Array(this.size);
      let at = 0;
      for (const p of this.parts) {
        all.set(p, at);
        at += p.length;
      }
      this.parts = [all];
    }
    return this.parts[0];
  }

  /** The message's first octets, up to HEAD_MAX (where its Received field goes). */
  get head(): Uint8Array {
    // A message kept in memory is its own head (no second copy).
    if (this.parts !== undefined) return this.inline!;
    if (this.headParts.length !== 1) this.headParts = [Buffer.concat(this.headParts)];
    return this.headParts[0]!;
  }

  /** At once while the message stays in memory (the usual case); else a promise. */
  write(bytes: Uint8Array): void | Promise<void> {
    // Copied: the caller's buffer is not ours to keep, and the decoder keeps what it needs.
    const own = Uint8Array.from(bytes);
    if (this.headSize < HEAD_MAX) {
      const piece = own.subarray(0, HEAD_MAX - this.headSize);
      this.headParts.push(piece);
      this.headSize += piece.length;
    }
    if (this.parts !== undefined && this.size + own.length <= this.inlineLimit) {
      this.size += own.length;
      this.parts.push(own);
      this.check(own);
      return;
    }
    return this.writeFile(own);
  }

  private async writeFile(own: Uint8Array): Promise<void> {
    if (this.parts !== undefined) await this.spill();
    this.size += own.length;
    await this.spool(own);
    this.check(own);
  }

  /** Appends to the spool file, putting `first`'s Received line at the trace block's end. */
  private async spool(b: Uint8Array): Promise<void> {
    if (this.first === undefined || this.streamed !== undefined || this.noStream) {
      await this.file!.write(b);
      return;
    }
    this.waiting.push(b);
    this.waitingSize += b.length;
    const all = this.waiting.length === 1 ? b : Buffer.concat(this.waiting);
    // The trace block ends at the first empty line: no field line holds CR or LF (§10.3).
    const end = Buffer.from(all.buffer, all.byteOffset, all.byteLength).indexOf(CRLFCRLF);
    if (end < 0 && this.waitingSize <= HEAD_MAX) {
      this.waiting = [all];
      return;
    }
    this.waiting = [];
    if (end < 0) {
      // No trace block end where one must be: the frame check refuses the message.
      this.noStream = true;
      await this.file!.write(all);
      return;
    }
    const at = end + 2;
    const line = Buffer.from(`${RECEIVED_FIELD}: ${this.first}\r\n`);
    for (const piece of [all.subarray(0, at), line, all.subarray(at)]) {
      await this.file!.writeFile(piece);
    }
    this.streamed = { at, length: line.length, field: this.first };
  }

  /**
   * The decoder checks the whole frame and computes the content digest as the octets
   * pass: memory stays bounded by the frame limits, not the message size.
   */
  private check(own: Uint8Array): void {
    this.feed(() => this.decoder.push(own));
  }

  private async spill(): Promise<void> {
    this.file = await open(this.path, 'wx', 0o600);
    for (const p of this.parts ?? []) await this.spool(p);
    this.parts = undefined;
  }

  private feed(f: () => void): void {
    if (this.bad) return;
    try {
      f();
      for (let ev = this.decoder.next(); ev !== NEED_MORE && ev !== END; ev = this.decoder.next()) {
        if (ev.type === 'end') this.digest = toBase64url(ev.contentDigest);
      }
    } catch (e) {
      this.bad = e instanceof NmtpError ? e : new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', String(e));
    }
  }

  /** Finishes the frame check: `digest` or `bad` is final after this. */
  finish(): void {
    this.feed(() => this.decoder.finish());
  }

  /**
   * A spilled message's file closed — flushed to disk (data and inode) first with `sync`,
   * when it becomes a copy in new/ (renamed) or held copies will be links to it.
   */
  async close(sync: boolean): Promise<void> {
    const f = this.file;
    if (f === undefined) return;
    this.file = undefined;
    // Octets still waiting for the end of the trace block (a message that never had one).
    if (this.waiting.length > 0) await f.write(Buffer.concat(this.waiting));
    this.waiting = [];
    try {
      if (sync) await f.sync();
    } finally {
      await f.close();
    }
  }

  async discard(): Promise<void> {
    this.parts = undefined;
    await this.file?.close().catch(ignore);
    this.file = undefined;
    if (this.spoolPath !== undefined) await unlink(this.spoolPath).catch(ignore);
  }
}

export class Mailbox implements TransferDecider {
  private cachedPolicy: { version: string; settled: boolean; policy: Policy } | undefined;
  private policyPath: string | undefined;

  private constructor(
    private readonly o: MailboxOptions,
    readonly cookies: CookieStore,
    private readonly writer: MailboxWriter | undefined,
  ) {}

  static async open(o: MailboxOptions): Promise<Mailbox> {
    for (const d of ['tmp', 'new', 'held']) {
      await mkdir(join(o.maildir, d), { recursive: true, mode: 0o700 });
    }
    const cookies = await CookieStore.open(join(o.maildir, 'cookies'));
    const writer =
      o.journal === true
        ? await MailboxWriter.start(o.maildir, o.onError, o.onRecovered)
        : undefined;
    return new Mailbox(o, cookies, writer);
  }

  /**
   * Resolves once every message answered so far has its files in new/ (journalled
   * messages appear there moments after their answer; see mailbox-store.ts).
   */
  async settled(): Promise<void> {
    await this.writer?.settled();
  }

  /** Stops the writer thread after its last commit (a server's close). */
  async close(): Promise<void> {
    await this.writer?.close();
  }

  private now(): number {
    return (this.o.now ?? ((): number => Math.floor(Date.now() / 1000)))();
  }

  /**
   * policy.json, parsed once per version of the file. A version is known by a stat —
   * synchronous on purpose: a few microseconds, where the thread pool would queue it
   * behind other sessions' fsyncs (the decision waits for it twice per message).
   */
  private policy(): MaybePromise<Policy> {
    const path = (this.policyPath ??= join(this.o.maildir, 'policy.json'));
    let st;
    try {
      st = statSync(path, { bigint: true, throwIfNoEntry: false });
    } catch (e) {
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `policy.json: ${(e as Error).message}`);
    }
    const version =
      st === undefined ? 'absent' : `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    const c = this.cachedPolicy;
    // The usual case answers at once: no promise, no turn of the event loop.
    if (c?.version === version && c.settled) return c.policy;
    if (st === undefined) {
      this.cachedPolicy = { version, settled: true, policy: {} };
      return {};
    }
    return this.readPolicy(path, version, st.mtimeMs);
  }

  private async readPolicy(path: string, version: string, mtimeMs: bigint): Promise<Policy> {
    let policy: Policy;
    try {
      policy = JSON.parse(await readFile(path, 'utf8')) as Policy;
    } catch (e) {
      // Gone since the stat: as if never there. Not cached: the next decision looks again.
      if ((e as { code?: string }).code === 'ENOENT') return {};
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `policy.json: ${(e as Error).message}`);
    }
    // A file rewritten within one tick of the file system's clock (coarse: a few ms on
    // Linux, 2 s on FAT) may keep its size and times: the cache is trusted only once the
    // version is older than that ("racy clean", as git does); until then it is re-read.
    const settled = Date.now() - Number(mtimeMs) > 2000;
    this.cachedPolicy = { version, settled, policy };
    return policy;
  }

  /**
   * The eager data a session takes (§60.10.4): up to EAGER_MAX octets, unless policy.json
   * names preview recipients — a preview is a view the receiver asks for, and eager data
   * would send the whole message before it could ask.
   */
  async eagerMax(): Promise<number> {
    // A policy.json that cannot be read takes eager data: the decisions refuse it anyway.
    const p = await Promise.resolve()
      .then(() => this.policy())
      .catch(() => ({}) as Policy);
    return p.preview !== undefined && Object.keys(p.preview).length > 0 ? 0 : EAGER_MAX;
  }

  decideRecipient(a: { rcpt: string; redirectFailed?: true }): MaybePromise<RecipientDecision> {
    const p = this.policy();
    return p instanceof Promise ? p.then((q) => decideWith(q, a)) : decideWith(p, a);
  }

  /**
   * `client` (the session's identification) lets a message that goes to a file carry its
   * first recipient's Received field from the start (see Incoming); without it every copy
   * is written from the received file afterwards.
   */
  chooseView(
    a: { domain: string; recipients: readonly string[]; cookie?: string },
    client?: Identification,
  ): MaybePromise<{ choice: ViewChoice; sink?: MessageSink }> {
    if (a.cookie !== undefined) return this.chooseOnCookie(a.domain, a.cookie, client);
    // One read of the policy decides the whole message (DATA to the last answer).
    const p = this.policy();
    return p instanceof Promise
      ? p.then((q) => this.viewFor(a.recipients, q, client))
      : this.viewFor(a.recipients, p, client);
  }

  private async chooseOnCookie(
    domain: string,
    cookie: string,
    client: Identification | undefined,
  ): Promise<{ choice: ViewChoice; sink?: MessageSink }> {
    const c = await this.owned(cookie, domain);
    if (c === undefined) return { choice: { kind: 'unknown-cookie' } };
    if (c.state !== 'want-view') return { choice: { kind: 'not-wanted' } };
    // The copy is dated when the message arrived, the cookie's issue (§60.8.4).
    const r = await this.viewFor(undefined, await this.policy(), client, c.rcpt, c.issued);
    // "Every DATA on a cookie MUST announce the size, digest and signers of the DATA that
    // created the cookie", and the view sent must reproduce the one held (§60.10.6).
    const bound = {
      ...(c.announced === undefined ? {} : { announced: c.announced }),
      ...(c.held === undefined ? {} : { held: c.held }),
    };
    return { choice: { ...r.choice, ...bound } as ViewChoice, sink: r.sink };
  }

  /**
   * A mailbox stores what it accepts, so it asks for the full view — except when every
   * recipient of a new transaction (`recipients`; none on a cookie) is a preview recipient
   * (one view serves a transaction).
   */
  private viewFor(
    recipients: readonly string[] | undefined,
    policy: Policy,
    client: Identification | undefined,
    cookieRcpt?: string,
    at?: number,
  ): MaybePromise<{ choice: ViewChoice; sink: MessageSink }> {
    let view: View = 'full';
    if (recipients !== undefined) {
      const preview = policy.preview ?? {};
      const views = recipients.map((r) => (Object.hasOwn(preview, r) ? preview[r] : undefined));
      const first = views[0];
      if (first !== undefined && VIEWS.includes(first) && views.every((v) => v === first)) {
        view = first;
      }
    }
    const tmp = join(this.o.maildir, 'tmp');
    const inline = this.writer === undefined ? 0 : (this.o.inlineLimit ?? 256 * 1024);
    const choice: ViewChoice = { kind: 'view', view };
    const now = at ?? this.now();
    const first = cookieRcpt ?? recipients?.[0];
    const field =
      view === 'full' && client !== undefined && first !== undefined
        ? this.receivedField(first, client, now)
        : undefined;
    const sink = Incoming.create(tmp, inline, policy, now, field);
    return sink instanceof Promise ? sink.then((k) => ({ choice, sink: k })) : { choice, sink };
  }

  async decideMessage(
    a: {
      domain: string;
      recipients: readonly string[];
      view: View;
      digest: string;
      /** With `digest`, what the DATA announced: kept on a cookie it creates (§60.10.6). */
      size?: number;
      signers?: readonly string[];
      cookie?: string;
    },
    sink: MessageSink | undefined,
    client: Identification,
  ): Promise<FinalAnswer[]> {
    const announced =
      a.size === undefined || a.signers === undefined
        ? undefined
        : { size: a.size, digest: a.digest, signers: [...a.signers] };
    if (!(sink instanceof Incoming)) throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'no sink');
    sink.finish();
    // A held message kept as sent, when the received file carries a field (removed after).
    let heldFrom: string | undefined;
    try {
      if (a.view !== 'full') {
        // "A receiver that sent less than the full view and has not decided MUST answer
        // deferred (it cannot accept what it has not received)" (§60.10.5). A preview is
        // not a whole frame, so there is no digest to check yet.
        await sink.close(true);
        const hold = this.holder(sink.inline ?? sink.path, announced);
        const held: FinalAnswer[] = [];
        for (const rcpt of a.recipients) held.push(await hold(a.domain, rcpt, client, a.view));
        return held;
      }
      const rcpts =
        a.cookie === undefined
          ? a.recipients
          : [(await this.owned(a.cookie, a.domain))?.rcpt ?? ''];
      // "A receiver MUST check the content digest of a full view before accepting … a
      // mismatch rejects every recipient" (§60.10.4).
      if (sink.bad !== undefined || sink.digest !== a.digest) {
        await sink.close(false);
        const text = sink.bad?.code ?? 'content digest mismatch';
        const refused = rcpts.map((rcpt): FinalAnswer => ({
          kind: 'rejected',
          rcpt,
          enhanced: '5.6.0',
          text,
        }));
        if (a.cookie !== undefined) await this.settleCookie(a.cookie, refused[0]);
        return refused;
      }
      const plans = this.plan(rcpts, sink, client, a.cookie === undefined);
      const accepted = plans.filter((p) => p.kind === 'accept');
      const holding = plans.some((p) => p.kind === 'hold');
      const inline = sink.inline;
      if (inline !== undefined && this.writer !== undefined) {
        // The journal path: every accepted copy through one journal entry, answered once
        // it is durable; the copies appear in new/ moments later (mailbox-store.ts).
        if (accepted.length > 0) {
          // The octets go to the writer thread without a copy unless a held copy still
          // needs them here.
          await this.writer.store(
            { ids: accepted.map((p) => p.id), fields: accepted.map((p) => p.field), body: inline },
            !holding,
          );
        }
      } else {
        // The received file carries one recipient's field already (Incoming.spool): it is
        // that recipient's copy, moved into new/; the other copies are written from it
        // with their own field in place of that one.
        const st = sink.streamed;
        if (st !== undefined && accepted.some((p) => p.ins.at !== st.at)) {
          throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'received file: trace block moved');
        }
        const own = st && accepted.find((p) => p.field === st.field);
        // Held copies are links to a file, and the moved copy is renamed: both on disk first.
        await sink.close(holding || own !== undefined);
        // (Only a message that went to a file comes here: without the journal every one does.)
        const from = sink.path;
        const skip = st?.length ?? 0;
        for (const p of accepted) if (p !== own) await this.place(from, sink.head, p, skip);
        if (holding && st !== undefined) {
          // A held message is kept as sent: the received file without the field.
          heldFrom = partName(this.o.maildir);
          await this.place(
            from,
            sink.head,
            { ins: { at: st.at, line: new Uint8Array(0) } },
            skip,
            heldFrom,
          );
        }
        if (own !== undefined) await rename(sink.path, join(this.dir('new'), `${own.id}.nmtp`));
        // One fsync of new/ for every recipient's copy (and other sessions' meanwhile).
        if (accepted.length > 0) await fsyncDirShared(this.dir('new'));
      }
      const hold = this.holder(inline ?? heldFrom ?? sink.path, announced);
      const answers: FinalAnswer[] = [];
      for (const p of plans) {
        if (p.kind === 'accept') answers.push({ kind: 'accepted', rcpt: p.rcpt, id: p.id });
        else if (p.kind === 'hold') answers.push(await hold(a.domain, p.rcpt, client));
        else answers.push({ kind: 'rejected', rcpt: p.rcpt, enhanced: '5.4.6', text: p.code });
      }
      if (a.cookie !== undefined) await this.settleCookie(a.cookie, answers[0]);
      return answers;
    } finally {
      await sink.close(false).catch(ignore);
      if (sink.inline === undefined) await unlink(sink.path).catch(ignore);
      if (heldFrom !== undefined) await unlink(heldFrom).catch(ignore);
    }
  }

  /**
   * What becomes of each recipient of a checked full message: a copy with its Received
   * field, held (policy: defer or preview, not on a cookie), or refused when the field
   * cannot be added.
   */
  private plan(
    rcpts: readonly string[],
    sink: Incoming,
    client: Identification,
    fresh: boolean,
  ): Plan[] {
    const p = sink.policy;
    // Preview recipients in a transaction that sent the full message are held on it.
    const held = (r: string): boolean =>
      p.defer?.includes(r) === true || (p.preview !== undefined && Object.hasOwn(p.preview, r));
    return rcpts.map((rcpt): Plan => {
      // Every field names the time the message arrived (its DATA).
      const field = this.receivedField(rcpt, client, sink.receivedAt);
      let ins: TraceInsertion;
      try {
        // Checked for held recipients too: their copy gets the field when approved.
        ins = withReceived(sink.head, field, sink.size);
      } catch (e) {
        if (!(e instanceof NmtpError)) throw e;
        // "A receiver that cannot add its Received field within the limits of §10.8 MUST
        // NOT accept the recipient" (§60.8.4): the trace block is full — the message has
        // been through too many hands (as RFC 5321's hop count).
        return { kind: 'refuse', rcpt, code: e.code };
      }
      if (fresh && held(rcpt)) return { kind: 'hold', rcpt };
      return { kind: 'accept', rcpt, field, ins, id: randomId(12) };
    });
  }

  async discard(sink: MessageSink): Promise<void> {
    if (sink instanceof Incoming) await sink.discard();
  }

  private dir(d: 'new' | 'held'): string {
    return join(this.o.maildir, d);
  }

  /**
   * Writes a recipient's copy of the file `from`, whose first octets are `head`, with its
   * Received field into new/ as `<id>.nmtp`: through tmp/, fsync'd, then renamed. Durable once new/ is fsync'd (the caller's `fsyncDirShared`). With `target`,
   * the copy is written there (fsync'd) and left for the caller.
   */
  private async place(
    from: string,
    head: Uint8Array,
    p: { id?: string; ins: TraceInsertion },
    skip = 0,
    target?: string,
  ): Promise<void> {
    const part = target ?? partName(this.o.maildir);
    const { at, line } = p.ins;
    // `skip`: octets of another recipient's field that `from` holds at `at` (left out).
    await writeSynced(part, async (h) => {
      await h.writeFile(head.subarray(0, at));
      await h.writeFile(line);
      await copyFrom(from, at + skip, h);
    });
    if (target !== undefined) return;
    try {
      await rename(part, join(this.dir('new'), `${p.id!}.nmtp`));
    } catch (e) {
      await unlink(part).catch(ignore);
      throw e;
    }
  }

  /** The value of a recipient's Received field (§60.8.4), with the hook's verdict. */
  private receivedField(rcpt: string, client: Identification, at: number): string {
    const r = client.reputation;
    return formatReceived({
      rcpt,
      at,
      domain: client.domain,
      ip: client.ip,
      proof: client.proof,
      csv: client.csv,
      ...(r === undefined ? {} : { verdict: r.verdict }),
      ...(r?.note === undefined ? {} : { note: r.note }),
    });
  }

  /**
   * The full message arrived on a cookie that wanted it: the cookie takes the answer (so
   * a later STATUS repeats it) and the held preview goes.
   */
  private async settleCookie(cookie: string, answer: FinalAnswer | undefined): Promise<void> {
    const c = await this.cookies.get(cookie);
    if (c === undefined || answer === undefined) return;
    if (answer.kind === 'accepted') {
      await this.cookies.put({ ...c, state: 'accepted', id: answer.id });
    } else if (answer.kind === 'rejected') {
      await this.cookies.put({
        ...c,
        state: 'rejected',
        ...(answer.enhanced === undefined ? {} : { enhanced: answer.enhanced }),
        ...(answer.text === undefined ? {} : { text: answer.text }),
      });
    } else return;
    const held = heldPath(this.o.maildir, c.ref);
    if (held !== undefined) await unlink(held).catch(ignore);
  }

  /**
   * `defer` for several recipients of one message: octets are written (and fsync'd) once,
   * and every further recipient's held file is a link to the first one, as with a file.
   */
  private holder(
    from: string | Uint8Array,
    announced?: StoredCookie['announced'],
  ): (owner: string, rcpt: string, client: Identification, view?: View) => Promise<FinalAnswer> {
    let src = from;
    let sha256: string | undefined;
    return async (owner, rcpt, client, view) => {
      // A preview: what the later views on the cookie must reproduce (§60.10.6).
      if (view !== undefined && view !== 'full' && sha256 === undefined) {
        sha256 = viewSha256(typeof src === 'string' ? await readFile(src) : src);
      }
      const bound = {
        ...(announced === undefined ? {} : { announced }),
        ...(sha256 === undefined || view === undefined ? {} : { held: { view, sha256 } }),
      };
      const answer = await this.defer(owner, rcpt, src, client, view, bound);
      if (typeof src !== 'string' && answer.kind === 'deferred') {
        src = join(this.o.maildir, 'held', `${answer.cookie}.nmtp`);
      }
      return answer;
    };
  }

  /**
   * Holds `from` (a fsync'd file, or the octets) for `rcpt` under a new cookie; `view`
   * names a preview (not the full message).
   */
  private async defer(
    owner: string,
    rcpt: string,
    from: string | Uint8Array,
    client: Identification,
    view?: View,
    bound: Pick<StoredCookie, 'announced' | 'held'> = {},
  ): Promise<FinalAnswer> {
    // "Cookies … MUST be unguessable (at least 128 bits of randomness)" (§60.10.6).
    const cookie = randomId(16);
    const held = join(this.o.maildir, 'held', `${cookie}.nmtp`);
    if (typeof from === 'string') await link(from, held);
    else await writeSynced(held, from);
    await fsyncDirShared(this.dir('held'));
    const now = this.now();
    const c: StoredCookie = {
      cookie,
      owner,
      rcpt,
      state: 'deferred',
      issued: now,
      expires: now + (this.o.cookieLifetime ?? 7 * 86400),
      min: this.o.minPoll ?? 60,
      max: this.o.maxPoll ?? 3600,
      // Relative to the maildir, which may move (heldPath reads it back).
      ref: heldRef(cookie),
      client,
      // In state "deferred", `view` says the held octets are only that preview.
      ...(view === undefined || view === 'full' ? {} : { view }),
      ...bound,
    };
    await this.cookies.put(c);
    return { kind: 'deferred', rcpt, cookie, min: c.min, max: c.max, expires: c.expires };
  }

  /**
   * The cookie if it exists, is not expired and belongs to `domain`: "a cookie issued to
   * one client domain MUST be answered, for any other domain, exactly like an unknown
   * cookie" (§60.10.6).
   */
  private async owned(cookie: string, domain: string): Promise<StoredCookie | undefined> {
    const c = await this.cookies.get(cookie);
    if (c === undefined || c.owner !== domain || c.expires < this.now()) return undefined;
    return c;
  }

  async cookie(a: {
    op: 'status' | 'giveup';
    domain: string;
    cookie: string;
  }): Promise<CookieState> {
    let c = await this.owned(a.cookie, a.domain);
    if (c === undefined) return { kind: 'unknown' };
    if (a.op === 'giveup' && c.state !== 'accepted' && c.state !== 'rejected') {
      // "the receiver MAY discard what it holds for that recipient" (§60.10.6).
      c = { ...c, state: 'given-up' };
      await this.cookies.put(c);
      const held = heldPath(this.o.maildir, c.ref);
      if (held !== undefined) await unlink(held).catch(() => undefined);
    }
    return cookieState(c);
  }

  /** The person's decision on a deferred recipient (`nmtp mailbox approve|reject`). */
  async decideCookie(cookie: string, decision: 'approve' | 'reject'): Promise<StoredCookie> {
    const c = await this.cookies.get(cookie);
    if (c === undefined) throw new NmtpError('NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN', cookie);
    if (c.state !== 'deferred') {
      throw new NmtpError('NMTP_ERR_TRANSPORT_OUT_OF_ORDER', `cookie is ${c.state}`);
    }
    let next: StoredCookie;
    if (decision === 'approve' && c.view !== undefined && c.view !== 'full') {
      // Approved on a preview: "a request for a bigger view … the sender then sends it on
      // the same cookie" (issue 4, §60.10.6). The preview stays held until it arrives.
      next = { ...c, state: 'want-view', view: 'full' };
      await this.cookies.put(next);
      return next;
    } else if (decision === 'approve') {
      const held = heldPath(this.o.maildir, c.ref);
      if (held === undefined) throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'no held message');
      // The store keeps identification as plain strings; it was written from an Identification.
      const client = (c.client as Identification | undefined) ?? {
        domain: c.owner,
        ip: '',
        proof: 'pass',
        csv: 'none',
      };
      // The copy is dated when the message arrived (the cookie's issue), not approved.
      const field = this.receivedField(c.rcpt, client, c.issued);
      const { head, size } = await readHead(held);
      const id = randomId(12);
      await this.place(held, head, { id, ins: withReceived(head, field, size) });
      await fsyncDirShared(this.dir('new'));
      next = { ...c, state: 'accepted', id };
    } else {
      next = { ...c, state: 'rejected', enhanced: '5.7.1', text: 'refused by the recipient' };
    }
    await this.cookies.put(next);
    const held = heldPath(this.o.maildir, c.ref);
    if (held !== undefined) await unlink(held).catch(() => undefined);
    return next;
  }
}

function cookieState(c: StoredCookie): CookieState {
  switch (c.state) {
    case 'deferred':
      return { kind: 'deferred', rcpt: c.rcpt, min: c.min, max: c.max, expires: c.expires };
    case 'want-view':
      return { kind: 'want-view', rcpt: c.rcpt, view: c.view ?? 'full' };
    case 'accepted':
      return { kind: 'accepted', rcpt: c.rcpt, id: c.id ?? '' };
    case 'rejected':
      return {
        kind: 'rejected',
        rcpt: c.rcpt,
        ...(c.enhanced === undefined ? {} : { enhanced: c.enhanced }),
        ...(c.text === undefined ? {} : { text: c.text }),
      };
    case 'given-up':
      return { kind: 'given-up', rcpt: c.rcpt };
  }
}
