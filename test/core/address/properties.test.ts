/** Property tests (fast-check) for src/core/address. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  parseAddress,
  tryParseAddress,
  fromLegacyAddress,
  toLegacyAddress,
  validateDisplayName,
  prepareDisplayName,
  parseMailboxList,
  formatMailboxList,
  skeleton,
  restrictionLevel,
  processDomain,
} from '../../../src/core/address/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';

// Characters drawn on purpose from every rule of the spec: atext, RFC 5322 specials,
// reserved delimiters, spaces, Latin with diacritics (precomposed and combining),
// Cyrillic/Greek look-alikes, Han, Hebrew, fullwidth, joiners, symbols.
const LOCAL_CHARS = [
  ...'abcxyzABCXYZ0189.!#$%&\'*+-/=?^_`{|}~():;[]@<>,"\\ ',
  'é',
  'ö',
  'ß',
  '\u0301',
  'а',
  'е',
  'о',
  'β',
  'ο',
  '中',
  '文',
  'ア',
  '\u05d0',
  'ｊ',
  '\u200d',
  '\u2603',
  '\u00b7',
  'l',
  '\u3000',
  '\u0000',
  '\ud800',
];
const LABEL_CHARS = [...'abcxyz0189-', 'ü', 'ß', 'а', 'р', 'е', 'ο', '例', '子', 'Ä', 'ｅ'];

const local = fc.array(fc.constantFrom(...LOCAL_CHARS), { minLength: 1, maxLength: 12 });
const label = fc.array(fc.constantFrom(...LABEL_CHARS), { minLength: 1, maxLength: 10 });
const domain = fc
  .tuple(fc.array(label, { minLength: 1, maxLength: 3 }), fc.constantFrom('com', 'de', 'рф', 'jp'))
  .map(([ls, tld]) => [...ls.map((l) => l.join('')), tld].join('.'));
const candidate = fc.tuple(local, domain).map(([l, d]) => `${l.join('')}@${d}`);

/** Runs fn; anything thrown must be an NmtpError. */
function onlyNmtpErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof NmtpError)) throw e;
  }
}

test('parse(canonical) and parse(display) give back the same canonical form', () => {
  fc.assert(
    fc.property(candidate, (s) => {
      const r = tryParseAddress(s);
      if (!r.ok) return;
      const a = r.address;
      assert.equal(parseAddress(a.canonical).canonical, a.canonical);
      assert.equal(parseAddress(a.display).canonical, a.canonical);
      // Both parsed forms are acceptable on the wire.
      assert.equal(parseAddress(a.canonical, { mode: 'wire' }).canonical, a.canonical);
      assert.equal(parseAddress(a.display, { mode: 'wire' }).display, a.display);
    }),
    { numRuns: 500 },
  );
});

test('U-label and A-label forms of a domain canonicalise equal', () => {
  fc.assert(
    fc.property(domain, (d) => {
      let p;
      try {
        p = processDomain(d);
      } catch {
        return;
      }
      const viaU = parseAddress(`x@${p.unicode}`);
      const viaA = parseAddress(`x@${p.ascii}`);
      const viaUpper = parseAddress(`x@${p.ascii.toUpperCase()}`);
      assert.equal(viaU.canonical, viaA.canonical);
      assert.equal(viaUpper.canonical, viaA.canonical);
      assert.equal(viaA.domain, p.unicode);
    }),
    { numRuns: 500 },
  );
});

test('NMTP → legacy → NMTP is the identity (with SMTPUTF8; without it for ASCII)', () => {
  fc.assert(
    fc.property(candidate, (s) => {
      const r = tryParseAddress(s);
      if (!r.ok) return;
      const a = r.address;
      assert.equal(
        fromLegacyAddress(toLegacyAddress(a, { smtputf8: true })).canonical,
        a.canonical,
      );
      if (/^[\x20-\x7e]*$/.test(a.local)) {
        const legacy = toLegacyAddress(a, { smtputf8: false });
        assert.equal(fromLegacyAddress(legacy, { smtputf8: false }).canonical, a.canonical);
      }
    }),
    { numRuns: 500 },
  );
});

