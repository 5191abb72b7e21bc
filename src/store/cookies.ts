/**
 * The durable cookie store: one JSON file per cookie under one directory, so a restarted
 * receiver keeps answering STATUS for every cookie it issued (issue 4: "Cookie state is
 * durable"). Persistence only: what a state means is the decider's business.
 *
 * Files are read on every lookup rather than cached, so a decision written by another
 * process (`nmtp mailbox approve`) is seen at once by a running server, and there is no
 * cache to lose. Cookie names are checked against the wire syntax before they touch the
 * file system ("cookie = 1*128( ALPHA / DIGIT / "-" / "_" )", §60.4): no path traversal.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NmtpError } from '../core/errors/index.ts';
import type { View } from '../core/session/index.ts';
import { writeDurable } from './durable.ts';

const COOKIE_RE = /^[A-Za-z0-9_-]{1,128}$/;

export type StoredCookieState = 'deferred' | 'want-view' | 'accepted' | 'rejected' | 'given-up';

export interface StoredCookie {
  readonly cookie: string;
  /** The client domain authenticated by HELLO when the cookie was issued (§60.10.6). */
  readonly owner: string;
  readonly rcpt: string;
  readonly state: StoredCookieState;
  /** Unix seconds: issued, and forgotten after. */
  readonly issued: number;
  readonly expires: number;
  /** Poll window (seconds) the sender is given while deferred. */
  readonly min: number;
  readonly max: number;
  /** Receiver id once accepted. */
  readonly id?: string;
  /** For want-view: the view wanted. */
  readonly view?: View;
  /** For rejected: enhanced code and text. */
  readonly enhanced?: string;
  readonly text?: string;
  /**
   * What the DATA that created the cookie announced: every later DATA on the cookie must
   * announce the same (docs/protocol.md §60.10.6).
   */
  readonly announced?: {
    readonly size: number;
    readonly digest: string;
    readonly signers: readonly string[];
  };
  /**
   * The preview held (its view and the SHA-256 of its octets, base64url): every later
   * view on the cookie must reproduce it (§60.10.6). Kept when `view` turns to the one
   * wanted next.
   */
  readonly held?: { readonly view: View; readonly sha256: string };
  /**
   * Opaque reference the decider keeps: the mailbox's held message, relative to the maildir
   * (`held/<cookie>.nmtp`, read back by `heldPath`, src/server/mailbox-store.ts).
   */
  readonly ref?: string;
  /** How the client identified itself when the cookie was issued (§60.8). */
  readonly client?: {
    readonly domain: string;
    readonly ip: string;
    readonly proof: string;
    readonly csv: string;
    /**
     * The reputation hook's verdict on that client, when it gave one (§60.8.3); written by
     * the mailbox with the rest of the identification. Kept as plain strings: the store only
     * persists what the decider hands it.
     */
    readonly reputation?: { readonly verdict: string; readonly note?: string };
  };
}

export function isCookieName(cookie: string): boolean {
  return COOKIE_RE.test(cookie);
}

export class CookieStore {
  private constructor(readonly dir: string) {}

  /** Opens (creating if needed) the store in `dir`. */
  static async open(dir: string): Promise<CookieStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return new CookieStore(dir);
  }

  private path(cookie: string): string {
    if (!isCookieName(cookie)) {
      throw new NmtpError('NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN', 'malformed cookie');
    }
    return join(this.dir, `${cookie}.json`);
  }

  /** The cookie, or undefined when it was never stored (or is malformed). */
  async get(cookie: string): Promise<StoredCookie | undefined> {
    if (!isCookieName(cookie)) return undefined;
    let text: string;
    try {
      text = await readFile(this.path(cookie), 'utf8');
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return undefined;
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `cookie store: ${(e as Error).message}`);
    }
    return JSON.parse(text) as StoredCookie;
  }

  /** Writes the cookie durably; resolves only once it is on stable storage. */
  async put(c: StoredCookie): Promise<void> {
    await writeDurable(this.path(c.cookie), `${JSON.stringify(c, null, 1)}\n`);
  }

  /** Every stored cookie (for listings and start-up checks). */
  async list(): Promise<StoredCookie[]> {
    const names = (await readdir(this.dir)).filter((n) => n.endsWith('.json'));
    const out: StoredCookie[] = [];
    for (const n of names) {
      const c = await this.get(n.slice(0, -'.json'.length));
      if (c !== undefined) out.push(c);
    }
    return out;
  }
}
