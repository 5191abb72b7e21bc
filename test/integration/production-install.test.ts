/**
 * The production install, as docker/Dockerfile does it, without a Docker engine: the
 * files its COPY lines copy (tracked or new, never node_modules) go into a temporary
 * directory, `npm ci --omit=dev` installs the runtime dependencies there (from npm's
 * cache when it can), and from that copy, as an unprivileged user (nobody, as USER node
 * in the image) who owns only .nmtp-run/ (the image's chown), start:
 *
 * - the gateway, by the Dockerfile's ENTRYPOINT and CMD command (`start`, with a test
 *   configuration on loopback and ephemeral ports): SMTP answers 220, the NMTP receiver
 *   greets over TLS, /healthz answers 200; SIGTERM stops it with exit 0;
 * - `nmtp serve` on its defaults (a self-signed certificate made with openssl), which
 *   greets over TLS; SIGTERM stops it with exit 0.
 *
 * Also checked in the Dockerfile: openssl installed, the state directories under a VOLUME
 * and owned by the service's user. Slow (an npm install): about a minute.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const dockerfile = readFileSync(join(repo, 'docker/Dockerfile'), 'utf8');
const base = mkdtempSync(join(tmpdir(), 'nmtp-prod-'));
const app = join(base, 'app');
/** The image's USER: an unprivileged account (node in the image, nobody here). */
const USER = { uid: 65534, gid: 65534 };
const running = new Set<ChildProcess>();

/** The Dockerfile's instructions, one per logical line (continuations joined). */
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));
const all = (op: string): string[] =>
  instructions.filter((l) => l.startsWith(`${op} `)).map((l) => l.slice(op.length + 1).trim());
const json = (op: string): string[] => JSON.parse(all(op)[0]!) as string[];

after(() => {
  for (const c of running) c.kill('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

before(() => {
  // Readable by the unprivileged user; only .nmtp-run/ is its own (below).
  chmodSync(base, 0o755);
  mkdirSync(app);
  // What the COPY lines copy: git's files (tracked, or new and not ignored) under each source.
  const files = execFileSync(
    'git',
    ['ls-files', '-z', '--cached', '--others', '--exclude-standard'],
    {
      cwd: repo,
    },
  )
    .toString()
    .split('\0')
    .filter((f) => f !== '');
  for (const copy of all('COPY')) {
    const sources = copy.split(/\s+/).slice(0, -1);
    for (const s of sources) {
      for (const f of files.filter((x) => x === s || x.startsWith(`${s}/`))) {
        const from = join(repo, f);
        if (!existsSync(from) || lstatSync(from).isSymbolicLink()) continue;
        mkdirSync(dirname(join(app, f)), { recursive: true });
        copyFileSync(from, join(app, f));
        chmodSync(join(app, f), statSync(from).mode & 0o755);
      }
    }
  }
  assert.ok(
    all('RUN').some((r) => /\bnpm ci --omit=dev\b/.test(r)),
    'the image installs with npm ci --omit=dev',
  );
  // The same install, from npm's cache when it can (the registry otherwise).
  execFileSync('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], {
    cwd: app,
    stdio: ['ignore', 'ignore', 'inherit'],
    timeout: 600_000,
  });
  // What the image's chown gives the service's user, and nothing else.
  const state = join(app, '.nmtp-run');
  for (const d of ['gateway/queue', 'gateway/maildir'])
    mkdirSync(join(state, d), { recursive: true });
  for (const d of [
    state,
    join(state, 'gateway'),
    join(state, 'gateway/queue'),
    join(state, 'gateway/maildir'),
  ]) {
    chownSync(d, USER.uid, USER.gid);
  }
});

test('the Dockerfile: openssl installed, state under a VOLUME and owned by USER', () => {
  assert.ok(all('RUN').some((r) => /apt-get install .*\bopenssl\b/.test(r)));
  const volumes = json('VOLUME');
  for (const d of ['/app/.nmtp-run/gateway/queue', '/app/.nmtp-run/gateway/maildir']) {
    assert.ok(
      volumes.some((v) => d === v || d.startsWith(`${v}/`)),
      `${d} is on a volume`,
    );
  }
  assert.ok(all('RUN').some((r) => /chown -R node:node \/app\/\.nmtp-run/.test(r)));
  assert.deepEqual(all('USER'), ['node']);
  // Dev dependencies are not there; the loader the programs need is.
  assert.equal(existsSync(join(app, 'node_modules/typescript')), false);
  assert.ok(existsSync(join(app, 'node_modules/tsx/package.json')));
});

/** Runs `args` (after node) in the copy as the unprivileged user. */
function run(args: string[]): {
  child: ChildProcess;
  exited: Promise<number | null>;
  out: () => string;
} {
  const child = spawn(process.execPath, args, {
    cwd: app,
    ...USER,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: app },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  return { child, exited, out: () => text };
}

/** Waits until `re` matches what the child printed; rejects if it exits first. */
function printed(p: ReturnType<typeof run>, re: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const look = (): void => {
      const m = re.exec(p.out());
      if (m) resolve(m);
    };
    p.child.stdout!.on('data', look);
    p.child.stderr!.on('data', look);
    void p.exited.then((code) => reject(new Error(`exited ${code}:\n${p.out()}`)));
    look();
  });
}

/** The first line a server sends, over TCP or TLS. */
function firstLine(port: number, tls: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls
      ? tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false })
      : tcpConnect({ host: '127.0.0.1', port });
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('\n')) {
        s.destroy();
        resolve(text.slice(0, text.indexOf('\n')));
      }
    });
    s.on('error', reject);
  });
}

