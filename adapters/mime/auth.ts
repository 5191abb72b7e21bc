/**
 * Legacy authentication at conversion time (spec §50.7.3): SPF, DKIM and DMARC evaluated by
 * mailauth (not hand-rolled), each result written as one Legacy-Auth value,
 * `method "=" result *( SP ptype "." property "=" value )`, modelled on RFC 8601 resinfo.
 */
import { authenticate } from 'mailauth';
import type { AuthOptions, LegacyEnvelope } from './options.ts';
import { toFieldValue } from './header-text.ts';

/** Property values must be one token: no SP, ";" or controls. */
const tok = (v: unknown): string =>
  toFieldValue(String(v)).value.replace(/[\s;]+/g, '') || 'unknown';

interface Status {
  result?: string;
}

export async function legacyAuthResults(
  original: Uint8Array,
  auth: AuthOptions,
  env: LegacyEnvelope | undefined,
  gateway: string,
): Promise<string[]> {
  const res = await authenticate(
    Buffer.from(original.buffer, original.byteOffset, original.length),
    {
      resolver: auth.resolver as never,
      mta: gateway,
      sender: env?.mailFrom ?? '',
      ...(env?.clientIp === undefined ? {} : { ip: env.clientIp }),
      ...(env?.helo === undefined ? {} : { helo: env.helo }),
      disableArc: true,
      disableBimi: true,
    },
  );
  const out: string[] = [];
  const spf = res.spf as false | { status?: Status; domain?: string };
  if (spf !== false) {
    out.push(
      `spf=${tok(spf.status?.result ?? 'none')} smtp.mailfrom=${tok(env?.mailFrom || spf.domain || '<>')}`,
    );
  }
  const dkim = (res.dkim?.results ?? []) as {
    status?: Status;
    signingDomain?: string;
    selector?: string;
  }[];
  if (dkim.length === 0) out.push('dkim=none');
  for (const r of dkim) {
    let s = `dkim=${tok(r.status?.result ?? 'none')}`;
    if (r.signingDomain !== undefined) s += ` header.d=${tok(r.signingDomain)}`;
    if (r.selector !== undefined) s += ` header.s=${tok(r.selector)}`;
    out.push(s);
  }
  const dmarc = res.dmarc as false | { status?: Status; domain?: string };
  if (dmarc !== false) {
    out.push(`dmarc=${tok(dmarc.status?.result ?? 'none')} header.from=${tok(dmarc.domain ?? '')}`);
  }
  return out;
}
