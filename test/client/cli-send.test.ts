/**
 * `nmtp send --file` (streamed from the file, redirects followed) and `nmtp status` with
 * several cookies (pipelined in one session), against a mailbox receiver over TLS.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { seedToPem } from '../../src/core/keys/index.ts';
import type { Serving } from '../../src/server/serve.ts';
import { mailbox, seed, smallMessage, world, type World } from './helpers.ts';

const cli = fileURLToPath(new URL('../../src/cli/nmtp.ts', import.meta.url));
let w: World;
let server: Serving;

before(async () => {
  w = world('nmtp-cli-send-');
  server = await mailbox(w, 'mail');
  writeFileSync(join(w.dir, 'key.pem'), seedToPem(seed));
});

after(async () => {
  await server.close();
  w.cleanup();
});

/** Runs the CLI without blocking this process (the server runs here). */
async function nmtp(args: string[]): Promise<{ status: number | null; out: string }> {
  const p = spawn(process.execPath, ['--import', 'tsx', cli, ...args]);
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const status = await new Promise<number | null>((resolve) => p.on('close', resolve));
  return { status, out };
}

const clientArgs = (): string[] => [
  '--key',
  join(w.dir, 'key.pem'),
  '--domain',
  'example.org',
  '--selector',
  's1',
  '--server',
  `127.0.0.1:${server.port}`,
  '--ca',
  w.cert.certFile,
];

test('nmtp send --file: one answer line per recipient', async () => {
  const file = join(w.dir, 'm.nmtp');
  writeFileSync(file, smallMessage('cli'));
  const r = await nmtp([
    'send',
    '--file',
    file,
    '--to',
    'a@example.net',
    '--to',
    'b@example.net',
    ...clientArgs(),
  ]);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /^a@example\.net 250 2\.0\.0 rcpt=a@example\.net id=\S+$/m);
  assert.match(r.out, /^b@example\.net 250 2\.0\.0 rcpt=b@example\.net id=\S+$/m);
});

test('nmtp status with several cookies: one answer each, in order', async () => {
  const r = await nmtp(['status', 'ck-one', 'ck-two', '--at', 'example.net', ...clientArgs()]);
  assert.equal(r.status, 0, r.out);
  const lines = r.out.trim().split('\n');
  assert.equal(lines.length, 2, r.out);
  assert.match(
    lines[0]!,
    /^ck-one 550 5\.5\.4 cookie=ck-one err=NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN$/,
  );
  assert.match(
    lines[1]!,
    /^ck-two 550 5\.5\.4 cookie=ck-two err=NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN$/,
  );
});
