/**
 * The README's run command (`npm start` = `nmtp serve` on its embedded defaults): with no
 * options it makes a self-signed certificate, listens on loopback over TLS and greets as
 * an NMTP/1 transfer server. Run in a temporary directory (the defaults are relative to the
 * working directory) and on an ephemeral port instead of the default one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../src/cli/nmtp.ts', import.meta.url));
const tsx = import.meta.resolve('tsx');

test('nmtp serve on its defaults greets over TLS on loopback and stops on SIGTERM', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-serve-'));
  const child = spawn(
    process.execPath,
    ['--import', tsx, cli, 'serve', '--listen', '127.0.0.1:0'],
    {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    let out = '';
    const address = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on (127\.0\.0\.1:\d+)/.exec(out);
        // Once it has said what to do next (the last of those lines).
        if (m && out.includes('# stop:')) resolve(m[1]!);
      });
      child.once('exit', (code) => reject(new Error(`serve exited ${code}`)));
    });
    const [host, port] = address.split(':');
    const greeting = await new Promise<string>((resolve, reject) => {
      const s = connect({
        host,
        port: Number(port),
        rejectUnauthorized: false,
        servername: 'localhost',
      });
      s.once('data', (d: Buffer) => {
        resolve(d.toString());
        s.end();
      });
      s.once('error', reject);
    });
    assert.match(
      greeting,
      /^220 2\.0\.0 version=NMTP\/1 service=transfer server=localhost challenge=/,
    );
    assert.ok(existsSync(join(dir, '.nmtp-run/tls/localhost.crt')));
    // What to do next, and how to pass options (through npm too); the demo's poll window.
    assert.match(out, /^# held recipients: nmtp mailbox list --maildir \.nmtp-run\/maildir/m);
    assert.match(out, /^# deferred senders poll every 5–60 s/m);
    assert.match(out, /^# every option: nmtp serve --help; through npm: npm run start:nmtp -- /m);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
