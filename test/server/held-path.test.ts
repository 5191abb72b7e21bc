/**
 * Where a cookie's held message is (issue 12): the cookie stores it relative to the maildir
 * (`held/<cookie>.nmtp`), so a maildir that was moved or restored elsewhere, or a command run
 * from another directory, still finds it; refs written before (absolute, or relative to the
 * server's working directory) are read by their file name in held/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { Mailbox } from '../../src/server/mailbox.ts';
import { heldPath, heldRef } from '../../src/server/mailbox-store.ts';
import type { StoredCookie } from '../../src/store/cookies.ts';

test('heldPath: the new form, old absolute and cwd-relative forms, and nothing outside held/', () => {
  assert.equal(heldRef('abc'), 'held/abc.nmtp');
  assert.equal(heldPath('/m', 'held/abc.nmtp'), '/m/held/abc.nmtp');
  assert.equal(heldPath('/new/place', '/old/place/held/abc.nmtp'), '/new/place/held/abc.nmtp');
  assert.equal(heldPath('/m', '.nmtp-run/maildir/held/abc.nmtp'), '/m/held/abc.nmtp');
  assert.equal(heldPath('/m', undefined), undefined);
  assert.equal(heldPath('/m', '../../etc/passwd'), undefined);
  assert.equal(heldPath('/m', 'held/..'), undefined);
});

const message = encodeMessage({
  trace: [],
  root: { fields: [{ name: 'Subject', value: 'held' }], body: new TextEncoder().encode('hi\r\n') },
});

for (const old of [
  {
    what: 'absolute, from before the move',
    ref: (at: string, c: string) => join(at, 'held', `${c}.nmtp`),
  },
  {
    what: "relative to the old server's working directory",
    ref: (_: string, c: string) => `.nmtp-run/maildir/held/${c}.nmtp`,
  },
  { what: 'relative to the maildir (written now)', ref: (_: string, c: string) => heldRef(c) },
]) {
  test(`approve in a moved maildir, the cookie's ref ${old.what}`, async () => {
    const base = mkdtempSync(join(tmpdir(), 'nmtp-held-path-'));
    const first = join(base, 'first');
    for (const d of ['held', 'cookies', 'new', 'tmp'])
      mkdirSync(join(first, d), { recursive: true });
    const cookie = 'ck_held_path_1';
    writeFileSync(join(first, 'held', `${cookie}.nmtp`), message);
    const now = Math.floor(Date.now() / 1000);
    const c: StoredCookie = {
      cookie,
      owner: 'example.org',
      rcpt: 'carol@example.net',
      state: 'deferred',
      issued: now,
      expires: now + 3600,
      min: 5,
      max: 60,
      ref: old.ref(first, cookie),
    };
    writeFileSync(join(first, 'cookies', `${cookie}.json`), JSON.stringify(c));
    const moved = join(base, 'restored');
    renameSync(first, moved);
    try {
      const mailbox = await Mailbox.open({ maildir: moved });
      const r = await mailbox.decideCookie(cookie, 'approve');
      assert.equal(r.state, 'accepted');
      assert.deepEqual(readdirSync(join(moved, 'new')), [`${r.id!}.nmtp`]);
      assert.equal(existsSync(join(moved, 'held', `${cookie}.nmtp`)), false);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
}
