/**
 * The reference submission backend (docs/protocol.md §60.11, §60.16): one service, one job
 * each, as in Postfix — this backend checks logins against the user store, spools what a
 * client sends, completes and signs it with the domain key, and hands it to the outgoing
 * queue (src/queue/), which delivers it and keeps the per-recipient status STATUS reports.
 *
 * SEND: the message's From must be the authenticated user; Date and Message-Id are added
 * when missing; the domain key signs it for exactly the RCPT list; the queue stores it
 * durably; only then is the id returned ("accepted means stored"). SIGN: the same
 * completion and signature, nothing queued. CERTIFY: a certificate (§40.6) for a key of the
 * user's, which AUTH KEY then accepts until the certificate expires.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAddress, processDomain, validateDisplayName } from '../core/address/index.ts';
import { NmtpError } from '../core/errors/index.ts';
import {
  END,
  FrameDecoder,
  NEED_MORE,
  appendTraceField,
  fieldNameEquals,
  formatDate,
  getField,
  getFields,
  parseAddressList,
  resolveLimits,
  type Field,
  type FrameLimits,
} from '../core/frame/index.ts';
import { issueCertificate, isCertificateRevoked, type TxtResolver } from '../core/keys/index.ts';
import { signContent, toBase64url, type SigningKey } from '../core/sign/index.ts';
import type { RecipientStatus } from '../core/session/index.ts';
import type { Queue } from '../queue/queue.ts';
import { canonicalUser, type UserStore } from '../store/users.ts';
import type { SubmissionBackend } from './submission-host.ts';
import type { MessageSink } from './transfer-host.ts';

export interface ReferenceBackendOptions {
  readonly users: UserStore;
  readonly queue: Queue;
  /** The signing domain (d=), its key's selector (s=) and the key. */
  readonly domain: string;
  readonly selector: string;
  readonly key: SigningKey;
  /** Unix milliseconds now; default Date.now. */
  readonly now?: () => number;
  /** n fresh random octets; default crypto.randomBytes. */
  readonly random?: (n: number) => Uint8Array;
  /**
   * Seconds a signature is valid (x = t + this). Default 7 days ("Signers SHOULD use a short
   * validity (the worked example uses 7 days): long enough for queues and retries", §30.3);
   * it must outlast the queue's maximum age, or late deliveries would carry expired
   * signatures.
   */
  readonly signatureLifetime?: number;
  /** Certificate validity when CERTIFY names no days= (default 30). */
  readonly certificateDays?: number;
  /** When given, AUTH KEY with a certified key also checks its revocation record (§40.6). */
  readonly resolveTxt?: TxtResolver;
  readonly limits?: Partial<FrameLimits>;
}

/** Where the root part lies, from the streaming decoder (offsets in the message). */
interface Layout {
  readonly rootFields: readonly Field[];
  /** The root part's first octet (just after the trace block's empty line). */
  readonly rootOffset: number;
  /** The root part's first body octet (just after its header block's empty line). */
  readonly bodyOffset: number;
  readonly total: number;
}

/**
 * A message being received: chunks go to a spool file as they arrive, and through the
 * streaming frame decoder with full validation (§30.12), so the message is checked and
 * located without ever being held in memory.
 */
class Spool implements MessageSink {
  private readonly decoder: FrameDecoder;
  private root: { fields: readonly Field[]; offset: number; bodyOffset: number } | undefined;
  private total: number | undefined;
  private bad: unknown;
  private closed = false;

  constructor(
    readonly path: string,
    private readonly file: FileHandle,
    limits: Partial<FrameLimits> | undefined,
  ) {
    this.decoder = new FrameDecoder({
      ...(limits === undefined ? {} : { limits }),
      validateAddress: (address, displayName) => {
        parseAddress(address, { mode: 'wire' });
        if (displayName !== undefined) validateDisplayName(displayName);
      },
    });
  }

