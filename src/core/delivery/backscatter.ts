/**
 * Whether the gateway may send a DSN at all (docs/protocol.md §52.5). A DSN goes to
 * the envelope sender, which anyone can forge; a report to a forged sender is backscatter
 * (spam to an innocent third party). So after acceptance the gateway reports only to a
 * return path it has reason to believe, and otherwise keeps the outcome in its logs: the
 * cure for "we could not tell the sender" is rejecting in the SMTP session, not guessing.
 */

export interface SenderTrust {
  /** MAIL FROM address ('' for the null reverse-path). */
  readonly returnPath: string;
  /** The client authenticated (SMTP AUTH) before MAIL FROM. */
  readonly authenticated: boolean;
  /** The client is a configured trusted relay (e.g. the organisation's own Postfix). */
  readonly trustedRelay: boolean;
  /** SPF result for the MAIL FROM identity (RFC 7208), lower-case: "pass", "fail", ... */
  readonly spf?: string;
  /** Domains (d=) of DKIM signatures that verified ("pass"). */
  readonly dkimPassDomains?: readonly string[];
}

export type DsnPermission =
  | { readonly allowed: true; readonly reason: string }
  | { readonly allowed: false; readonly reason: string };

/** Relaxed alignment (as in DMARC, RFC 7489 §3.1.1, without a PSL): same domain or a parent. */
function aligned(signer: string, domain: string): boolean {
  const s = signer.toLowerCase().replace(/\.$/, '');
  const d = domain.toLowerCase().replace(/\.$/, '');
  // A single-label signer would be a TLD; without a public-suffix list "co.uk"-style
  // suffixes are not caught (documented limitation, §52.5).
  return s.includes('.') && (d === s || d.endsWith('.' + s));
}

export function dsnPermitted(t: SenderTrust): DsnPermission {
  const rp = t.returnPath.trim().replace(/^<(.*)>$/, '$1');
  // RFC 5321 §4.5.5: notifications go out with a null reverse-path, so that no
  // notification is ever sent about one; a message from <> gets no DSN.
  if (rp === '') return { allowed: false, reason: 'null reverse-path' };
  if (t.authenticated) return { allowed: true, reason: 'authenticated client' };
  if (t.trustedRelay) return { allowed: true, reason: 'trusted relay' };
  const domain = rp.slice(rp.lastIndexOf('@') + 1);
  if (!rp.includes('@') || domain === '')
    return { allowed: false, reason: 'return path has no domain' };
  if (t.spf === 'pass') return { allowed: true, reason: 'SPF pass for the MAIL FROM domain' };
  // DMARC authenticates the header From, not the return path that receives the DSN; a DKIM
  // signature of the return path's own domain (or a parent) does vouch for it.
  if ((t.dkimPassDomains ?? []).some((d) => aligned(d, domain))) {
    return { allowed: true, reason: 'DKIM pass aligned with the MAIL FROM domain' };
  }
  return { allowed: false, reason: 'unauthenticated return path (possible backscatter)' };
}
