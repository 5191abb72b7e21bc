/**
 * `nmtp serve` as its own process (so its memory is its own) under a connection flood and
 * non-TLS / downgraded clients: its memory stays bounded, it keeps greeting legitimate
 * clients, and it exits cleanly on SIGTERM afterwards. Also: the command refuses to serve
 * plaintext beyond loopback. The socket-level details are in test/server/abuse.test.ts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../src/cli/nmtp.ts', import.meta.url));
const tsx = import.meta.resolve('tsx');
const dir = mkdtempSync(join(tmpdir(), 'nmtp-abuse-'));
let child: ChildProcess;
let port: number;
let ca: Buffer;

before(async () => {
  // The embedded defaults: a self-signed certificate for "localhost", TLS on loopback.
  child = spawn(process.execPath, ['--import', tsx, cli, 'serve', '--listen', '127.0.0.1:0'], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)));
  });
  ca = readFileSync(join(dir, '.nmtp-run/tls/localhost.crt'));
});

after(() => {
  child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** The server process's resident set (Linux). */
function serverRss(): number {
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]) * 1024;
}

const tls = (localAddress = '127.0.0.1', maxVersion?: 'TLSv1.2'): TLSSocket =>
  tlsConnect({
    socket: tcpConnect({ host: '127.0.0.1', port, localAddress }),
    servername: 'localhost',
    ca,
    ...(maxVersion === undefined ? {} : { maxVersion }),
  });

/** The first line the server sends, or undefined when it closes without one. */
function firstLine(s: TLSSocket | Socket): Promise<string | undefined> {
  return new Promise((resolve) => {
    let buf = '';
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const i = buf.indexOf('\r\n');
      if (i >= 0) resolve(buf.slice(0, i));
    });
    s.on('close', () => resolve(undefined));
  });
}

/** A legitimate client: greeting, NOOP, QUIT. */
async function greets(): Promise<void> {
  const s = tls();
  const lines: string[] = [];
  let buf = '';
  const done = new Promise<void>((resolve) => s.on('close', resolve));
  s.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    for (let i = buf.indexOf('\r\n'); i >= 0; i = buf.indexOf('\r\n')) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 2);
      lines.push(l);
      if (l.startsWith('220 ')) s.write('NOOP\r\nQUIT\r\n');
    }
  });
  await done;
  assert.match(lines[0] ?? '', /^220 2\.0\.0 version=NMTP\/1 service=transfer server=localhost /);
  assert.deepEqual(lines.slice(1), ['250 2.0.0', '221 2.0.0']);
}

test(
  'a flood of 1,000 TLS connections and hostile non-TLS clients: bounded server memory, still serving',
  { timeout: 120_000 },
  async (t) => {
    await greets();
    const before = serverRss();
    const flood = Array.from({ length: 1000 }, () => tls('127.0.0.2'));
    const first = await Promise.all(flood.map(firstLine));
    // 20 sessions per address by default; the rest refused with 421 or closed at accept.
    assert.equal(first.filter((l) => l?.startsWith('220 ') === true).length, 20);
    for (const l of first) {
      if (l === undefined || l.startsWith('220 ')) continue;
      assert.equal(l, '421 4.7.0 err=NMTP_ERR_TRANSPORT_TOO_MANY_CONNECTIONS');
    }
    // Non-TLS and downgraded clients, from a third address: no greeting, closed.
    const hostile: (TLSSocket | Socket)[] = [];
    for (let i = 0; i < 20; i++) {
      const s = tcpConnect({ host: '127.0.0.1', port, localAddress: '127.0.0.3' });
      s.write(i % 2 === 0 ? 'EHLO client.example\r\nSTARTTLS\r\n' : randomBytes(2048));
      hostile.push(s);
      hostile.push(tls('127.0.0.3', 'TLSv1.2'));
    }
    for (const l of await Promise.all(hostile.map(firstLine))) assert.equal(l, undefined);
    await greets();
    const grown = serverRss() - before;
    t.diagnostic(`server RSS growth with the flood open: ${(grown / 1048576).toFixed(1)} MiB`);
    // Generous: the server holds 20 sessions and at most 20 more connections from the flood.
    assert.ok(grown < 64 * 1024 * 1024, `server RSS grew by ${grown} octets`);
    for (const s of flood) s.destroy();
    await greets();
    assert.equal(child.exitCode, null);
  },
);

test('nmtp serve refuses plaintext beyond loopback', () => {
  const r = spawnSync(
    process.execPath,
    ['--import', tsx, cli, 'serve', '--plaintext', '--listen', '0.0.0.0:0'],
    { cwd: dir, timeout: 60_000 },
  );
  assert.notEqual(r.status, 0);
  assert.match(
    r.stderr.toString(),
    /NMTP_ERR_TRANSPORT_LOCAL.*loopback|loopback.*NMTP_ERR_TRANSPORT_LOCAL/,
  );
});

test('the server exits cleanly on SIGTERM after all that', async () => {
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});
