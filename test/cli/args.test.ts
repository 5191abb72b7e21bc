/**
 * `positionalsLast`: cookies and ids are base64url and may begin with "-" (§60.10.5); the CLI
 * must take them as positionals, not as unknown options.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { positionalsLast } from '../../src/cli/args.ts';

const options = {
  at: { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

const parse = (args: string[]) =>
  parseArgs({
    args: positionalsLast(args, options),
    options,
    allowPositionals: true,
    strict: true,
  });

test('a cookie beginning with "-" is a positional, wherever it stands', () => {
  for (const args of [
    ['-Kx3_abc', '--at', 'example.net'],
    ['--at', 'example.net', '-Kx3_abc'],
    ['--at=example.net', '-Kx3_abc'],
  ]) {
    const { values, positionals } = parse(args);
    assert.deepEqual(positionals, ['-Kx3_abc'], args.join(' '));
    assert.equal(values.at, 'example.net');
  }
});

test('order of positionals is kept; declared short flags stay flags; "--" passes the rest', () => {
  const { values, positionals } = parse([
    'one',
    '-v',
    '-two',
    '--at',
    '-x',
    'three',
    '--',
    '--four',
  ]);
  assert.deepEqual(positionals, ['one', '-two', 'three', '--four']);
  assert.equal(values.verbose, true);
  // A string option's value is taken even when it begins with "-".
  assert.equal(values.at, '-x');
});

test('an unknown long option is still refused', () => {
  assert.throws(() => parse(['--bogus', 'cookie']), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' });
});

test('no positionals: no "--" is added, and option values are joined with "="', () => {
  assert.deepEqual(positionalsLast(['--at', 'x', '-h'], options), ['--at=x', '-h']);
});

test('through the CLI: `nmtp mailbox approve -K…` looks the cookie up instead of refusing an option', () => {
  const cli = fileURLToPath(new URL('../../src/cli/nmtp.ts', import.meta.url));
  const maildir = mkdtempSync(join(tmpdir(), 'nmtp-args-'));
  const r = spawnSync(process.execPath, [
    '--import',
    'tsx',
    cli,
    'mailbox',
    'approve',
    '-Kabc',
    '--maildir',
    maildir,
  ]);
  assert.equal(r.status, 65, r.stderr.toString());
  rmSync(maildir, { recursive: true, force: true });
  assert.match(r.stderr.toString(), /NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN: -Kabc/);
});