test('legacy → NMTP → legacy round trip, where mappable', () => {
  const legacyLocal = fc.oneof(
    local.map((cs) => cs.join('')),
    local.map((cs) => `"${cs.join('').replace(/["\\]/g, (c) => `\\${c}`)}"`),
  );
  fc.assert(
    fc.property(legacyLocal, domain, (l, d) => {
      const legacy = `${l}@${d}`;
      let a;
      try {
        a = fromLegacyAddress(legacy);
      } catch (e) {
        assert.ok(e instanceof NmtpError);
        return;
      }
      const back = toLegacyAddress(a, { smtputf8: true });
      // Same mailbox: identical after mapping again (quoting and domain form may differ).
      assert.equal(fromLegacyAddress(back).canonical, a.canonical);
      // Minimal quoting: an unquoted legacy local part stays unquoted.
      if (!l.startsWith('"')) assert.ok(back.startsWith(l + '@'));
    }),
    { numRuns: 500 },
  );
});

test('arbitrary strings: only NmtpError is ever thrown', () => {
  const anyString = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 80 }),
    fc.string({ unit: 'grapheme', maxLength: 80 }),
    candidate,
  );
  fc.assert(
    fc.property(anyString, (s) => {
      onlyNmtpErrors(() => parseAddress(s));
      onlyNmtpErrors(() => parseAddress(s, { mode: 'wire' }));
      onlyNmtpErrors(() => fromLegacyAddress(s));
      onlyNmtpErrors(() => fromLegacyAddress(s, { smtputf8: false }));
      onlyNmtpErrors(() => validateDisplayName(s));
      const prepared = prepareDisplayName(s);
      if (prepared !== undefined && !/[<>]/.test(prepared)) {
        onlyNmtpErrors(() => validateDisplayName(prepared));
      }
      restrictionLevel(s);
      skeleton(s);
    }),
    { numRuns: 1000 },
  );
});

test('bounded time on long inputs', () => {
  const long = [
    'a'.repeat(100_000) + '@example.com',
    'a@' + 'a.'.repeat(50_000) + 'com',
    '"' + 'a'.repeat(100_000) + '"@example.com',
    '\u0430'.repeat(100_000),
    'x@' + '\u00ad'.repeat(100_000) + 'a.com',
    '@'.repeat(100_000),
  ];
  for (const s of long) {
    const t0 = performance.now();
    onlyNmtpErrors(() => parseAddress(s));
    onlyNmtpErrors(() => fromLegacyAddress(s));
    onlyNmtpErrors(() => validateDisplayName(s));
    const ms = performance.now() - t0;
    assert.ok(ms < 500, `${ms.toFixed(0)} ms for input of ${s.length}`);
  }
});

test('address lists: parse(format(list)) gives the list back', () => {
  const NAME_CHARS = [...'ab ,;:"\'()@.-', 'é', 'ß', '中', '\u05d0', '\u200f'];
  const name = fc
    .array(fc.constantFrom(...NAME_CHARS), { maxLength: 10 })
    .map((cs) => prepareDisplayName(cs.join('')));
  const mailbox = fc.tuple(name, candidate).map(([n, a]) => {
    const r = tryParseAddress(a);
    if (!r.ok) return undefined;
    return n === undefined ? { address: r.address } : { displayName: n, address: r.address };
  });
  fc.assert(
    fc.property(fc.array(mailbox, { minLength: 1, maxLength: 4 }), (ms) => {
      const list = ms.filter((m) => m !== undefined);
      if (list.length === 0) return;
      for (const form of ['display', 'canonical'] as const) {
        const text = formatMailboxList(list, form);
        const back = parseMailboxList(text);
        assert.deepEqual(
          back.map((m) => [m.displayName, m.address.canonical]),
          list.map((m) => [m.displayName, m.address.canonical]),
          text,
        );
      }
    }),
    { numRuns: 300 },
  );
});
