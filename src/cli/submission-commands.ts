/**
 * The submission commands of `nmtp` (§60.11.6): `submit` (send a message through one's own
 * submission server), `submission status`, `submission sign` and `submission certify`.
 * Same shape as transport-commands.ts. A password comes from a file or the NMTP_PASSWORD
 * environment variable, never from the command line (where `ps` and shell history show it).
 */
import { readFileSync } from 'node:fs';
import type { NmtpError } from '../core/errors/index.ts';
import { keyPairFromSeed, publicKeyFromPem, seedFromPem } from '../core/keys/index.ts';
import type { RecipientStatus } from '../core/session/index.ts';
import { printReplyLine } from '../core/wire/index.ts';
import {
  resultError,
  withSubmission,
  type MessageBody,
  type SubmissionLogin,
  type SubmissionOptions,
} from '../client/submission.ts';
import { hostPort, need, out, readStdin, UsageError, type CliCommand } from './args.ts';

type SubmissionCommand = CliCommand;

const warn = (s: string): void => void process.stderr.write(`${s}\n`);

/** UTC, to the second: `2026-12-07T16:21:35Z`. */
const iso = (t: number): string => new Date(t * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** A deferred recipient's wait, when the server told it (§60.11.5): '' otherwise. */
function waitOf(s: RecipientStatus): string {
  if (s.cookie === undefined) return '';
  return (
    ` cookie=${s.cookie}` +
    (s.next === undefined ? '' : ` next-poll=${iso(s.next)}`) +
    (s.expires === undefined ? '' : ` expires=${iso(s.expires)}`)
  );
}

/** --password-file, else NMTP_PASSWORD; or --user-key (AUTH KEY). Exactly one of them. */
function login(v: Record<string, unknown>): SubmissionLogin {
  const user = need(v, 'user');
  const keyFile = v['user-key'] as string | undefined;
  const passwordFile = v['password-file'] as string | undefined;
  if (keyFile !== undefined && passwordFile !== undefined) {
    throw new UsageError('give --password-file or --user-key, not both');
  }
  if (keyFile !== undefined) {
    return { user, key: keyPairFromSeed(seedFromPem(readFileSync(keyFile, 'utf8'))) };
  }
  if (passwordFile !== undefined) {
    // The first line of the file: a trailing newline is how editors and `echo` end files.
    const password = readFileSync(passwordFile, 'utf8').split(/\r?\n/)[0] ?? '';
    return { user, password };
  }
  const env = process.env['NMTP_PASSWORD'];
  if (env === undefined || env === '') {
    throw new UsageError('--password-file, NMTP_PASSWORD or --user-key is required');
  }
  return { user, password: env };
}

function options(v: Record<string, unknown>): SubmissionOptions {
  const ca = v['ca'] as string | undefined;
  return {
    ...(ca === undefined ? {} : { ca: readFileSync(ca) }),
    ...(v['plaintext'] === true ? { plaintext: true } : {}),
  };
}

/** --file PATH (streamed from disk), else standard input. */
async function message(v: Record<string, unknown>): Promise<MessageBody> {
  const file = v['file'] as string | undefined;
  return file === undefined ? readStdin() : { path: file };
}

/** A public key from a PEM file: "BEGIN PUBLIC KEY", or the public half of a private key. */
function publicKeyFile(path: string): Uint8Array {
  const text = readFileSync(path, 'utf8');
  if (text.includes('BEGIN PUBLIC KEY')) return publicKeyFromPem(text);
  return keyPairFromSeed(seedFromPem(text)).publicKey;
}

function run<T>(
  v: Record<string, unknown>,
  work: Parameters<typeof withSubmission<T>>[2],
): Promise<T> {
  return withSubmission(hostPort(need(v, 'server'), 'server'), login(v), work, options(v));
}

const common = {
  server: { type: 'string' },
  user: { type: 'string' },
  'password-file': { type: 'string' },
  'user-key': { type: 'string' },
  ca: { type: 'string' },
  plaintext: { type: 'boolean' },
} as const;

const COMMON_USAGE =
  '--server HOST:PORT --user ADDR (--password-file FILE | --user-key PEM) [--ca FILE] [--plaintext]\n' +
  '  without --password-file or --user-key, the password is taken from NMTP_PASSWORD';

export const SUBMISSION_COMMANDS: Record<string, SubmissionCommand> = {
  submit: {
    summary: 'send a message (file or stdin) through your submission server; prints its id',
    usage:
      `nmtp submit --to ADDR [--to ADDR…] [--file PATH] ${COMMON_USAGE}\n` +
      '  the message is --file, else stdin. A refused recipient is reported on stderr and makes\n' +
      '  the exit status non-zero; the message still goes to the others (the id is printed).',
    options: { ...common, to: { type: 'string', multiple: true }, file: { type: 'string' } },
    async run(v) {
      const to = (v['to'] as string[] | undefined) ?? [];
      if (to.length === 0) throw new UsageError('--to is required');
      const body = await message(v);
      const r = await run(v, (c) => c.send(to, body));
      let refused: NmtpError | undefined;
      for (const x of r.rcpts) {
        if (x.reply.code === 250) continue;
        warn(`${x.rcpt} refused: ${printReplyLine(x.reply)}`);
        refused ??= resultError({ kind: 'send', ok: false, rcpts: [x] });
      }
      if (r.ok && r.id !== undefined) {
        out(r.id);
        if (refused !== undefined) throw refused;
        return 0;
      }
      throw resultError(r) ?? refused!;
    },
  },
  'submission status': {
    summary: 'the delivery state of each recipient of a submission, by id',
    usage: `nmtp submission status <id>… ${COMMON_USAGE}\n  prints one line per recipient: <id> <recipient> <state>,\n  and for a deferred one cookie=<cookie> next-poll=<time> expires=<time>`,
    options: common,
    positionals: true,
    async run(v, ids) {
      if (ids.length === 0) throw new UsageError('give at least one submission id');
      const results = await run(v, (c) => Promise.all(ids.map((id) => c.status(id))));
      let failure: NmtpError | undefined;
      for (const r of results) {
        for (const s of r.recipients) out(`${r.id} ${s.rcpt} ${s.state}${waitOf(s)}`);
        const e = resultError(r);
        if (e !== undefined) warn(`${r.id}: ${e.message}`);
        failure ??= e;
      }
      if (failure !== undefined) throw failure;
      return 0;
    },
  },
  'submission sign': {
    summary: 'have your server sign a message (file or stdin) as for submit; prints it signed',
    usage: `nmtp submission sign [--file PATH] ${COMMON_USAGE}`,
    options: { ...common, file: { type: 'string' } },
    async run(v) {
      const body = await message(v);
      const r = await run(v, (c) => c.sign(body));
      if (r.message === undefined) throw resultError(r)!;
      process.stdout.write(r.message);
      return 0;
    },
  },
  'submission certify': {
    summary: 'have your domain certify a user public key (§40.6); prints the certificate',
    usage: `nmtp submission certify --key PUBKEY-FILE [--days N] ${COMMON_USAGE}`,
    options: { ...common, key: { type: 'string' }, days: { type: 'string' } },
    async run(v) {
      const publicKey = publicKeyFile(need(v, 'key'));
      const daysText = v['days'] as string | undefined;
      const days = daysText === undefined ? undefined : Number(daysText);
      if (days !== undefined && (!/^[1-9][0-9]{0,2}$/.test(daysText!) || days > 366)) {
        throw new UsageError('--days takes 1..366');
      }
      const r = await run(v, (c) => c.certify(publicKey, days));
      if (r.certificate === undefined) throw resultError(r)!;
      out(r.certificate);
      return 0;
    },
  },
};
