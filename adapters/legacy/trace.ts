/**
 * The framed trace block → legacy header fields (docs/protocol.md §51.7).
 *
 * Signatures sign the framed root part's octets, which the legacy message no longer has,
 * so no legacy reader can verify them: they are dropped, and summarised in an
 * Authentication-Results field (RFC 8601) only when the gateway passes the verdicts it
 * computed. Certificates are dropped with them. Trace fields keep the relay history as
 * X-NMTP-Trace fields, in order, at the top (where RFC 5322 §3.6.7 puts trace fields).
 */
import type { Field } from '../../src/core/frame/index.ts';
import type { ResolvedOptions } from './options.ts';

// RFC 8601 §2.2 authserv-id, and a value token: anything else would need quoting.
const TOKENISH = /^[A-Za-z0-9.@+_-]+$/;

/**
 * The Authentication-Results value for the gateway's verdicts (RFC 8601): also what the
 * gateway's ARC set carries as ARC-Authentication-Results (RFC 8617 §4.1.1).
 */
export function authResultsValue(ar: NonNullable<ResolvedOptions['authResults']>): string {
  // "nmtp" is not a registered method (RFC 8601 §2.7.7 registry): readers that do not
  // know it ignore it, which is the right outcome for them.
  const results = ar.verdicts
    .filter((v) => TOKENISH.test(v.domain) && (v.user === undefined || TOKENISH.test(v.user)))
    .map(
      (v) =>
        `nmtp=${v.result} header.d=${v.domain}${v.user === undefined ? '' : ` header.i=${v.user}`}`,
    );
  return `${ar.authservId}; ${results.length === 0 ? 'none' : results.join('; ')}`;
}

export function traceHeaderFields(
  trace: readonly Field[],
  opts: ResolvedOptions,
): (readonly [string, string])[] {
  const out: (readonly [string, string])[] = [];
  const ar = opts.authResults;
  if (ar !== undefined) out.push(['Authentication-Results', authResultsValue(ar)]);
  for (const f of trace) {
    if (f.name.toLowerCase() === 'trace') out.push(['X-NMTP-Trace', f.value]);
  }
  return out;
}