  async write(bytes: Uint8Array): Promise<void> {
    await this.file.write(bytes);
    // The host hands views of its receive buffers: the decoder gets its own copy.
    this.feed(() => this.decoder.push(Uint8Array.from(bytes)));
  }

  private feed(f: () => void): void {
    if (this.bad !== undefined) return;
    try {
      f();
      for (let ev = this.decoder.next(); ev !== NEED_MORE && ev !== END; ev = this.decoder.next()) {
        if (ev.type === 'part-start' && ev.depth === 0) {
          this.root = { fields: ev.fields, offset: ev.offset, bodyOffset: ev.bodyOffset };
        } else if (ev.type === 'end') this.total = ev.totalBytes;
      }
    } catch (e) {
      this.bad = e;
    }
  }

  /** Ends the message: flushed and closed; its layout, or the decoding error thrown. */
  async finish(): Promise<Layout> {
    this.feed(() => this.decoder.finish());
    await this.close();
    if (this.bad !== undefined) throw this.bad;
    if (this.root === undefined || this.total === undefined) {
      throw new NmtpError('NMTP_ERR_FRAME_TRUNCATED', 'the message ended early');
    }
    return {
      rootFields: this.root.fields,
      rootOffset: this.root.offset,
      bodyOffset: this.root.bodyOffset,
      total: this.total,
    };
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.file.close();
  }

  async discard(): Promise<void> {
    await this.close().catch(() => undefined);
    await unlink(this.path).catch(() => undefined);
  }
}

/** Reads [from, to) of an open file in pieces of at most 1 MiB, each a fresh buffer. */
async function* range(file: FileHandle, from: number, to: number): AsyncIterable<Uint8Array> {
  for (let at = from; at < to;) {
    const buf = new Uint8Array(Math.min(1 << 20, to - at));
    const { bytesRead } = await file.read(buf, 0, buf.length, at);
    if (bytesRead === 0) throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'spool file truncated');
    yield buf.subarray(0, bytesRead);
    at += bytesRead;
  }
}

/**
 * The code of a From that is not the authenticated user: "refused `550 5.7.1
 * err=NMTP_ERR_TRANSPORT_FROM_MISMATCH`" (§60.11.3). Permanent, so the host answers it with
 * its own code rather than as a local failure.
 */
export const FROM_MISMATCH = 'NMTP_ERR_TRANSPORT_FROM_MISMATCH' as const;

export class ReferenceSubmissionBackend implements SubmissionBackend {
  private readonly domain: string;

  constructor(private readonly o: ReferenceBackendOptions) {
    this.domain = processDomain(o.domain).ascii;
    const lifetime = o.signatureLifetime ?? 7 * 86400;
    if (lifetime <= o.queue.policy.maxAge) {
      throw new NmtpError(
        'NMTP_ERR_CONFIG',
        'the signature lifetime must be longer than the queue maximum age',
      );
    }
  }

  private nowMs(): number {
    return (this.o.now ?? Date.now)();
  }

  private random(n: number): Uint8Array {
    return (this.o.random ?? randomBytes)(n);
  }

  async authenticate(a: Parameters<SubmissionBackend['authenticate']>[0]): Promise<boolean> {
    if (a.mechanism === 'PLAIN') return this.o.users.checkPassword(a.user, a.password);
    const now = Math.floor(this.nowMs() / 1000);
    const found = await this.o.users.findKey(a.user, a.publicKey, now);
    if (found === undefined) return false;
    if (found.kind === 'certified' && this.o.resolveTxt !== undefined) {
      // "certified by its domain and unrevoked" (§60.11.2); a DNS failure refuses for now.
      const revoked = await isCertificateRevoked(this.o.resolveTxt, found.id, this.domain);
      return revoked === false;
    }
    return true;
  }

  async open(): Promise<MessageSink> {
    const { path, handle } = await this.o.queue.store.spool();
    return new Spool(path, handle, this.o.limits);
  }

