/** The durable cookie store: one file per cookie, atomic writes, no path tricks. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CookieStore, type StoredCookie } from '../../src/store/cookies.ts';

const cookie = (name: string, state: StoredCookie['state'] = 'deferred'): StoredCookie => ({
  cookie: name,
  owner: 'example.org',
  rcpt: 'bob@example.net',
  state,
  issued: 1795000000,
  expires: 1795086400,
  min: 60,
  max: 3600,
});

test('put, get, overwrite and list; a second store on the same directory sees it all', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-cookies-'));
  try {
    const a = await CookieStore.open(dir);
    await a.put(cookie('ck-1'));
    await a.put(cookie('ck-2'));
    await a.put({ ...cookie('ck-1', 'accepted'), id: 'r-1' });
    // A "restart": a new store object reads what the first one wrote.
    const b = await CookieStore.open(dir);
    assert.deepEqual(await b.get('ck-1'), { ...cookie('ck-1', 'accepted'), id: 'r-1' });
    assert.deepEqual((await b.list()).map((c) => c.cookie).sort(), ['ck-1', 'ck-2']);
    assert.equal(await b.get('ck-3'), undefined);
    // Writes go through a temp file and a rename: nothing else is left in the directory.
    assert.deepEqual(readdirSync(dir).sort(), ['ck-1.json', 'ck-2.json']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('malformed cookie names never reach the file system', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-cookies-'));
  try {
    const s = await CookieStore.open(dir);
    for (const bad of ['../etc/passwd', 'a/b', '', 'x'.repeat(129), 'a.json', 'ä']) {
      assert.equal(await s.get(bad), undefined, bad);
      await assert.rejects(s.put(cookie(bad)), /NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN|malformed/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
