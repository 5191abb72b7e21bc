/**
 * Runs the test tiers with node's own test runner.
 *
 * Node 20 neither expands `**` globs nor finds tests in a directory given to `--test`
 * (it silently runs none), so this script lists the files itself and refuses to pass
 * with zero tests.
 *
 *   node --import tsx test/run.ts unit|integration|all [substring-filter]
 *
 * Tiers: `unit` is everything under test/ except test/integration/; `integration` needs
 * system services, which test/harness/ installs and starts on loopback, ephemeral ports.
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ensureDebianPackages, listRequiredPackages } from './harness/debian.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const testDir = join(root, 'test');

function walk(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir).sort()) {
    if (name === 'vectors' || name === 'fixtures' || name === 'node_modules') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const tier = process.argv[2] ?? 'all';
const filter = process.argv[3];
if (!['unit', 'integration', 'all'].includes(tier)) {
  console.error(`usage: test/run.ts unit|integration|all [filter]`);
  process.exit(2);
}
const isIntegration = (f: string): boolean => relative(testDir, f).startsWith('integration');
const files = walk(testDir, [])
  .filter((f) => tier === 'all' || (tier === 'integration') === isIntegration(f))
  .filter((f) => filter === undefined || f.includes(filter));

if (files.length === 0) {
  console.error(`no test files found for tier "${tier}"${filter ? ` matching "${filter}"` : ''}`);
  process.exit(1);
}

ensureDebianPackages(
  listRequiredPackages(new URL('./harness/debian-packages.txt', import.meta.url)),
);

const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', ...files],
  { stdio: 'inherit', cwd: root },
);
process.exit(result.status ?? 1);
