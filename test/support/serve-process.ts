/**
 * `nmtp serve` as its own process for the mailbox's crash tests
 * (test/integration/mailbox-crash.test.ts, mailbox-leftovers.test.ts): started with the
 * given node flags and `serve` arguments, tracked in `running` until it exits (a test's
 * `after` kills what is left), resolved once it prints the port it listens on.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface ServeProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What it wrote to stderr so far (its onError reports). */
  stderr(): string;
}

export async function startServe(o: {
  /** The entry point and what node needs before it (`--import tsx`, crash-at …). */
  readonly command: readonly string[];
  /** The arguments after `serve`. */
  readonly args: readonly string[];
  readonly running: Set<ChildProcess>;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}): Promise<ServeProcess> {
  const child = spawn(process.execPath, [...o.command, 'serve', ...o.args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(o.cwd === undefined ? {} : { cwd: o.cwd }),
    ...(o.env === undefined ? {} : { env: o.env }),
  });
  o.running.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      o.running.delete(child);
      resolve({ code, signal });
    }),
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  let text = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(text);
      if (m) resolve(Number(m[1]));
    });
    void exited.then(({ code, signal }) =>
      reject(new Error(`nmtp serve exited ${code ?? signal}: ${text}${err}`)),
    );
  });
  return { child, port, exited, stderr: () => err };
}
