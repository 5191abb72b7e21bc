/**
 * printCommandLine decides most commands token by token instead of parsing its own line
 * back. Its guarantee must not change: it never prints a line its own parser would refuse
 * or read back differently. These tests hold it to the round trip it replaced (kept here as
 * the reference), on hand-picked edge cases and on generated commands (fast-check).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NmtpError } from '../../../src/core/errors/index.ts';
import {
  VERBS,
  parseCommandLine,
  printCommandLine,
  utf8Length,
  type Command,
  type Verb,
} from '../../../src/core/wire/index.ts';

/** The printer before the token-by-token check: print, then parse the line back. */
function roundTripPrint(c: Command): string {
  const spec = VERBS[c.verb];
  const out: string[] = [c.verb, ...c.args];
  for (const [name] of spec.params) {
    const v = c.params[name];
    if (v !== undefined) out.push(`${name}=${v}`);
  }
  const line = out.join(' ');
  const parsed = parseCommandLine(line, utf8Length(line) + 2, 0);
  if (
    parsed.args.length !== c.args.length ||
    Object.keys(c.params).length !== Object.keys(parsed.params).length
  ) {
    throw new NmtpError('NMTP_ERR_WIRE_SYNTAX', 'command does not print unambiguously', {
      offset: 0,
    });
  }
  return line;
}

/** What printing `c` comes to: the line, or the error's code and message. */
function outcome(print: (c: Command) => string, c: Command): string {
  try {
    return `line ${print(c)}`;
  } catch (e) {
    assert.ok(e instanceof NmtpError, `not an NmtpError: ${String(e)}`);
    return `error ${e.code} ${e.message}`;
  }
}

const sameAsRoundTrip = (c: Command): void => {
  assert.equal(outcome(printCommandLine, c), outcome(roundTripPrint, c), JSON.stringify(c));
};

const ALL_VERBS = Object.keys(VERBS) as Verb[];

test('the verb table has what the token-by-token check relies on: plain, unique parameter names', () => {
  for (const verb of ALL_VERBS) {
    const names = VERBS[verb].params.map(([n]) => n);
    assert.equal(new Set(names).size, names.length, verb);
    for (const n of names) assert.match(n, /^[a-z][a-z0-9-]*$/, `${verb} ${n}`);
  }
});

test('printCommandLine: edge cases print or fail exactly as the round trip does', () => {
  const d = 'd'.repeat(43);
  const cases: Command[] = [
    { verb: 'RCPT', args: ['alice@example.net'], params: {} },
    { verb: 'RCPT', args: ['a=b@example.net'], params: { redirect: 'failed' } },
    { verb: 'RCPT', args: ['jürgen@bücher.example'], params: {} },
    { verb: 'RCPT', args: ['two words'], params: {} },
    { verb: 'RCPT', args: [''], params: {} },
    { verb: 'RCPT', args: ['a\u0000b'], params: {} },
    { verb: 'RCPT', args: ['a\u0085b'], params: {} },
    { verb: 'RCPT', args: ['a\u007fb'], params: {} },
    { verb: 'RCPT', args: ['a\tb'], params: {} },
    { verb: 'RCPT', args: [], params: {} },
    { verb: 'RCPT', args: ['a', 'b'], params: {} },
    { verb: 'RCPT', args: ['a', 'redirect=failed'], params: {} },
    { verb: 'RCPT', args: ['a'], params: { redirect: '' } },
    { verb: 'RCPT', args: ['a'], params: { redirect: 'x y' } },
    { verb: 'RCPT', args: ['a'], params: { redirect: 'x=y' } },
    { verb: 'RCPT', args: ['a'], params: { other: 'x' } },
    {
      verb: 'RCPT',
      args: ['a'],
      params: { redirect: undefined } as unknown as Record<string, string>,
    },
    { verb: 'RCPT', args: [`${'x'.repeat(1017)}`], params: {} },
    { verb: 'RCPT', args: [`${'x'.repeat(1018)}`], params: {} },
    { verb: 'RCPT', args: [`${'ü'.repeat(508)}`], params: {} },
    { verb: 'RCPT', args: [`${'ü'.repeat(509)}`], params: {} },
    { verb: 'RCPT', args: [`${'😀'.repeat(254)}`], params: {} },
    { verb: 'RCPT', args: [`${'😀'.repeat(255)}`], params: {} },
    { verb: 'RCPT', args: ['\ud800'], params: {} },
    { verb: 'DATA', args: [], params: { size: '438', digest: d } },
    { verb: 'DATA', args: [], params: { digest: d, size: '438' } },
    { verb: 'DATA', args: [], params: { size: '438' } },
    { verb: 'DATA', args: [], params: { size: '1 digest=x', signers: 'a' } },
    { verb: 'DATA', args: [], params: { size: '1 digest=x', foo: 'a' } },
    { verb: 'DATA', args: [], params: { size: '1', digest: d, send: 'full', cookie: 'c' } },
    { verb: 'DATA', args: ['x'], params: { size: '1', digest: d } },
    { verb: 'DATA', args: [], params: { size: 1, digest: d } as unknown as Record<string, string> },
    { verb: 'QUIT', args: [], params: {} },
    { verb: 'QUIT', args: [], params: { x: 'y' } },
    { verb: 'NOOP', args: ['x'], params: {} },
    { verb: 'AUTH', args: ['PLAIN', 'AGFsaWNl'], params: {} },
    { verb: 'AUTH', args: ['PLAIN'], params: {} },
    { verb: 'AUTH', args: ['KEY', 'a', 'b', 'c'], params: {} },
    { verb: 'AUTH', args: ['KEY', 'a', 'b'], params: {} },
    { verb: 'AUTH', args: ['OTHER', 'a'], params: {} },
    { verb: 'AUTH', args: [], params: {} },
    { verb: 'HELLO', args: ['example.org'], params: { sel: 's', proof: 'x'.repeat(86) } },
    { verb: 'HELLO', args: ['example.org'], params: { sel: 's', proof: 'x'.repeat(600) } },
    { verb: 'PROVE', args: ['a@b'], params: { nonce: 'n' } },
    { verb: 'PROVE', args: ['a@b'], params: {} },
    { verb: 'CERTIFY', args: [], params: { key: 'k', days: '30' } },
  ];
  // A command the parser produced prints back to the line it came from.
  for (const line of ['RCPT a redirect=failed', `DATA size=1 digest=${d} send=full`, 'QUIT']) {
    const c = parseCommandLine(line, utf8Length(line) + 2, 0);
    assert.equal(printCommandLine(c), line);
    cases.push(c);
  }
  for (const c of cases) sameAsRoundTrip(c);
});

