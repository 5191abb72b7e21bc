/**
 * docs/mailbox-policy.md documents the reference mailbox's policy.json where operators look
 * (issue 12): its example is a policy the mailbox reads and decides by as the page says,
 * and the README links the page.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Mailbox } from '../../src/server/mailbox.ts';

const page = readFileSync(new URL('../../docs/mailbox-policy.md', import.meta.url), 'utf8');

test('the page documents every key, and the README links it', () => {
  for (const key of ['reject', 'defer', 'preview', 'redirect']) {
    assert.match(page, new RegExp(`^\\| \`${key}\` \\|`, 'm'), key);
  }
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  assert.match(readme, /docs\/mailbox-policy\.md/);
});

test("the page's example is read and decided by as the page says", async () => {
  const example = /```json\n([\s\S]*?)```/.exec(page)![1]!;
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-policy-'));
  try {
    writeFileSync(join(dir, 'policy.json'), example);
    const m = await Mailbox.open({ maildir: dir });
    const decide = (rcpt: string, redirectFailed?: true) =>
      Promise.resolve(m.decideRecipient({ rcpt, ...(redirectFailed ? { redirectFailed } : {}) }));
    assert.deepEqual(await decide('dave@example.net'), {
      kind: 'reject',
      text: 'refused by policy',
    });
    assert.equal((await decide('bob@example.net')).kind, 'redirect');
    assert.equal((await decide('bob@example.net', true)).kind, 'accept');
    assert.equal((await decide('carol@example.net')).kind, 'accept');
    // A preview recipient turns eager data off.
    assert.equal(await m.eagerMax(), 0);
    const view = await m.chooseView({ domain: 'example.org', recipients: ['grace@example.net'] });
    assert.deepEqual(view.choice, { kind: 'view', view: 'headers' });
    if (view.sink !== undefined) await m.discard(view.sink);
    await m.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