  async discard(m: MessageSink): Promise<void> {
    if (m instanceof Spool) await m.discard();
  }

  /**
   * The From rule and the fields the server owes the message (§60.11.3 steps 2 and 3):
   * "The server adds Date, Message-Id (and any field its policy requires)". Returns the
   * fields to append to the root part's header block.
   */
  complete(rootFields: readonly Field[], user: string): Field[] {
    const me = canonicalUser(user);
    // "The root part's From MUST name exactly one mailbox, and its address MUST be the
    // authenticated user; a Sender field, if present, MUST name only the user too" (§60.11.3).
    const from = getField(rootFields, 'From');
    const authors = [...getFields(rootFields, 'From'), ...getFields(rootFields, 'Sender')];
    const ok =
      me !== undefined &&
      from !== undefined &&
      parseAddressList(from).length === 1 &&
      authors.flatMap((v) => parseAddressList(v)).every((mb) => canonicalUser(mb.address) === me);
    if (!ok) throw new NmtpError(FROM_MISMATCH, `From must be the authenticated user ${user}`);
    const add: Field[] = [];
    if (!rootFields.some((f) => fieldNameEquals(f.name, 'Date'))) {
      add.push({ name: 'Date', value: formatDate(Math.floor(this.nowMs() / 1000) * 1000) });
    }
    if (!rootFields.some((f) => fieldNameEquals(f.name, 'Message-Id'))) {
      // "the unique part at least 128 bits of fresh randomness" (§60.11.3): 144 here.
      add.push({ name: 'Message-Id', value: `<${toBase64url(this.random(18))}@${this.domain}>` });
    }
    return add;
  }

  /**
   * Completes and signs the spooled message into a new file beside it, streaming: the
   * content digest is computed over the completed root part while reading the spool, the
   * Signature is appended to the trace block (§30.12), and the result is written as
   * trace + root header + added fields + the rest. Returns the new file's path (fsync'd).
   */
  private async seal(
    spool: Spool,
    user: string,
    recipients: readonly string[] | 'to-cc',
  ): Promise<string> {
    try {
      return await this.sealSpooled(spool, await spool.finish(), user, recipients);
    } finally {
      await unlink(spool.path).catch(() => undefined);
    }
  }

