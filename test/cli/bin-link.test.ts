/**
 * The programs as a new user starts them (issue 12): through npm's bin links
 * (`node_modules/.bin/nmtp` → the package's bin file, `npx nmtp`) and from any working
 * directory. The bins register tsx from their own location: `--import tsx` (the old
 * shebang) resolved tsx from the working directory, and outside the repository found
 * none. The links are made as npm makes them, from package.json's "bin".
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
  bin: Record<string, string>;
};
// A project that depends on the package, as `npm install` links it.
const project = mkdtempSync(join(tmpdir(), 'nmtp-bin-'));
mkdirSync(join(project, 'node_modules', '.bin'), { recursive: true });
symlinkSync(repo, join(project, 'node_modules', 'nmtp-gateway'));
for (const [name, file] of Object.entries(pkg.bin)) {
  symlinkSync(join('..', 'nmtp-gateway', file), join(project, 'node_modules', '.bin', name));
}
const elsewhere = mkdtempSync(join(tmpdir(), 'nmtp-cwd-'));

after(() => {
  rmSync(project, { recursive: true, force: true });
  rmSync(elsewhere, { recursive: true, force: true });
});

test('`npx nmtp --help` in a project that installed the package prints the commands', () => {
  const r = spawnSync('npx', ['--no-install', 'nmtp', '--help'], { cwd: project });
  assert.equal(r.status, 0, r.stderr.toString());
  assert.match(r.stdout.toString(), /^nmtp — /);
  assert.match(r.stdout.toString(), /mailbox list/);
});

test('the bin links run from another directory: nmtp and nmtp-gateway', () => {
  for (const [name, first] of [
    ['nmtp', /^nmtp — /],
    ['nmtp-gateway', /^nmtp-gateway — /],
  ] as const) {
    const r = spawnSync(join(project, 'node_modules', '.bin', name), ['--help'], {
      cwd: elsewhere,
    });
    assert.equal(r.status, 0, `${name}: ${r.stderr.toString()}`);
    assert.match(r.stdout.toString(), first);
  }
});

test('a command runs, not only the help: nmtp keys generate from another directory', () => {
  const r = spawnSync(
    join(project, 'node_modules', '.bin', 'nmtp'),
    ['keys', 'generate', '--domain', 'example.org', '--selector', 's1'],
    { cwd: elsewhere },
  );
  assert.equal(r.status, 0, r.stderr.toString());
  assert.match(r.stdout.toString(), /^s1\._nmtpkey\.example\.org\. IN TXT "v=NMTPKEY1; /m);
  assert.match(readFileSync(join(elsewhere, 's1.example.org.key'), 'utf8'), /PRIVATE KEY/);
});

test('no program source starts with a "#!" line: bin/ starts them (tsx cannot lex a dynamic import after one)', () => {
  // A `#!… --import tsx` first line, with esbuild's keepNames preamble after it, makes tsx's
  // dynamic-import transform fail ("Parse error …:2:113") in any file that has an import().
  for (const f of ['src/cli/nmtp.ts', 'src/cli/gateway.ts']) {
    assert.ok(!readFileSync(join(repo, f), 'utf8').startsWith('#!'), f);
  }
});