test('printCommandLine equals the round trip on generated commands (fast-check)', () => {
  // Strings near every rule: tokens, SP, controls (C0, DEL, C1), "=", empty, non-ASCII,
  // and long ones around the per-verb size limits.
  const piece = fc.oneof(
    fc.stringMatching(/^[-A-Za-z0-9@._:,]{1,12}$/),
    fc.constantFrom('', ' ', '=', 'a=b', '\u0000', '\t', '\u007f', '\u0085', '\u00a0', 'ü', '😀'),
    fc.constantFrom('PLAIN', 'KEY', 'failed', 'full', 'redirect=failed', 'size=1'),
    fc.string({ maxLength: 6 }),
    fc.string({ unit: 'binary', maxLength: 4 }),
  );
  const str = fc.oneof(
    { weight: 6, arbitrary: fc.array(piece, { maxLength: 3 }).map((p) => p.join('')) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom('x', 'ü', '😀'), fc.integer({ min: 1, max: 1100 }))
        .map(([ch, n]) => ch.repeat(n)),
    },
  );
  const command = fc.constantFrom(...ALL_VERBS).chain((verb) => {
    const names = [...VERBS[verb].params.map(([n]) => n), 'foo', 'size', 'redirect'];
    return fc.record({
      verb: fc.constant(verb),
      args: fc.array(str, { maxLength: 5 }),
      params: fc
        .array(fc.tuple(fc.constantFrom(...names), fc.option(str, { freq: 8, nil: undefined })), {
          maxLength: 6,
        })
        .map((entries) => Object.fromEntries(entries) as Record<string, string>),
    });
  });
  fc.assert(
    fc.property(command, (c) => {
      sameAsRoundTrip(c);
    }),
    { numRuns: 5000 },
  );
  // Mostly well-formed commands too, so the accepting side is well covered.
  const good = fc.constantFrom(...ALL_VERBS).chain((verb) => {
    const spec = VERBS[verb];
    const tok = fc.stringMatching(/^[-A-Za-z0-9@._:,=üλ😀]{1,40}$/u);
    return fc.record({
      verb: fc.constant(verb),
      // The verb's own arity mostly (AUTH: one of its two forms), sometimes one off.
      args: fc
        .tuple(
          verb === 'AUTH'
            ? fc.constantFrom(['KEY', 'a', 'b'], ['PLAIN'])
            : fc.array(tok, { minLength: 0, maxLength: 0 }),
          fc.array(tok, { minLength: 0, maxLength: 2 }),
          fc.integer({ min: -1, max: 8 }),
        )
        .map(([head, more, off]) => {
          const want = (spec.arity(head) ?? 0) + (off < 0 ? -1 : off > 6 ? 1 : 0);
          const all = [...head, ...more, 'x', 'y', 'z', 'w'];
          return all.slice(0, Math.max(0, want));
        }),
      params: fc
        .tuple(
          ...spec.params.map(([n, required]) =>
            fc.option(fc.tuple(fc.constant(n), tok), { freq: required ? 30 : 2 }),
          ),
        )
        .map((ps) => Object.fromEntries(ps.filter((p) => p !== null)) as Record<string, string>),
    });
  });
  let printed = 0;
  fc.assert(
    fc.property(good, (c) => {
      sameAsRoundTrip(c);
      if (outcome(printCommandLine, c).startsWith('line ')) printed++;
    }),
    { numRuns: 5000 },
  );
  assert.ok(printed > 1000, `only ${printed} generated commands printed`);
});
