/**
 * What every `nmtp` command file shares: the command shape, the usage error, and the small
 * readers of flags and standard input. One copy, so a fix (a bounded stdin, a stricter
 * HOST:PORT) reaches every command.
 */
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
