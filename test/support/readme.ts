/**
 * Runs one of the README's walk-throughs exactly as written: the shell lines between
 * `<!-- NAME:begin -->` and `<!-- NAME:end -->`, through `bash -e` from the repository's
 * root, with each port it names replaced by a free ephemeral one (the only change). Its
 * background processes are in the shell's process group, which is ended when the script
 * exits, hangs past `limitMs`, or the test stops early (`cleanup`).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeTcpPort } from './net.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));

export interface ReadmeRun {
  /** The script's standard output and error. */
  readonly out: string;
  readonly err: string;
  readonly code: number | null;
}

export interface ReadmeRunner {
  run(o: {
    readonly ports: readonly string[];
    readonly env?: NodeJS.ProcessEnv;
    readonly limitMs?: number;
  }): Promise<ReadmeRun>;
  /** Ends what is left of the script's process group and removes its temporary directory. */
  cleanup(): void;
}

export function readmeSection(name: string): ReadmeRunner {
  const base = mkdtempSync(join(tmpdir(), `nmtp-readme-${name}-`));
  let group: number | undefined;
  const end = (): void => {
    if (group === undefined) return;
    try {
      process.kill(-group, 'SIGTERM');
    } catch {
      // already gone
    }
  };
  return {
    async run(o) {
      const readme = readFileSync(join(repo, 'README.md'), 'utf8');
      const section = new RegExp(
        `<!-- ${name}:begin -->\\n\`\`\`sh\\n([\\s\\S]*?)\`\`\`\\n<!-- ${name}:end -->`,
      ).exec(readme);
      assert.ok(section, `the walk-through is in the README between its ${name} markers`);
      let script = section[1]!;
      for (const port of o.ports) {
        assert.ok(script.includes(`127.0.0.1:${port}`), `the walk-through names port ${port}`);
        script = script.replaceAll(`127.0.0.1:${port}`, `127.0.0.1:${await freeTcpPort()}`);
      }
      const bash = spawn('bash', ['-e', '-c', script], {
        cwd: repo,
        // mktemp -d makes its directory here.
        env: { ...process.env, ...o.env, TMPDIR: base },
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      group = bash.pid;
      let out = '';
      let err = '';
      bash.stdout.on('data', (d: Buffer) => (out += d.toString()));
      bash.stderr.on('data', (d: Buffer) => (err += d.toString()));
      // A walk-through that hangs (a wait that never ends) fails instead of hanging the run.
      const limit = setTimeout(end, o.limitMs ?? 120_000);
      const code = await new Promise<number | null>((resolve) => bash.once('exit', resolve));
      clearTimeout(limit);
      // Whatever it left in the background (a server it did not stop, or one still stopping
      // after its `kill`) goes with it, and is waited for: a gateway finishing its shutdown
      // still writes its queue files, and the directory is removed next.
      end();
      await groupGone(bash.pid!);
      group = undefined;
      return { out, err, code };
    },
    cleanup() {
      end();
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** Resolves once no process of the group is left (SIGKILL after 30 s of SIGTERM). */
async function groupGone(pgid: number): Promise<void> {
  const alive = (): boolean => {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (const until = Date.now() + 30_000; alive();) {
    if (Date.now() > until) {
      process.kill(-pgid, 'SIGKILL');
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
