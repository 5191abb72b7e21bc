/**
 * The README's reverse walk-through ("The other way: an NMTP message to a legacy (Postfix)
 * user"), run exactly as written (the lines between its reverse markers, through bash from
 * the repository's root), only with ephemeral ports in place of the ones it names: an NMTP
 * sender's message reaches the sink through the gateway (250 in the session), then, with the
 * sink down, a cookie that turns accepted once the sink is back and the queue retried. A
 * README change that breaks the walk-through fails here.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeTcpPort } from '../support/net.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const base = mkdtempSync(join(tmpdir(), 'nmtp-readme-rev-'));
let group: number | undefined;

after(() => {
  // The walk-through's processes run in its shell's background: if it stopped early, they
  // are still in its process group.
  if (group !== undefined) {
    try {
      process.kill(-group, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  rmSync(base, { recursive: true, force: true });
});

test("the README's reverse walk-through: NMTP in, SMTP out, a cookie that turns accepted", async () => {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  const section = /<!-- reverse:begin -->\n```sh\n([\s\S]*?)```\n<!-- reverse:end -->/.exec(readme);
  assert.ok(section, 'the walk-through is in the README between its markers');
  let script = section[1]!;
  for (const port of ['2525', '2526', '4025', '9465']) {
    assert.ok(script.includes(`127.0.0.1:${port}`), `the walk-through names port ${port}`);
    script = script.replaceAll(`127.0.0.1:${port}`, `127.0.0.1:${await freeTcpPort()}`);
  }
  const bash = spawn('bash', ['-e', '-c', script], {
    cwd: repo,
    env: { ...process.env, TMPDIR: base },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  group = bash.pid;
  let out = '';
  let err = '';
  bash.stdout.on('data', (d: Buffer) => (out += d.toString()));
  bash.stderr.on('data', (d: Buffer) => (err += d.toString()));
  // A walk-through that hangs (a wait that never ends) fails here instead of hanging the run.
  const limit = setTimeout(() => process.kill(-bash.pid!, 'SIGTERM'), 120_000);
  const code = await new Promise<number | null>((resolve) => bash.once('exit', resolve));
  clearTimeout(limit);
  assert.equal(code, 0, `${out}\n${err}`);
  group = undefined;
  assert.match(out, /^alice@legacy\.nmtp\.test 250 2\.0\.0 .*id=r[a-z2-7]{26}$/m, out);
  assert.match(out, /^Received: from sender\.example \(\[127\.0\.0\.1\]\)$/m, out);
  assert.match(out, /^Authentication-Results: localhost; nmtp=pass header\.d=sender\.example$/m);
  assert.match(out, /^alice@legacy\.nmtp\.test 350 2\.0\.0 .*cookie=gw-/m, out);
  assert.match(out, /state=accepted id=r[a-z2-7]{26}/, out);
});
