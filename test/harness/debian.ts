/**
 * Makes sure the Debian packages the tests need are installed, installing the missing ones
 * with apt-get (CI and fresh machines run as root with Debian's registry reachable). A test
 * that needs a tool fails when the tool is missing; it is never skipped silently, so this
 * runs before any test.
 */
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

export function listRequiredPackages(file: URL): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

function isInstalled(pkg: string): boolean {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

export function ensureDebianPackages(packages: string[]): void {
  const missing = packages.filter((p) => !isInstalled(p));
  if (missing.length === 0) return;
  console.error(`test harness: installing Debian packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const run = (args: string[]): void => {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
    if (r.status !== 0) {
      throw new Error(
        `apt-get ${args.join(' ')} failed (exit ${r.status ?? r.signal}); the tests need ` +
          `${missing.join(', ')} — install them by hand or run as root`,
      );
    }
  };
  run(['update', '-qq']);
  // Answers for packages that would otherwise configure themselves for the machine (a
  // system Postfix on port 25): DEBIAN_FRONTEND=noninteractive alone takes the defaults.
  const selections = readFileSync(new URL('./debconf-selections.txt', import.meta.url), 'utf8');
  const preseed = spawnSync('debconf-set-selections', [], {
    input: selections,
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  if (preseed.status !== 0) {
    throw new Error(`debconf-set-selections failed (exit ${preseed.status ?? preseed.signal})`);
  }
  run(['install', '-y', '-qq', '--no-install-recommends', ...missing]);
}
