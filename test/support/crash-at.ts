/**
 * Fault injection for crash tests, loaded only into child processes a test starts
 * (`node --import tsx --import test/support/crash-at.ts …`): when the file-system call named
 * by `NMTP_TEST_CRASH_AT` is made on a path that matches, the process kills itself with
 * SIGKILL at exactly that point — before the call, or just after it completed — as a power
 * cut or `kill -9` would. Nothing in src/ knows about it: the calls are the `node:fs/promises`
 * functions the stores use, and `node:fs`'s callback `writeFile` (op "writeFile": the
 * embedded queue writes its files behind with it), replaced here and pushed into every
 * module's live ESM bindings (`syncBuiltinESMExports`).
 *
 *   NMTP_TEST_CRASH_AT='{"op":"rename","match":"/cookies/\\.tmp-","when":"before"}'
 *
 * `match` is a regular expression tested against the call's first path argument.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

export interface CrashAt {
  readonly op: 'open' | 'rename' | 'unlink' | 'link' | 'writeFile';
  readonly match: string;
  readonly when: 'before' | 'after';
}

const spec = process.env['NMTP_TEST_CRASH_AT'];
if (spec !== undefined && spec !== '') {
  const at = JSON.parse(spec) as CrashAt;
  const re = new RegExp(at.match);
  const die = (): never => {
    process.kill(process.pid, 'SIGKILL');
    // SIGKILL is not delivered synchronously everywhere: never run on meanwhile.
    for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
  };
  if (at.op === 'writeFile') {
    const callbacks = fs as unknown as Record<string, (...a: unknown[]) => void>;
    const real = callbacks['writeFile']!;
    callbacks['writeFile'] = (...args: unknown[]): void => {
      const hit = re.test(String(args[0]));
      if (hit && at.when === 'before') die();
      const cb = args[args.length - 1] as (e: unknown) => void;
      real.apply(fs, [
        ...args.slice(0, -1),
        (e: unknown) => {
          if (hit) die();
          cb(e);
        },
      ]);
    };
  } else {
    const promises = fs.promises as unknown as Record<
      string,
      (...a: unknown[]) => Promise<unknown>
    >;
    const real = promises[at.op]!;
    promises[at.op] = async (...args: unknown[]): Promise<unknown> => {
      const hit = re.test(String(args[0]));
      if (hit && at.when === 'before') die();
      const r = await real.apply(fs.promises, args);
      if (hit) die();
      return r;
    };
  }
  syncBuiltinESMExports();
}
