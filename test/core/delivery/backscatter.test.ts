import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dsnPermitted } from '../../../src/core/delivery/index.ts';

const base = { returnPath: 'alice@mail.legacy.example', authenticated: false, trustedRelay: false };

test('never to the null sender, whatever the trust', () => {
  for (const returnPath of ['', '<>', ' ']) {
    assert.equal(
      dsnPermitted({ ...base, returnPath, authenticated: true, trustedRelay: true }).allowed,
      false,
    );
  }
});

test('authenticated clients, trusted relays, SPF pass, aligned DKIM pass are believed', () => {
  assert.equal(dsnPermitted({ ...base, authenticated: true }).allowed, true);
  assert.equal(dsnPermitted({ ...base, trustedRelay: true }).allowed, true);
  assert.equal(dsnPermitted({ ...base, spf: 'pass' }).allowed, true);
  assert.equal(dsnPermitted({ ...base, dkimPassDomains: ['legacy.example'] }).allowed, true);
  assert.equal(dsnPermitted({ ...base, dkimPassDomains: ['MAIL.Legacy.Example.'] }).allowed, true);
});

test('everything else is possible backscatter: no DSN', () => {
  for (const spf of [undefined, 'fail', 'softfail', 'neutral', 'none', 'temperror']) {
    assert.equal(
      dsnPermitted({ ...base, ...(spf === undefined ? {} : { spf }) }).allowed,
      false,
      spf,
    );
  }
  assert.equal(
    dsnPermitted({ ...base, dkimPassDomains: ['other.example', 'example'] }).allowed,
    false,
  );
  assert.equal(dsnPermitted({ ...base, dkimPassDomains: ['xlegacy.example'] }).allowed, false);
  assert.equal(dsnPermitted({ ...base, returnPath: 'nodomain', spf: 'pass' }).allowed, false);
});
