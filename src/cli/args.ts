/**
 * What every `nmtp` command file shares: the command shape, the usage error, and the small
 * readers of flags and standard input. One copy, so a fix (a bounded stdin, a stricter
 * HOST:PORT) reaches every command.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ParseArgsConfig } from 'node:util';
import { NmtpError } from '../core/errors/index.ts';
import { DEFAULT_SESSION_LIMITS } from '../core/wire/index.ts';

export interface CliCommand {
  readonly summary: string;
  readonly usage: string;
  readonly options: NonNullable<ParseArgsConfig['options']>;
  /** Takes positional arguments (e.g. cookies); others refuse them. */
  readonly positionals?: boolean;
  run(values: Record<string, unknown>, positionals: string[]): Promise<number> | number;
}

/** A usage mistake: nmtp.ts prints the usage and exits 2 for codes starting ERR_PARSE_ARGS. */
export class UsageError extends Error {
  readonly code = 'ERR_PARSE_ARGS_NMTP_USAGE';
}

// A reader that stops early (`nmtp-gateway queue list | head`) closes the pipe: that ends
// the output, it is no error worth a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

export const out = (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);

/** The value of a required string flag. */
export function need(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

/** `HOST:PORT`, with an IPv6 literal in brackets. */
export function hostPort(text: string, flag: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(text);
  const port = Number(m?.[2]);
  if (m === null || port > 65535) throw new UsageError(`--${flag} takes HOST:PORT`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** The largest message the reference servers take (§60.9): nothing larger is worth reading. */
export const STDIN_LIMIT = DEFAULT_SESSION_LIMITS.maxMessage;

/** Standard input, refused beyond `limit` octets (a coded error, not an exhausted heap). */
export async function readStdin(limit = STDIN_LIMIT): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of process.stdin) {
    n += (c as Buffer).length;
    if (n > limit) {
      throw new NmtpError(
        'NMTP_ERR_TRANSPORT_MESSAGE_TOO_LARGE',
        `stdin: more than ${limit} octets`,
      );
    }
    chunks.push(c as Buffer);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Cookies and ids are base64url (§60.10.5: `1*128( ALPHA / DIGIT / "-" / "_" )`), so one in
 * sixty-four begins with "-" and `parseArgs` would take it for an option. Every argument that
 * is not a declared option (or its value) is moved after "--", in order, so
 * `nmtp giveup -Kx3…` works as a person pasting a cookie expects.
 */
export function positionalsLast(args: readonly string[], options: Options): string[] {
  const shorts = new Map<string, string>();
  for (const [name, o] of Object.entries(options)) if (o.short) shorts.set(o.short, name);
  const flags: string[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    const long = /^--([^=]+)(=.*)?$/.exec(a);
    const short = /^-(.)$/.exec(a);
    const name = long ? long[1]! : short ? shorts.get(short[1]!) : undefined;
    const option = name === undefined ? undefined : options[name];
    if (long || (short && option)) {
      // A string option's value is the next argument unless it came with "="; joined with
      // "=" so a value beginning with "-" (a cookie again) is not refused as ambiguous.
      if (option?.type === 'string' && long?.[2] === undefined && i + 1 < args.length) {
        flags.push(`--${name!}=${args[++i]!}`);
      } else {
        flags.push(a);
      }
    } else {
      positionals.push(a);
    }
  }
  return positionals.length === 0 ? flags : [...flags, '--', ...positionals];
}

/**
 * Whether the module at `url` is the program being run: also through a symlink, as when
 * npm's bin link (`npx nmtp`, an installed `nmtp-gateway`) starts it.
 */
export function isMain(url: string): boolean {
  const arg = process.argv[1];
  if (arg === undefined) return false;
  try {
    return realpathSync(arg) === fileURLToPath(url);
  } catch {
    return false;
  }
}
