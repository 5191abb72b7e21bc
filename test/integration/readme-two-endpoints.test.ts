/**
 * The README's "Two NMTP endpoints, no DNS server" walk-through, run exactly as written
 * (the lines between its two-endpoints markers, through bash from the repository's root),
 * only with ephemeral ports in place of the ones it names: two `nmtp serve` processes that
 * know each other through --key-record and --srv alone deliver alice's message — bob's copy
 * at once, carol's held, listed (`nmtp mailbox list`), shown deferred with its cookie, next
 * poll and expiry (`nmtp submission status`), approved, and accepted at the sender's next
 * poll. A README change that breaks the walk-through fails here.
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
const base = mkdtempSync(join(tmpdir(), 'nmtp-readme-'));
let group: number | undefined;

after(() => {
  // The walk-through's servers run in its shell's background: if it stopped early, they
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

test("the README's two-endpoint walk-through delivers with no DNS server", async () => {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  const section =
    /<!-- two-endpoints:begin -->\n```sh\n([\s\S]*?)```\n<!-- two-endpoints:end -->/.exec(readme);
  assert.ok(section, 'the walk-through is in the README between its markers');
  let script = section[1]!;
  for (const port of ['4125', '4126', '4587']) {
    assert.ok(script.includes(`127.0.0.1:${port}`), `the walk-through names port ${port}`);
    script = script.replaceAll(`127.0.0.1:${port}`, `127.0.0.1:${await freeTcpPort()}`);
  }
  const bash = spawn('bash', ['-e', '-c', script], {
    cwd: repo,
    // mktemp -d makes its directory here.
    env: { ...process.env, TMPDIR: base, NMTP_PASSWORD: '' },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  group = bash.pid;
  let out = '';
  let err = '';
  bash.stdout.on('data', (d: Buffer) => (out += d.toString()));
  bash.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => bash.once('exit', resolve));
  assert.equal(code, 0, `${out}\n${err}`);
  group = undefined;
  assert.match(out, /^# private key \(PKCS#8 PEM, mode 0600\): org\.key$/m);
  assert.match(out, /^\S+ bob@example\.net accepted$/m);
  assert.match(
    out,
    /^\S+ carol@example\.net deferred cookie=([A-Za-z0-9_-]+) next-poll=\S+Z expires=\S+Z$/m,
  );
  const cookie = /carol@example\.net deferred cookie=([A-Za-z0-9_-]+)/.exec(out)![1]!;
  assert.match(
    out,
    new RegExp(`^${cookie} deferred carol@example\\.net from=example\\.org .* held$`, 'm'),
  );
  assert.match(out, new RegExp(`^${cookie} accepted id=`, 'm'));
  assert.match(out, /^\S+ carol@example\.net accepted$/m);
  // `ls mail-b/new`: bob's copy and carol's.
  assert.equal(out.match(/^[A-Za-z0-9_-]+\.nmtp$/gm)?.length, 2, out);
});
