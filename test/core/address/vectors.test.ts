/**
 * Runs every vector in test/vectors/address/*.json. The expected values there were
 * written by hand from the spec (docs/protocol.md section 20) and cross-checked against
 * independent oracles (see the IDNA oracle test below), not pasted from this code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { domainToASCII } from 'node:url';
import {
  parseAddress,
  tryParseAddress,
  skeleton,
  restrictionLevel,
  validateDisplayName,
  parseMailboxList,
  fromLegacyAddress,
  toLegacyAddress,
} from '../../../src/core/address/index.ts';
import { codeOf } from '../../support/code-of.ts';

interface Expected {
  readonly error?: string;
  readonly [key: string]: unknown;
}
interface Vector {
  readonly id: string;
  readonly description?: string;
  readonly input: string;
  readonly mode?: 'input' | 'wire';
  readonly smtputf8?: boolean;
  readonly expected: Expected;
}

function load<T>(name: string): T {
  return JSON.parse(
    readFileSync(new URL(`../../vectors/address/${name}`, import.meta.url), 'utf8'),
  ) as T;
}

const parse = load<{ vectors: Vector[] }>('parse.json');
const homograph = load<{
  skeleton: { id: string; input: string; expected: string }[];
  level: { id: string; input: string; expected: string }[];
  address: Vector[];
}>('homograph.json');
const legacy = load<{ from: Vector[]; to: Vector[] }>('legacy.json');
const displayNames = load<{
  vectors: Vector[];
  mailboxes: { id: string; input: string; expected: Expected | Expected[] }[];
}>('display-name.json');

test('address vectors: at least 60 cases in total', () => {
  const total =
    parse.vectors.length +
    homograph.skeleton.length +
    homograph.level.length +
    homograph.address.length +
    legacy.from.length +
    legacy.to.length +
    displayNames.vectors.length +
    displayNames.mailboxes.length;
  assert.ok(total >= 60, `${total} vectors`);
});

for (const v of parse.vectors) {
  test(`parse vector ${v.id}`, () => {
    const options = { mode: v.mode ?? 'input' } as const;
    if (v.expected.error !== undefined) {
      assert.equal(
        codeOf(() => parseAddress(v.input, options)),
        v.expected.error,
      );
      const r = tryParseAddress(v.input, options);
      assert.equal(r.ok, false);
      return;
    }
    const a = parseAddress(v.input, options);
    assert.deepEqual(
      { local: a.local, domain: a.domain, domainAscii: a.domainAscii, canonical: a.canonical },
      v.expected,
    );
  });
}

test('IDNA oracle: node:url domainToASCII (UTS #46, lenient) agrees on every valid domain', () => {
  for (const v of parse.vectors) {
    if (v.expected.error !== undefined) continue;
    const domain = v.input.slice(v.input.lastIndexOf('@') + 1);
    assert.equal(domainToASCII(domain), v.expected['domainAscii'], v.id);
  }
});

for (const v of homograph.skeleton) {
  test(`skeleton vector ${v.id}`, () => assert.equal(skeleton(v.input), v.expected));
}
for (const v of homograph.level) {
  test(`restriction level vector ${v.id}`, () =>
    assert.equal(restrictionLevel(v.input), v.expected));
}
for (const v of homograph.address) {
  test(`homograph verdict vector ${v.id}`, () => {
    if (v.expected.error !== undefined) {
      assert.equal(
        codeOf(() => parseAddress(v.input)),
        v.expected.error,
      );
      return;
    }
    const h = parseAddress(v.input).homograph;
    assert.equal(h.local.level, v.expected['local']);
    assert.equal(h.domain.level, v.expected['domain']);
    assert.equal(h.action, v.expected['action']);
    assert.deepEqual(h.reasons, v.expected['reasons']);
    assert.equal(h.domain.confusableWith, v.expected['confusableWith']);
    if (v.expected['domainWarnings'] !== undefined) {
      assert.deepEqual(h.domain.warnings, v.expected['domainWarnings']);
    }
  });
}

for (const v of legacy.from) {
  test(`legacy→NMTP vector ${v.id}`, () => {
    const options = v.smtputf8 === undefined ? {} : { smtputf8: v.smtputf8 };
    if (v.expected.error !== undefined) {
      assert.equal(
        codeOf(() => fromLegacyAddress(v.input, options)),
        v.expected.error,
      );
      return;
    }
    assert.equal(fromLegacyAddress(v.input, options).canonical, v.expected['canonical']);
  });
}
for (const v of legacy.to) {
  test(`NMTP→legacy vector ${v.id}`, () => {
    const a = parseAddress(v.input);
    const options = { smtputf8: v.smtputf8 ?? false };
    if (v.expected.error !== undefined) {
      assert.equal(
        codeOf(() => toLegacyAddress(a, options)),
        v.expected.error,
      );
      return;
    }
    assert.equal(toLegacyAddress(a, options), v.expected['legacy']);
  });
}

for (const v of displayNames.vectors) {
  test(`display name vector ${v.id}`, () => {
    if (v.expected.error !== undefined) {
      assert.equal(
        codeOf(() => validateDisplayName(v.input)),
        v.expected.error,
      );
      return;
    }
    assert.equal(validateDisplayName(v.input), v.input);
  });
}

for (const v of displayNames.mailboxes) {
  test(`mailbox list vector ${v.id}`, () => {
    if (!Array.isArray(v.expected)) {
      assert.equal(
        codeOf(() => parseMailboxList(v.input)),
        v.expected.error,
      );
      return;
    }
    const got = parseMailboxList(v.input).map((m) =>
      m.displayName === undefined
        ? { canonical: m.address.canonical }
        : { displayName: m.displayName, canonical: m.address.canonical },
    );
    assert.deepEqual(got, v.expected);
  });
}
