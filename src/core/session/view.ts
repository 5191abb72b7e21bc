/**
 * What a receiver checks of a view before it holds or shows it (docs/protocol.md §60.10.4,
 * §60.10.6): that the octets are the view of the message the DATA announced, as the view
 * table defines it, and — on a cookie — that they reproduce every view the receiver saw
 * earlier of that message. Pure and incremental: push the chunks' octets as they arrive,
 * then `finish()`.
 *
 * The reason: a preview is what a person approves. Without these checks a sender could
 * show a harmless headers view, get it approved, and deliver another message on the cookie
 * (issue 12). The content digest binds the root part of the full message, the `signers`
 * parameter its Signature fields, and the octet-for-octet comparison binds every earlier
 * view to it.
 */
import { createHash, type Hash } from 'node:crypto';
import { NmtpError } from '../errors/index.ts';
import {
  END,
  FrameDecoder,
  NEED_MORE,
  fieldNameEquals,
  type FrameEvent,
  type Field,
  type PartStartEvent,
} from '../frame/index.ts';
import { parseSignatureField, toBase64url } from '../sign/index.ts';
import type { View } from './decider.ts';

/** What a DATA announces about a message (§60.10.4). */
export interface Announcement {
  readonly size: number;
  /** Content digest, base64url (§10.7). */
  readonly digest: string;
  readonly signers: readonly string[];
}

/** A view the receiver holds: its kind and the SHA-256 (base64url) of its octets. */
export interface HeldView {
  readonly view: View;
  readonly sha256: string;
}

/** Views from the smallest to the biggest: each one's octets determine every smaller one. */
const ORDER: readonly View[] = ['digest', 'signers', 'headers', 'text', 'full'];
export const viewRank = (v: View): number => ORDER.indexOf(v);

/** The SHA-256 (base64url) of a view's octets, as `HeldView` keeps it. */
export function viewSha256(octets: Uint8Array | readonly Uint8Array[]): string {
  const h = createHash('sha256');
  for (const p of octets instanceof Uint8Array ? [octets] : octets) h.update(p);
  return toBase64url(h.digest());
}

/**
 * "the d= domains, or u= users, of the message's signatures" (§60.4): compared as sets, so
 * the order and repetition of the list do not matter.
 */
export function sameSigners(a: readonly string[], b: readonly string[]): boolean {
  const x = new Set(a);
  const y = new Set(b);
  return x.size === y.size && [...x].every((s) => y.has(s));
}

/** `a` and `b` announce the same message. */
export function sameAnnouncement(a: Announcement, b: Announcement): boolean {
  return a.size === b.size && a.digest === b.digest && sameSigners(a.signers, b.signers);
}

export type ViewVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

const enc = new TextEncoder();
const VERSION = enc.encode('NMTP/1\r\n');
const CRLF = enc.encode('\r\n');
const SENTINEL = enc.encode('\r\n\r\n');
/** A root part appended to a `signers` view so the decoder shows where the trace block ends. */
const EMPTY_ROOT = enc.encode('Content-Length: 0\r\n\r\n\r\n');
/** A version line and an empty trace block: what turns a text view's part into a message. */
const EMPTY_HEAD = enc.encode('NMTP/1\r\n\r\n');

const fieldLine = (f: Field): Uint8Array => enc.encode(`${f.name}: ${f.value}\r\n`);
const isTextPlain = (e: PartStartEvent): boolean =>
  e.kind === 'leaf' &&
  e.contentType.type.toLowerCase() === 'text' &&
  e.contentType.subtype.toLowerCase() === 'plain';

class Invalid extends Error {}
const invalid = (reason: string): never => {
  throw new Invalid(reason);
};

/**
 * Checks the octets of `view` against `announced` and, when given, a view held earlier of
 * the same cookie (smaller than or equal to `view`).
 *
 * - `digest`: no octets.
 * - `signers`: the version line and a complete trace block, nothing more.
 * - `headers`: that, then the root part's complete header block, nothing more.
 * - `text`: that, then the first text/plain leaf part complete — the full message when
 *   the root is that leaf; nothing more when the root is a leaf of another type, or a
 *   container with no text/plain leaf.
 * - `full`: only the trace block is checked here (the receiver decodes the whole message
 *   and checks its digest anyway, §60.10.4), unless an earlier view must be reproduced.
 * - In every view, the identities of the parseable Signature fields are the announced
 *   signers; in a preview each of those signatures carries the announced digest (h=).
 */
