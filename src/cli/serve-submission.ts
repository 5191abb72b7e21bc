/**
 * The submission side of `nmtp serve` and the `nmtp users add` command (the lead wires both
 * into nmtp.ts / transport-commands.ts). `startSubmission` starts, in the serving process,
 * the submission listener (src/server/submission-host.ts with the reference backend) and
 * the outgoing queue (src/queue/) that delivers what users send, signed with the domain
 * key, through the transfer client.
 */
import { readFileSync } from 'node:fs';
import type { ParseArgsConfig } from 'node:util';
import { keyPairFromSeed, seedFromPem } from '../core/keys/index.ts';
import { Queue, type DeliverFn } from '../queue/queue.ts';
import { transferDeliver } from '../queue/deliver.ts';
import { listen, type Listening } from '../server/listener.ts';
import { ReferenceSubmissionBackend } from '../server/submission-backend.ts';
import { runSubmissionSession } from '../server/submission-host.ts';
import { UserStore, canonicalUser } from '../store/users.ts';
import { hostPort, need, UsageError } from './args.ts';
import { srvLookupFrom, txtResolverFrom } from './records.ts';

/** The flags `nmtp serve` gains (it already has --dns-server, --cert, --key, --plaintext). */
export const SUBMISSION_SERVE_OPTIONS = {
  'submission-listen': { type: 'string' },
  users: { type: 'string' },
  'domain-key': { type: 'string' },
  selector: { type: 'string' },
  'mail-domain': { type: 'string' },
  queue: { type: 'string' },
  'peer-ca': { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export const SUBMISSION_SERVE_USAGE =
  '       [--submission-listen HOST:PORT --users FILE --domain-key PEMFILE --selector S\n' +
  '        [--mail-domain D (default: --domain)] [--queue DIR] [--peer-ca FILE]]';

export const SUBMISSION_DEFAULTS = { queue: '.nmtp-run/queue' } as const;

export interface SubmissionBase {
  /** The server's host name (greeting); also the mail domain unless --mail-domain. */
  readonly serverName: string;
  /** The listener's certificate (as for transfer), or plaintext on loopback (tests). */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  readonly plaintext?: boolean;
  readonly onError?: (e: unknown) => void;
  /** Replaces the transfer client (tests; a redirect-following client later). */
  readonly deliver?: DeliverFn;
}

export interface SubmissionService extends Listening {
  readonly queue: Queue;
  readonly backend: ReferenceSubmissionBackend;
}

/**
 * Starts the submission listener and the queue when `--submission-listen` is given;
 * undefined otherwise (the serve command then runs transfer only).
 */
export async function startSubmission(
  v: Record<string, unknown>,
  base: SubmissionBase,
): Promise<SubmissionService | undefined> {
  const at = v['submission-listen'] as string | undefined;
  if (at === undefined) return undefined;
  const { host, port } = hostPort(at, 'submission-listen');
  const domain = (v['mail-domain'] as string | undefined) ?? base.serverName;
  const selector = need(v, 'selector');
  const key = keyPairFromSeed(seedFromPem(readFileSync(need(v, 'domain-key'), 'utf8')));
  const ca = v['peer-ca'] as string | undefined;
  // Ours holds a connection pool, closed after the queue; one passed in is the caller's.
  const own =
    base.deliver === undefined
      ? transferDeliver({
          identity: { domain, selector, key },
          srv: srvLookupFrom(v),
          connect: ca === undefined ? {} : { ca: readFileSync(ca) },
        })
      : undefined;
  const deliver = base.deliver ?? own!;
  const onError = base.onError ?? ((): void => undefined);
  const queue = await Queue.open({
    dir: (v['queue'] as string | undefined) ?? SUBMISSION_DEFAULTS.queue,
    deliver,
    onError,
  });
  const backend = new ReferenceSubmissionBackend({
    users: new UserStore(need(v, 'users')),
    queue,
    domain,
    selector,
    key,
    resolveTxt: txtResolverFrom(v),
  });
  let listening: Listening;
  try {
    listening = await listen(
      { host, port, ...(base.tls ?? {}), ...(base.plaintext === true ? { plaintext: true } : {}) },
      (socket, ip) =>
        runSubmissionSession(socket, ip, {
          config: { serverName: base.serverName },
          backend,
          onError,
        }),
    );
  } catch (e) {
    await queue.close();
    await own?.close();
    throw e;
  }
  return {
    ...listening,
    queue,
    backend,
    async close() {
      await listening.close();
      await queue.close();
      await own?.close();
    },
  };
}

async function readPassword(): Promise<string> {
  const env = process.env['NMTP_PASSWORD'];
  if (env !== undefined && env !== '') return env;
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  // One line: the password, without its line end.
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** `nmtp users add --users FILE --user ADDR [--key B64URL]` (password: NMTP_PASSWORD or stdin). */
export const USERS_ADD_COMMAND = {
  summary: 'add a submission user (or set a password / register a key) in a users file',
  usage:
    'nmtp users add --users FILE --user ADDR [--key B64URL-PUBLIC-KEY] [--no-password]\n' +
    '  the password comes from $NMTP_PASSWORD, else from the first line of stdin',
  options: {
    users: { type: 'string' },
    user: { type: 'string' },
    key: { type: 'string' },
    'no-password': { type: 'boolean' },
  } as const satisfies NonNullable<ParseArgsConfig['options']>,
  async run(v: Record<string, unknown>): Promise<number> {
    const store = new UserStore(need(v, 'users'));
    const user = canonicalUser(need(v, 'user'));
    if (user === undefined) throw new UsageError('--user takes an address');
    const key = v['key'] as string | undefined;
    if (v['no-password'] !== true) {
      const password = await readPassword();
      if (password === '') throw new UsageError('empty password (set NMTP_PASSWORD or pipe it)');
      await store.setPassword(user, password);
    }
    if (key !== undefined) {
      const { decodePublicKey } = await import('../core/keys/index.ts');
      await store.addKey(user, decodePublicKey(key));
    }
    process.stdout.write(`${user}\n`);
    return 0;
  },
};
