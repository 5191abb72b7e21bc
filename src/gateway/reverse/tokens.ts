/**
 * The reverse direction's names, all derived from the queue entry that carries the
 * message to the legacy side, and all unforgeable without the gateway's domain key:
 *
 *   cookie       gw-<mac>-<index>-<entry id>   what an NMTP sender polls (§60.10.6)
 *   return path  <local>+<entry id>.<mac>@<gateway domain>   where legacy DSNs come back
 *   ENVID        <entry id>.<mac>              RFC 3461, the same tag as the return path
 *
 * "Cookies are chosen by the receiver, MUST be unguessable (at least 128 bits of
 * randomness, or a MAC), and are bound to the client domain authenticated by HELLO"
 * (§60.10.6): the cookie's MAC covers the entry, the recipient and the client domain, so a
 * cookie asked about by another domain fails its MAC and reads as unknown. The return-path
 * tag's MAC keeps a stranger from forging a DSN that would turn a cookie into "rejected"
 * (the BATV idea). The MAC key is derived from the gateway's domain key, so every gateway
 * process of one domain (the BullMQ backend, several hosts) answers the same cookies with
 * no further shared secret. Pure: no I/O.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { SigningKey } from '../../core/sign/index.ts';

/** 128 bits of HMAC-SHA256, lower-case hex (case survives every MTA's handling). */
const MAC_HEX = 32;
/** Entry ids the gateway makes for this direction: "r" + 26 base32 characters (130 bits). */
const ENTRY_ID = /^r[a-z2-7]{26}$/;
const COOKIE = /^gw-([0-9a-f]{32})-(0|[1-9][0-9]{0,3})-(r[a-z2-7]{26})$/;
const TAG = /^(r[a-z2-7]{26})\.([0-9a-f]{32})$/;

export interface Tokens {
  /** A fresh entry id from `random` octets. */
  entryId(random: (n: number) => Uint8Array): string;
  cookie(entryId: string, index: number, clientDomain: string): string;
  /** The entry and recipient index a cookie names, when its MAC holds for `clientDomain`. */
  openCookie(
    cookie: string,
    clientDomain: string,
  ): { readonly entryId: string; readonly index: number } | undefined;
  /** `<entry id>.<mac>`: the ENVID and the return path's tag. */
  tag(entryId: string): string;
  /** The entry id of a tag (an ENVID, or the part after "+" of a return path), if genuine. */
  openTag(tag: string): string | undefined;
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

export function createTokens(key: SigningKey): Tokens {
  // A key of its own for this use, so the MACs reveal nothing about the signing key.
  const secret = createHmac('sha256', 'nmtp-gateway reverse tokens v1').update(key.seed).digest();
  const mac = (...parts: string[]): string =>
    createHmac('sha256', secret).update(parts.join('\0')).digest('hex').slice(0, MAC_HEX);
  const same = (a: string, b: string): boolean =>
    a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
  return {
    entryId(random) {
      const bytes = random(26);
      let s = 'r';
      for (let i = 0; i < 26; i++) s += BASE32[bytes[i]! & 31];
      return s;
    },
    cookie(entryId, index, clientDomain) {
      return `gw-${mac('cookie', entryId, String(index), clientDomain.toLowerCase())}-${index}-${entryId}`;
    },
    openCookie(cookie, clientDomain) {
      const m = COOKIE.exec(cookie);
      if (m === null) return undefined;
      const [, given, index, entryId] = m as unknown as [string, string, string, string];
      const want = mac('cookie', entryId, index, clientDomain.toLowerCase());
      return same(given, want) ? { entryId, index: Number(index) } : undefined;
    },
    tag(entryId) {
      return `${entryId}.${mac('tag', entryId)}`;
    },
    openTag(tag) {
      const m = TAG.exec(tag.toLowerCase());
      if (m === null) return undefined;
      const [, entryId, given] = m as unknown as [string, string, string];
      return same(given, mac('tag', entryId)) ? entryId : undefined;
    },
  };
}

export const isReverseEntryId = (id: string): boolean => ENTRY_ID.test(id);
export const isReverseCookie = (cookie: string): boolean => cookie.startsWith('gw-');