export class ViewChecker {
  private readonly d1 = new FrameDecoder({});
  /** The text view's part after the root header block, decoded as a message of its own. */
  private d2: FrameDecoder | undefined;
  private received = 0;
  private readonly signers: string[] = [];
  private root: PartStartEvent | undefined;
  /** Decoding is over for d1 (its remaining events do not matter). */
  private d1Done = false;
  private ended = false;
  private failure: string | undefined;
  /** The earlier view rebuilt from this one's octets, hashed as it goes. */
  private readonly rebuilt: Hash | undefined;
  /** The rebuilt earlier view is complete (nothing more of it follows). */
  private rebuiltDone = false;
  /** Rebuilding a text view: inside the first text/plain leaf (its path), then past it. */
  private textPart: readonly number[] | 'done' | undefined;

  constructor(
    private readonly view: View,
    private readonly announced: Announcement,
    private readonly earlier?: HeldView,
  ) {
    if (earlier !== undefined && viewRank(earlier.view) > viewRank(view)) {
      // Asked for a smaller view than one held: it cannot rebuild it; compare nothing.
      this.earlier = undefined;
    }
    const e = this.earlier;
    if (e !== undefined && e.view !== 'digest') {
      this.rebuilt = createHash('sha256');
      // The same view again: its octets are compared as they are.
      if (e.view !== view) this.rebuilt.update(VERSION);
    }
  }

  private get sameView(): boolean {
    return this.earlier?.view === this.view;
  }

  push(bytes: Uint8Array): void {
    if (this.failure !== undefined || bytes.length === 0) return;
    const start = this.received;
    this.received += bytes.length;
    if (this.sameView) this.rebuilt?.update(bytes);
    try {
      if (this.view === 'digest') invalid('the digest view carries no octets');
      if (this.d2 !== undefined) {
        this.feed2(bytes);
        return;
      }
      if (this.d1Done) return;
      this.d1.push(bytes);
      this.drain1();
      if (this.root !== undefined && this.d2 === undefined && this.splitsAtRoot()) {
        // The rest of this chunk, after the root header block, is the text view's part.
        this.startPart(bytes.subarray(this.root.bodyOffset - start));
      }
    } catch (e) {
      this.fail(e);
    }
  }

  finish(): ViewVerdict {
    if (this.failure === undefined) {
      try {
        this.end();
      } catch (e) {
        this.fail(e);
      }
    }
    return this.failure === undefined ? { ok: true } : { ok: false, reason: this.failure };
  }

  private fail(e: unknown): void {
    if (e instanceof Invalid) this.failure = e.message;
    else if (!(e instanceof NmtpError)) throw e;
    else if (this.view === 'full') {
      // A full view that does not decode is the receiver's to refuse, recipient by
      // recipient, with its own decoding (§60.10.4): nothing more to check here.
      this.undecodable = true;
      this.d1Done = true;
    } else this.failure = `${e.code}: ${e.message}`;
  }

  /** A full view that does not decode (left to the receiver's own check). */
  private undecodable = false;

  /** A text view whose root is not a text/plain leaf: its part (if any) is decoded apart. */
  private splitsAtRoot(): boolean {
    return this.view === 'text' && !isTextPlain(this.root!);
  }

  private startPart(rest: Uint8Array): void {
    this.d1Done = true;
    this.d2 = new FrameDecoder({});
    this.d2.push(EMPTY_HEAD);
    this.feed2(rest);
  }

  /** Octets of the text view's part (after the root header block). */
  private partBytes = 0;