  private async sealSpooled(
    spool: Spool,
    layout: Layout,
    user: string,
    recipients: readonly string[] | 'to-cc',
  ): Promise<string> {
    const L = resolveLimits(this.o.limits);
    const add = this.complete(layout.rootFields, user);
    const added = new TextEncoder().encode(add.map((f) => `${f.name}: ${f.value}\r\n`).join(''));
    // The completed header block must still meet §10.8 (it is checked, not assumed).
    if (layout.rootFields.length + add.length > L.maxFields) {
      throw new NmtpError('NMTP_ERR_FRAME_TOO_MANY_FIELDS', 'no room for Date and Message-Id');
    }
    if (layout.bodyOffset - layout.rootOffset + added.length > L.maxHeaderBytes) {
      throw new NmtpError('NMTP_ERR_FRAME_HEADER_TOO_LARGE', 'no room for Date and Message-Id');
    }
    // Fields go just before the empty line that ends the root header block.
    const insertAt = layout.bodyOffset - 2;
    const rcpts =
      recipients === 'to-cc'
        ? [...getFields(layout.rootFields, 'To'), ...getFields(layout.rootFields, 'Cc')]
            .flatMap((v) => parseAddressList(v))
            .map((mb) => mb.address)
        : recipients;
    if (rcpts.length === 0) {
      throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', 'a signature binds at least one recipient');
    }
    const src = await open(spool.path, 'r');
    const out = join(this.o.queue.spoolDir, `${toBase64url(randomBytes(12))}.sealed`);
    let dst: FileHandle | undefined;
    try {
      // The content digest (§10.7) of the completed root part.
      const h = createHash('sha256');
      for await (const b of range(src, layout.rootOffset, insertAt)) h.update(b);
      h.update(added);
      for await (const b of range(src, insertAt, layout.total)) h.update(b);
      const t = Math.floor(this.nowMs() / 1000);
      const value = signContent({
        digest: new Uint8Array(h.digest()),
        domain: this.domain,
        selector: this.o.selector,
        signedAt: t,
        expiresAt: t + (this.o.signatureLifetime ?? 7 * 86400),
        recipients: [...new Set(rcpts.map((r) => parseAddress(r).canonical))],
        salt: this.random(16),
        key: this.o.key,
      });
      // The version line and trace block are small (§10.8): appended in memory.
      const preamble = new Uint8Array(layout.rootOffset);
      await src.read(preamble, 0, preamble.length, 0);
      const head = appendTraceField(preamble, { name: 'Signature', value }, this.o.limits);
      if (head.length - preamble.length + added.length + layout.total > L.maxTotalBytes) {
        throw new NmtpError('NMTP_ERR_FRAME_TOO_LARGE', 'no room for the signature');
      }
      dst = await open(out, 'wx', 0o600);
      await dst.write(head);
      for await (const b of range(src, layout.rootOffset, insertAt)) await dst.write(b);
      await dst.write(added);
      for await (const b of range(src, insertAt, layout.total)) await dst.write(b);
      await dst.sync();
      return out;
    } catch (e) {
      await unlink(out).catch(() => undefined);
      throw e;
    } finally {
      await dst?.close();
      await src.close();
    }
  }

  async submit(a: Parameters<SubmissionBackend['submit']>[0], m: MessageSink): Promise<string> {
    // Signed for exactly the RCPT list ("recipients bound to the RCPT list", §60.11.3).
    const sealed = await this.seal(spool(m), a.user, a.recipients);
    const id = toBase64url(this.random(15));
    try {
      // Durable before the id is returned: "accepted means stored".
      await this.o.queue.addFile({
        id,
        user: canonicalUser(a.user) ?? a.user,
        recipients: a.recipients,
        file: sealed,
      });
    } finally {
      await unlink(sealed).catch(() => undefined);
    }
    return id;
  }

  async sign(a: Parameters<SubmissionBackend['sign']>[0], m: MessageSink): Promise<Uint8Array> {
    // SIGN has no RCPT list: the signature binds the message's own To and Cc mailboxes.
    const sealed = await this.seal(spool(m), a.user, 'to-cc');
    try {
      // A payload reply: the octets go back to the client (bounded by the size limit).
      return new Uint8Array(await readFile(sealed));
    } finally {
      await unlink(sealed).catch(() => undefined);
    }
  }

  async certify(a: Parameters<SubmissionBackend['certify']>[0]): Promise<string> {
    const user = canonicalUser(a.user);
    if (user === undefined) throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', 'no user');
    const nb = Math.floor(this.nowMs() / 1000);
    const na = nb + (a.days ?? this.o.certificateDays ?? 30) * 86400;
    const id = Buffer.from(this.random(16)).toString('hex');
    const value = issueCertificate(
      {
        domain: this.domain,
        selector: this.o.selector,
        id,
        user,
        userKey: a.publicKey,
        notBefore: nb,
        notAfter: na,
      },
      this.o.key,
    );
    await this.o.users.addCertified(user, { key: toBase64url(a.publicKey), id, notAfter: na });
    return value;
  }

  async status(
    a: Parameters<SubmissionBackend['status']>[0],
  ): Promise<readonly RecipientStatus[] | undefined> {
    const user = canonicalUser(a.user);
    return user === undefined ? undefined : this.o.queue.status(a.id, user);
  }
}

function spool(m: MessageSink): Spool {
  if (!(m instanceof Spool)) throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'not our spool');
  return m;
}