async function stop(p: ReturnType<typeof run>): Promise<void> {
  p.child.kill('SIGTERM');
  assert.equal(await p.exited, 0, p.out());
}

test('the gateway starts from the production install (ENTRYPOINT start), answers, and stops', async () => {
  const config = join(app, '.nmtp-run', 'test.yaml');
  writeFileSync(
    config,
    stringify({
      smtp: { listeners: [{ protocol: 'smtp', listen: '127.0.0.1:0' }] },
      nmtp: { receiver: { listen: '127.0.0.1:0' } },
      admin: { listen: '127.0.0.1:0' },
      log: { format: 'json', level: 'warn' },
    }),
  );
  const [node, ...entry] = json('ENTRYPOINT');
  assert.equal(node, 'node');
  const cmd = json('CMD');
  assert.equal(cmd[0], 'start');
  const p = run([...entry, 'start', '--config', config]);
  const m = await printed(p, /nmtp-gateway: ready \(([^;]*);/);
  const ports = Object.fromEntries(m[1]!.split(' ').map((kv) => kv.split('='))) as Record<
    string,
    string
  >;
  const port = (name: string): number => {
    const k = Object.keys(ports).find((x) => x.startsWith(name));
    assert.ok(k !== undefined, `${name} in ${m[0]}`);
    return Number(ports[k]);
  };
  assert.match(await firstLine(port('smtp'), false), /^220 /);
  assert.match(await firstLine(port('nmtp'), true), /^220 /);
  const health = await fetch(`http://127.0.0.1:${port('admin')}/healthz`);
  assert.equal(health.status, 200);
  await health.arrayBuffer();
  await stop(p);
  assert.ok(readdirSync(join(app, '.nmtp-run/gateway/queue')).length > 0, 'the queue was written');
});

test('`nmtp serve` starts from the production install on its defaults, greets over TLS, and stops', async () => {
  const p = run(['bin/nmtp', 'serve', '--listen', '127.0.0.1:0']);
  const m = await printed(p, /listening on 127\.0\.0\.1:(\d+)/);
  assert.match(await firstLine(Number(m[1]), true), /^220 /);
  await stop(p);
  assert.ok(existsSync(join(app, '.nmtp-run/tls')), 'the demo certificate was made (openssl)');
});