  private feed2(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.root!.kind === 'leaf') {
      invalid('a text view of a message whose root is not text/plain is the headers view');
    }
    this.partBytes += bytes.length;
    this.d2!.push(bytes);
    this.drain2();
  }

  private drain2(): void {
    for (let ev = this.d2!.next(); ev !== NEED_MORE && ev !== END; ev = this.d2!.next()) {
      if (ev.type === 'part-start' && ev.depth === 0 && !isTextPlain(ev)) {
        invalid('the part after the root header block is not a text/plain leaf');
      }
    }
  }

  private drain1(): void {
    for (let ev = this.d1.next(); ev !== NEED_MORE && ev !== END; ev = this.d1.next()) {
      this.onEvent(ev);
      if (this.d1Done) return;
    }
  }

  private onEvent(ev: FrameEvent): void {
    const r = this.sameView ? undefined : this.rebuilt;
    switch (ev.type) {
      case 'trace-field':
        if (r !== undefined && !this.rebuiltDone) r.update(fieldLine(ev));
        if (fieldNameEquals(ev.name, 'Signature')) this.onSignature(ev.value);
        return;
      case 'part-start':
        if (ev.depth === 0) return this.onRoot(ev, r);
        if (
          r !== undefined &&
          !this.rebuiltDone &&
          this.textPart === undefined &&
          isTextPlain(ev)
        ) {
          this.textPart = ev.path;
          for (const f of ev.fields) r.update(fieldLine(f));
          r.update(CRLF);
        }
        return;
      case 'body':
        if (r !== undefined && !this.rebuiltDone && this.inTextPart(ev.path)) r.update(ev.bytes);
        return;
      case 'part-end':
        if (r !== undefined && !this.rebuiltDone && this.inTextPart(ev.path)) {
          r.update(SENTINEL);
          this.textPart = 'done';
          this.rebuiltDone = true;
        }
        return;
      case 'end':
        this.ended = true;
        this.digestOfWhole = toBase64url(ev.contentDigest);
        return;
      default:
        return;
    }
  }

  private inTextPart(path: readonly number[]): boolean {
    const t = this.textPart;
    return Array.isArray(t) && t.length === path.length && t.every((x, i) => x === path[i]);
  }

  private onRoot(ev: PartStartEvent, r: Hash | undefined): void {
    this.root = ev;
    if (r !== undefined && !this.rebuiltDone) {
      r.update(CRLF); // the trace block's empty line
      if (this.earlier!.view === 'signers') this.rebuiltDone = true;
      else {
        for (const f of ev.fields) r.update(fieldLine(f));
        r.update(CRLF);
        if (this.earlier!.view === 'headers') this.rebuiltDone = true;
        else if (isTextPlain(ev)) this.textPart = ev.path;
        else if (ev.kind === 'leaf') this.rebuiltDone = true; // no text/plain leaf at all
      }
    }
    // Everything after the root header block: a full view checks the rest itself (the
    // receiver decodes it whole, §60.10.4) unless an earlier text view is rebuilt from it.
    const needRest =
      (this.view === 'full' && this.rebuilt !== undefined && !this.rebuiltDone) ||
      (this.view === 'text' && isTextPlain(ev));
    if (!needRest) this.d1Done = true;
  }

  private onSignature(value: string): void {
    let s;
    try {
      s = parseSignatureField(value);
    } catch {
      // An unparseable signature names no signer (a verifier reports it, §30.6).
      return;
    }
    const id = s.user ?? s.domain;
    if (!this.signers.includes(id)) this.signers.push(id);
    // "all Signature and Certificate fields, verifiable against the announced digest"
    // (§60.10.4): a preview's signatures sign the announced message or none.
    if (this.view !== 'full' && toBase64url(s.digest) !== this.announced.digest) {
      invalid(`a signature by ${id} is for another content digest than announced`);
    }
  }

  private end(): void {
    if (this.undecodable) return;
    const size = this.announced.size;
    if (this.received > size) invalid(`${this.received} octets, more than size=${size}`);
    if (this.view === 'digest') return;
    switch (this.view) {
      case 'signers':
        if (this.root !== undefined) invalid('the signers view ends with the trace block');
        this.d1.push(EMPTY_ROOT);
        this.drain1();
        if (this.root === undefined || this.root.offset !== this.received) {
          invalid('the signers view is the version line and a complete trace block');
        }
        break;
      case 'headers':
        if (this.root === undefined || this.root.bodyOffset !== this.received) {
          invalid("the headers view ends with the root part's header block");
        }
        break;
      case 'text':
        if (this.root === undefined) invalid("the text view holds the root part's header block");
        if (this.d2 !== undefined) {
          // No part: the message has no text/plain leaf (the text view is the headers view).
          if (this.partBytes > 0) {
            this.d2.finish();
            this.drain2();
          }
        } else if (isTextPlain(this.root!)) {
          // The root is the text/plain leaf: the text view is the whole message.
          this.d1.finish();
          this.drain1();
          if (!this.ended) invalid('the message ended before its root part');
          if (this.received !== size) invalid('a text/plain root: the text view is the message');
          this.checkDigestOfWhole();
        }
        break;
      case 'full':
        if (!this.d1Done) {
          this.d1.finish();
          this.drain1();
        }
        if (this.root === undefined) invalid('no root part');
        break;
    }
    if (!sameSigners(this.signers, this.announced.signers)) {
      invalid(
        `its signatures are by ${this.signers.join(',') || 'nobody'}, ` +
          `announced ${this.announced.signers.join(',') || 'nobody'}`,
      );
    }
    if (this.earlier !== undefined && this.rebuilt !== undefined) {
      if (toBase64url(this.rebuilt.digest()) !== this.earlier.sha256) {
        invalid(`it does not reproduce the ${this.earlier.view} view sent before`);
      }
    }
  }

  /** A text view that is the whole message carries the announced content digest. */
  private digestOfWhole: string | undefined;
  private checkDigestOfWhole(): void {
    if (this.digestOfWhole !== this.announced.digest) {
      invalid('the content digest is not the announced one');
    }
  }
}
