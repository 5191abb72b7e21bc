/**
 * MIME header values with parameters (Content-Type, Content-Disposition): RFC 2045 §5.1
 * syntax, RFC 2231 (written here: libmime mixes quoted and extended continuations) for
 * values a short quoted-string cannot carry
 * (docs/protocol.md §51.4.3).
 */
// RFC 2045 token (any CHAR except SPACE, CTLs and tspecials) minus "*", "'" and "%",
// which RFC 2231 gives a meaning near parameters and which some readers then misparse
// (CPython loses `filename=*Y`): such values are quoted.
const TOKEN = /^[!#$&+\-.^_`{|}~A-Za-z0-9]+$/;
const ASCII_PRINTABLE = /^[\x20-\x7e]*$/;
/** Longer quoted values are split with RFC 2231 continuations so that lines can fold. */
const MAX_QUOTED = 60;

/** One parameter as `name=value` pieces (one, or several RFC 2231 continuations). */
export function formatParam(name: string, value: string): string[] {
  if (TOKEN.test(value)) return [`${name}=${value}`];
  if (ASCII_PRINTABLE.test(value) && value.length <= MAX_QUOTED) {
    return [`${name}="${value.replace(/["\\]/g, (c) => `\\${c}`)}"`];
  }
  // "A parameter value that is not short printable ASCII is written with RFC 2231:
  // charset utf-8, every segment extended (percent-encoded), at most 60 characters each,
  // also toward SMTPUTF8 peers." (§51.4.3) Extended segments need no quoting, so the value
  // never holds a space and the field folds between segments.
  const pct = rfc2231Percent(value);
  const pieces: string[] = [];
  for (let i = 0; i < pct.length;) {
    let end = Math.min(i + 60, pct.length);
    // Never split a %XX escape.
    if (pct[end - 1] === '%') end -= 1;
    else if (pct[end - 2] === '%') end -= 2;
    pieces.push(pct.slice(i, end));
    i = end;
  }
  if (pieces.length === 1) return [`${name}*=utf-8''${pieces[0]!}`];
  return pieces.map((v, i) => `${name}*${i}*=${i === 0 ? "utf-8''" : ''}${v}`);
}

/** RFC 2231 §7 extended-value octets: attribute-char as is, everything else %XX. */
function rfc2231Percent(value: string): string {
  let out = '';
  for (const b of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9!#$&+\-.^_`|~]/.test(c)
      ? c
      : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** `value; p1=v1; p2=v2` — folding happens at the spaces after ";". */
export function formatParameterized(
  value: string,
  params: readonly (readonly [string, string])[],
): string {
  return [value, ...params.flatMap(([n, v]) => formatParam(n, v))].join('; ');
}

/**
 * Splits an NMTP Content-Disposition value (`type *( ";" SP name "=" value )`, the
 * Content-Type parameter rule of docs/protocol.md §10.5.2) into its parts.
 */
export function parseDisposition(value: string): {
  type: string;
  params: (readonly [string, string])[];
} {
  const [type = '', ...raw] = value.split('; ');
  const params = raw.map((p) => {
    const eq = p.indexOf('=');
    return eq < 0 ? ([p, ''] as const) : ([p.slice(0, eq), p.slice(eq + 1)] as const);
  });
  return { type, params };
}
