/** Unit tests for src/core/address: rules the vectors do not isolate, and data integrity. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseAddress,
  tryParseAddress,
  sameAddress,
  enforceHomographPolicy,
  identifierClassOf,
  skeleton,
  homographVerdict,
  formatAddressVerdict,
  formatMailbox,
  prepareDisplayName,
  CONFUSABLES_UNICODE_VERSION,
} from '../../../src/core/address/index.ts';
import {
  CONFUSABLES_DATA,
  CONFUSABLES_ENTRY_COUNT,
} from '../../../src/core/address/data/confusables.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';

test('the Unicode version the spec names is the one the engine and the data have', () => {
  // The spec (§20.2) states Unicode 17.0: the regex property escapes use the engine's ICU.
  // If Node is upgraded this fails, and the spec, data and vectors must be reviewed.
  assert.equal(process.versions.unicode, '17.0');
  assert.equal(CONFUSABLES_UNICODE_VERSION, '17.0');
});

test('PRECIS IdentifierClass derivation (RFC 8264 §8) on representative code points', () => {
  const cases: [number, string][] = [
    [0x61, 'PVALID'], // ASCII7
    [0x40, 'PVALID'], // "@" is PVALID in PRECIS; NMTP reserves it separately
    [0x20, 'DISALLOWED'], // space: not in ASCII7 (%x21-7E)
    [0xdf, 'PVALID'], // exception
    [0x0640, 'DISALLOWED'], // exception
    [0x00b7, 'CONTEXTO'],
    [0x200d, 'CONTEXTJ'],
    [0x00ad, 'DISALLOWED'], // Default_Ignorable
    [0x0378, 'UNASSIGNED'],
    [0xfdd0, 'DISALLOWED'], // noncharacter (Cn, but not "Unassigned")
    [0x1100, 'DISALLOWED'], // old Hangul jamo
    [0xac00, 'PVALID'], // precomposed Hangul syllable
    [0xfb01, 'DISALLOWED'], // HasCompat
    [0x00e9, 'PVALID'],
    [0x0301, 'PVALID'], // Mn
    [0x2603, 'DISALLOWED'], // So
    [0x01c5, 'DISALLOWED'], // Lt
    [0xe000, 'DISALLOWED'], // private use
  ];
  for (const [cp, cls] of cases) assert.equal(identifierClassOf(cp), cls, cp.toString(16));
});

test('confusables data: entry count, well-formed entries, no source maps to itself', () => {
  const entries = CONFUSABLES_DATA.flatMap((l) => l.split(';'));
  assert.equal(entries.length, CONFUSABLES_ENTRY_COUNT);
  const seen = new Set<string>();
  for (const e of entries) {
    // (Prototypes may hold odd code points: confusables.txt itself maps U+1F16D to
    // "U+33C4 U+0009 U+20DD" — a tab — and the data is shipped as published.)
    assert.match(e, /^[0-9a-f]{2,6}:[0-9a-f]{1,6}( [0-9a-f]{1,6})*$/, e);
    const [src, proto] = e.split(':') as [string, string];
    assert.notEqual(proto, src, e);
    assert.equal(seen.has(src), false, `duplicate ${src}`);
    seen.add(src);
  }
  // Spot checks of well-known entries (confusables.txt): Cyrillic a, digit one, m.
  assert.equal(skeleton('\u0430 1 m'), 'a l rn');
  // Note: skeleton() is NOT idempotent on this data (e.g. U+01C4 → "DŽ", whose NFD has
  // U+030C, itself mapped to U+0306), so no idempotence property is claimed.
});

test('canonical form: case-sensitive local part, case-insensitive domain', () => {
  const a = parseAddress('Alice@EXAMPLE.com');
  const b = parseAddress('alice@example.com');
  const c = parseAddress('Alice@example.COM');
  assert.equal(sameAddress(a, b), false);
  assert.equal(sameAddress(a, c), true);
});

test('errors carry the offending code point and its offset', () => {
  const r = tryParseAddress('ab c@example.com');
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.error.code, 'NMTP_ERR_ADDR_LOCAL_CHAR');
  assert.equal(r.error.details.offset, 2);
  assert.equal(r.error.details['codePoint'], 'U+0020');
});

test('policy: refused domains throw NMTP_ERR_ADDR_HOMOGRAPH_REFUSED, others pass', () => {
  const refused = parseAddress('x@p\u0430ypal.com');
  assert.throws(
    () => enforceHomographPolicy(refused),
    (e: unknown) => e instanceof NmtpError && e.code === 'NMTP_ERR_ADDR_HOMOGRAPH_REFUSED',
  );
  const flagged = parseAddress('x@\u0430\u0440\u0440\u04cf\u0435.com');
  assert.equal(enforceHomographPolicy(flagged), flagged);
  assert.equal(
    formatAddressVerdict(flagged.homograph),
    'action=flag; local=ascii; domain=single-script; reasons=domain-ascii-confusable; skeleton=apple.corn',
  );
});

test('verdict scripts list the Script property, sorted, without Common/Inherited', () => {
  assert.deepEqual(homographVerdict('a-\u0430').scripts, ['Cyrl', 'Latn']);
  assert.deepEqual(homographVerdict('123').scripts, []);
});

test('display names: formatting and preparation', () => {
  const address = parseAddress('a@bücher.de');
  assert.equal(formatMailbox({ address }), '<a@bücher.de>');
  assert.equal(formatMailbox({ address }, 'canonical'), '<a@xn--bcher-kva.de>');
  assert.equal(formatMailbox({ displayName: 'Smith, John', address }), 'Smith, John <a@bücher.de>');
  assert.equal(prepareDisplayName('  John\t\r\n  Smith  '), 'John Smith');
  assert.equal(prepareDisplayName('Jo\u0308rg'), 'Jörg');
  assert.equal(prepareDisplayName(' \t '), undefined);
});
