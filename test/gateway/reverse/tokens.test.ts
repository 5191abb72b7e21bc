/** The reverse direction's cookies and return-path tags (src/gateway/reverse/tokens.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { keyPairFromSeed } from '../../../src/core/keys/index.ts';
import { createTokens, isReverseEntryId } from '../../../src/gateway/reverse/tokens.ts';

const t = createTokens(keyPairFromSeed(new Uint8Array(32).fill(7)));
const other = createTokens(keyPairFromSeed(new Uint8Array(32).fill(8)));
const id = t.entryId((n) => randomBytes(n));

test('entry ids are "r" + 26 base32 characters', () => {
  assert.ok(isReverseEntryId(id), id);
});

test('a cookie opens for the client domain it was issued to, case-insensitively, and only there', () => {
  const c = t.cookie(id, 3, 'sender.example');
  // "1*128( ALPHA / DIGIT / "-" / "_" )" (§60.4).
  assert.match(c, /^[A-Za-z0-9_-]{1,128}$/);
  assert.deepEqual(t.openCookie(c, 'sender.example'), { entryId: id, index: 3 });
  assert.deepEqual(t.openCookie(c, 'SENDER.example'), { entryId: id, index: 3 });
  assert.equal(t.openCookie(c, 'other.example'), undefined);
  // Another gateway key, another index, a changed MAC: all unknown.
  assert.equal(other.openCookie(c, 'sender.example'), undefined);
  assert.equal(t.openCookie(c.replace('-3-', '-4-'), 'sender.example'), undefined);
  // The MAC's first character changed (to another one: the random id may make it "0").
  const flipped = c.replace(/^gw-(.)/, (_, ch: string) => `gw-${ch === '0' ? '1' : '0'}`);
  assert.notEqual(flipped, c);
  assert.equal(t.openCookie(flipped, 'sender.example'), undefined);
  assert.equal(t.openCookie('gw-', 'sender.example'), undefined);
  assert.equal(t.openCookie('ck-123', 'sender.example'), undefined);
});

test('a tag (ENVID, return path) opens to its entry in any case; a forged one does not', () => {
  const tag = t.tag(id);
  assert.equal(t.openTag(tag), id);
  assert.equal(t.openTag(tag.toUpperCase()), id);
  assert.equal(other.openTag(tag), undefined);
  assert.equal(t.openTag(`${id}.${'0'.repeat(32)}`), undefined);
  assert.equal(t.openTag('garbage'), undefined);
});

test('the §52.12.4 vectors (computed independently by test/vectors/reverse/generate.py)', () => {
  const file = new URL('../../vectors/reverse/tokens.json', import.meta.url);
  const { vectors } = JSON.parse(readFileSync(file, 'utf8')) as {
    vectors: {
      seed_hex: string;
      random_hex: string;
      entry_id: string;
      index: number;
      client_domain: string;
      cookie: string;
      tag: string;
    }[];
  };
  assert.ok(vectors.length >= 3);
  for (const v of vectors) {
    const tk = createTokens(keyPairFromSeed(Buffer.from(v.seed_hex, 'hex')));
    const id = tk.entryId(() => Buffer.from(v.random_hex, 'hex'));
    assert.equal(id, v.entry_id);
    assert.equal(tk.cookie(id, v.index, v.client_domain), v.cookie);
    assert.equal(tk.tag(id), v.tag);
    assert.deepEqual(tk.openCookie(v.cookie, v.client_domain), { entryId: id, index: v.index });
  }
});
