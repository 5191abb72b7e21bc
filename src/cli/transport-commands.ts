/**
 * The transport commands of `nmtp` (issue 4): `certs generate`, `serve`, `mailbox
 * approve|reject`, `send`, `status`, `giveup`. Same shape as the commands in nmtp.ts, kept
 * in their own file so the transport and the message tools can change independently.
 */
import { tuneRuntime } from './runtime.ts';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { keyPairFromSeed, seedFromPem } from '../core/keys/index.ts';
import type { ClientJob } from '../core/session/index.ts';
import type { Reply } from '../core/wire/index.ts';
import { printReplyLine } from '../core/wire/index.ts';
import {
  bytesSource,
  deliver,
  fileSource,
  transferTo,
  transferToDomain,
  type ClientIdentity,
  type ConnectOptions,
  type DeliveryResult,
  type JobResult,
  type SrvLookup,
} from '../client/transfer.ts';
import { dnsSrvResolver } from '../dns/srv.ts';
import { generateSelfSigned } from '../server/certs.ts';
import { Mailbox } from '../server/mailbox.ts';
import { heldPath } from '../server/mailbox-store.ts';
import { CookieStore } from '../store/cookies.ts';
import { serveMailbox } from '../server/serve.ts';
import { hostPort, need, out, readStdin, UsageError, type CliCommand } from './args.ts';
import { RECORD_OPTIONS, RECORD_USAGE, txtResolverFrom } from './records.ts';
import {
  startSubmission,
  SUBMISSION_SERVE_OPTIONS,
  SUBMISSION_SERVE_USAGE,
  USERS_ADD_COMMAND,
} from './serve-submission.ts';

/** What `nmtp serve` (and `npm start`) uses when told nothing: loopback only, files under .nmtp-run/. */
export const SERVE_DEFAULTS = {
  listen: '127.0.0.1:4025',
  domain: 'localhost',
  maildir: '.nmtp-run/maildir',
  tls: '.nmtp-run/tls',
  /**
   * The poll window given to deferred senders (seconds). Short, so a person's approval
   * reaches a demo's sender within a minute (its polls double from min up to max); a
   * receiver that many senders poll wants a longer one (`--min-poll 60 --max-poll 3600`).
   */
  minPoll: '5',
  maxPoll: '60',
} as const;

type TransportCommand = CliCommand;

function dnsServers(v: Record<string, unknown>): { servers?: string[] } {
  const servers = v['dns-server'] as string[] | undefined;
  return servers === undefined ? {} : { servers };
}

function identity(v: Record<string, unknown>): ClientIdentity {
  return {
    domain: need(v, 'domain'),
    selector: need(v, 'selector'),
    key: keyPairFromSeed(seedFromPem(readFileSync(need(v, 'key'), 'utf8'))),
  };
}

function connectOptions(v: Record<string, unknown>): ConnectOptions {
  const ca = v['ca'] as string | undefined;
  return {
    ...(ca === undefined ? {} : { ca: readFileSync(ca) }),
    ...(v['plaintext'] === true ? { plaintext: true } : {}),
  };
}

/** Runs a job at --server HOST:PORT, or at the SRV targets of `domain`. */
function runJob(v: Record<string, unknown>, domain: string, job: ClientJob): Promise<JobResult> {
  const server = v['server'] as string | undefined;
  const id = identity(v);
  const o = connectOptions(v);
  if (server !== undefined) return transferTo(hostPort(server, 'server'), id, job, undefined, o);
  return transferToDomain(domain, dnsSrvResolver(dnsServers(v)), id, job, undefined, o);
}

/** --server HOST:PORT stands for a domain's only SRV target; else DNS. */
function srvLookup(v: Record<string, unknown>): SrvLookup {
  const server = v['server'] as string | undefined;
  if (server === undefined) return dnsSrvResolver(dnsServers(v));
  const { host, port } = hostPort(server, 'server');
  return () =>
    Promise.resolve({ status: 'ok', targets: [{ name: host, port, priority: 0, weight: 0 }] });
}

const why = (f: NonNullable<JobResult['failure']>): string =>
  typeof f === 'string'
    ? f
    : 'code' in f && typeof f.code === 'number'
      ? printReplyLine(f as Reply)
      : (f as Error).message;

/**
 * One line per recipient, as for a job; a recipient a 351 sent elsewhere gets a comment
 * line saying whether the target proved the key (its answer) or the fallback answered.
 */
function printDelivery(r: DeliveryResult): boolean {
  for (const x of r.recipients) {
    out(`${x.rcpt} ${printReplyLine(x.reply)}`);
    const d = x.redirect;
    if (d !== undefined) {
      const at = `${d.target.host}:${d.target.port}`;
      out(
        `# ${x.rcpt}: redirect to ${at} ${d.followed ? 'followed (key proved)' : 'failed; answered by the normal path'}`,
      );
    }
  }
  if (r.unanswered.length > 0) {
    out(
      `not answered: ${r.unanswered.join(' ')}${r.failure === undefined ? '' : `: ${why(r.failure)}`}`,
    );
    return false;
  }
  return true;
}

/** One line per recipient: address, then the reply that decided it, as on the wire. */
function printResult(r: JobResult): boolean {
  for (const x of r.recipients) out(`${x.rcpt} ${printReplyLine(x.reply)}`);
  if (r.failure !== undefined) {
    out(`session failed at ${r.endpoint.host}:${r.endpoint.port}: ${why(r.failure)}`);
    return false;
  }
  return true;
}

const clientOptions = {
  key: { type: 'string' },
  domain: { type: 'string' },
  selector: { type: 'string' },
  'dns-server': { type: 'string', multiple: true },
  ca: { type: 'string' },
  server: { type: 'string' },
  plaintext: { type: 'boolean' },
} as const;

const CLIENT_USAGE =
  '--key FILE --domain D --selector S [--dns-server HOST:PORT…] [--ca FILE] [--server HOST:PORT]';

/** Domain part of an address (after the last "@"). */
const domainOf = (a: string): string => a.slice(a.lastIndexOf('@') + 1);

function cookieCommand(op: 'status' | 'giveup'): TransportCommand {
  return {
    summary:
      op === 'status'
        ? 'ask a receiver for the state of deferred recipients (cookies)'
        : 'tell a receiver the sender stops waiting on cookies',
    usage: `nmtp ${op} <cookie>… --at DOMAIN ${CLIENT_USAGE}`,
    options: { ...clientOptions, at: { type: 'string' } },
    positionals: true,
    async run(v, cookies) {
      if (cookies.length === 0) throw new UsageError('give at least one cookie');
      const at = (v['at'] as string | undefined) ?? '';
      if (at === '' && v['server'] === undefined)
        throw new UsageError('--at or --server is required');
      // One session, the cookies pipelined (§60.2): one answer each, in order.
      const job: ClientJob = { kind: 'cookies', ops: cookies.map((cookie) => ({ op, cookie })) };
      return printResult(await runJob(v, at, job)) ? 0 : 75;
    },
  };
}

export const TRANSPORT_COMMANDS: Record<string, TransportCommand> = {
  'certs generate': {
    summary: 'a self-signed TLS certificate and key for tests and demos (uses openssl)',
    usage: 'nmtp certs generate --out DIR --name HOST [--days N]',
    options: { out: { type: 'string' }, name: { type: 'string' }, days: { type: 'string' } },
    run(v) {
      const days = Number((v['days'] as string | undefined) ?? 30);
      if (!Number.isSafeInteger(days) || days <= 0) throw new UsageError('--days takes a number');
      const c = generateSelfSigned(need(v, 'out'), need(v, 'name'), days);
      out(`certificate ${c.certFile}\nkey ${c.keyFile}`);
      return 0;
    },
  },
  serve: {
    summary:
      'the reference mailbox receiver (NMTP transfer over TLS into a directory); with ' +
      '--submission-listen also a submission server and its outgoing queue',
    usage:
      'nmtp serve [--listen HOST:PORT] [--cert FILE --key FILE] [--domain SERVER-NAME]\n' +
      '       [--maildir DIR] [--dns-server HOST:PORT…] [--require-csv] [--plaintext (loopback only)]\n' +
      '       [--user-key ADDR=PEMFILE…  (answer PROVE for ADDR with that key, §60.10.8)]\n' +
      `       [--max-connections N] [--max-per-ip N] [--min-poll S --max-poll S (deferred senders; ${SERVE_DEFAULTS.minPoll} / ${SERVE_DEFAULTS.maxPoll})]\n` +
      `       ${RECORD_USAGE}\n` +
      `${SUBMISSION_SERVE_USAGE}\n` +
      `  defaults: --listen ${SERVE_DEFAULTS.listen} --domain ${SERVE_DEFAULTS.domain} ` +
      `--maildir ${SERVE_DEFAULTS.maildir}, and a self-signed certificate made in ${SERVE_DEFAULTS.tls}`,
    options: {
      listen: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      domain: { type: 'string' },
      maildir: { type: 'string' },
      'dns-server': { type: 'string', multiple: true },
      'require-csv': { type: 'boolean' },
      plaintext: { type: 'boolean' },
      'user-key': { type: 'string', multiple: true },
      'max-connections': { type: 'string' },
      'max-per-ip': { type: 'string' },
      'min-poll': { type: 'string' },
      'max-poll': { type: 'string' },
      ...RECORD_OPTIONS,
      ...SUBMISSION_SERVE_OPTIONS,
    },
    async run(v) {
      // --user-key ADDR=PEMFILE: a key as `nmtp keys generate` writes it (serveMailbox
      // checks and canonicalises the addresses).
      const userKeys = new Map<string, ReturnType<typeof keyPairFromSeed>>();
      for (const spec of (v['user-key'] as string[] | undefined) ?? []) {
        // The domain has no "=" (the local part and the path may): split after the "@".
        const eq = spec.indexOf('=', spec.indexOf('@'));
        if (eq <= 0 || eq === spec.length - 1) {
          throw new UsageError('--user-key takes ADDR=PEMFILE');
        }
        const pem = readFileSync(spec.slice(eq + 1), 'utf8');
        userKeys.set(spec.slice(0, eq), keyPairFromSeed(seedFromPem(pem)));
      }
      const opt = (name: 'listen' | 'domain' | 'maildir'): string =>
        (v[name] as string | undefined) ?? SERVE_DEFAULTS[name];
      const { host, port } = hostPort(opt('listen'), 'listen');
      const plaintext = v['plaintext'] === true;
      const serverName = opt('domain');
      let tls: { certFile: string; keyFile: string } | undefined;
      if (!plaintext) {
        if (v['cert'] === undefined && v['key'] === undefined) {
          // Embedded defaults: a self-signed certificate for the server name, made once.
          tls = generateSelfSigned(SERVE_DEFAULTS.tls, serverName, 365, true);
        } else tls = { certFile: need(v, 'cert'), keyFile: need(v, 'key') };
      }
      const poll: Record<string, string> = {
        'min-poll': SERVE_DEFAULTS.minPoll,
        'max-poll': SERVE_DEFAULTS.maxPoll,
      };
      const count = (flag: string): { [k: string]: number } => {
        const text = (v[flag] as string | undefined) ?? poll[flag];
        if (text === undefined) return {};
        const n = Number(text);
        if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`--${flag} takes a number`);
        const names: Record<string, string> = {
          'max-connections': 'maxConnections',
          'max-per-ip': 'maxPerIp',
          'min-poll': 'minPoll',
          'max-poll': 'maxPoll',
        };
        return { [names[flag]!]: n };
      };
      tuneRuntime();
      const onError = (e: unknown): void =>
        void process.stderr.write(`nmtp serve: ${(e as Error).message}\n`);
      // Caught from the start: a SIGTERM right after "listening on" (a supervisor, a test)
      // stops the server gracefully instead of killing it mid-way.
      const stopped = new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      const serving = await serveMailbox({
        host,
        port,
        ...count('max-connections'),
        ...count('max-per-ip'),
        ...count('min-poll'),
        ...count('max-poll'),
        ...(tls === undefined ? { plaintext } : tls),
        serverName,
        maildir: opt('maildir'),
        resolveTxt: txtResolverFrom(v),
        requireCsv: v['require-csv'] === true,
        ...(userKeys.size === 0 ? {} : { userKeys }),
        onError,
        onRecovered: (f) =>
          process.stderr.write(
            `nmtp serve: recovered after a crash: removed ${f.tmp} unanswered file(s) from tmp/, ` +
              `${f.cookieTemps} interrupted cookie write(s), ${f.held} held message(s) no cookie waits for\n`,
          ),
      });
      out(`listening on ${serving.host}:${serving.port}`);
      // With --submission-listen: the submission service and its outgoing queue, same process.
      let submission: Awaited<ReturnType<typeof startSubmission>>;
      try {
        submission = await startSubmission(v, {
          serverName,
          ...(tls === undefined ? { plaintext } : { tls }),
          onError,
        });
      } catch (e) {
        await serving.close();
        throw e;
      }
      if (submission !== undefined) {
        out(`submission listening on ${submission.host}:${submission.port}`);
      }
      nextSteps(v, opt('maildir'));
      await stopped;
      await submission?.close();
      await serving.close();
      return 0;
    },
  },
  'users add': USERS_ADD_COMMAND,
  'mailbox list': {
    summary: 'list the cookies of the mailbox receiver: held recipients and decided ones',
    usage:
      'nmtp mailbox list --maildir DIR [--all]\n' +
      '  one line per cookie: <cookie> <state> <recipient> from=<client domain> issued=<time>\n' +
      '  expires=<time> [view=<preview>] [held]; without --all only those still waiting\n' +
      '  (deferred, or approved and waiting for the full message)',
    options: { maildir: { type: 'string' }, all: { type: 'boolean' } },
    async run(v) {
      const maildir = need(v, 'maildir');
      const store = await CookieStore.open(join(maildir, 'cookies'));
      const iso = (t: number): string => new Date(t * 1000).toISOString().replace('.000Z', 'Z');
      const cookies = (await store.list()).sort((a, b) => a.issued - b.issued);
      let shown = 0;
      for (const c of cookies) {
        const waiting = c.state === 'deferred' || c.state === 'want-view';
        if (!waiting && v['all'] !== true) continue;
        const held = heldPath(maildir, c.ref);
        out(
          `${c.cookie} ${c.state} ${c.rcpt} from=${c.owner} issued=${iso(c.issued)} ` +
            `expires=${iso(c.expires)}${c.view === undefined ? '' : ` view=${c.view}`}` +
            `${held !== undefined && existsSync(held) ? ' held' : ''}`,
        );
        shown++;
      }
      if (shown === 0) out(v['all'] === true ? '# no cookies' : '# nothing held');
      return 0;
    },
  },
  'mailbox approve': mailboxCommand('approve'),
  'mailbox reject': mailboxCommand('reject'),
  send: {
    summary:
      'deliver a framed message (a file, or stdin) over NMTP transfer to its recipients, ' +
      'following redirects',
    usage: `nmtp send --to ADDR [--to ADDR…] [--file PATH] ${CLIENT_USAGE} [< message]`,
    options: {
      ...clientOptions,
      to: { type: 'string', multiple: true },
      file: { type: 'string' },
    },
    async run(v) {
      const to = (v['to'] as string[] | undefined) ?? [];
      if (to.length === 0) throw new UsageError('--to is required');
      const file = v['file'] as string | undefined;
      // A file is streamed (never read whole); stdin is read into memory.
      const source = file === undefined ? bytesSource(await readStdin()) : await fileSource(file);
      const o = connectOptions(v);
      const srv = srvLookup(v);
      const id = identity(v);
      // One delivery per destination domain (its own SRV targets, redirects, fallback).
      const byDomain = new Map<string, string[]>();
      for (const a of to) byDomain.set(domainOf(a), [...(byDomain.get(domainOf(a)) ?? []), a]);
      let ok = true;
      for (const [domain, rcpts] of byDomain) {
        const r = await deliver(domain, rcpts, source, id, {
          ...o,
          srv,
          // --plaintext (loopback tests) applies to redirect targets too.
          redirect: o.plaintext === true ? { plaintext: true } : {},
        });
        ok = printDelivery(r) && ok;
      }
      return ok ? 0 : 75;
    },
  },
  status: cookieCommand('status'),
  giveup: cookieCommand('giveup'),
};

/**
 * What a person who just started `nmtp serve` (or `npm run start:nmtp`) does next, on
 * stdout after the listening lines: the program otherwise says one line and waits.
 */
function nextSteps(v: Record<string, unknown>, maildir: string): void {
  const poll = `${(v['min-poll'] as string | undefined) ?? SERVE_DEFAULTS.minPoll}–${(v['max-poll'] as string | undefined) ?? SERVE_DEFAULTS.maxPoll} s`;
  out(
    [
      `# accepted messages: ${join(maildir, 'new')}/ (nmtp inspect < FILE); policy: ${join(maildir, 'policy.json')}`,
      `# held recipients: nmtp mailbox list --maildir ${maildir}, then nmtp mailbox approve|reject COOKIE --maildir ${maildir}`,
      `# deferred senders poll every ${poll} (--min-poll, --max-poll)`,
      "# senders' keys: DNS (--dns-server H:P), or --key-record NAME=TXT for each (nmtp dns-records --format key-record)",
      '# every option: nmtp serve --help; through npm: npm run start:nmtp -- --listen 127.0.0.1:4026 …',
      '# stop: Ctrl-C (SIGINT) or SIGTERM',
    ].join('\n'),
  );
}

function mailboxCommand(decision: 'approve' | 'reject'): TransportCommand {
  return {
    summary: `${decision} a deferred recipient of the mailbox receiver (by cookie)`,
    usage: `nmtp mailbox ${decision} <cookie>… --maildir DIR`,
    options: { maildir: { type: 'string' } },
    positionals: true,
    async run(v, cookies) {
      if (cookies.length === 0) throw new UsageError('give at least one cookie');
      const mailbox = await Mailbox.open({ maildir: need(v, 'maildir') });
      for (const c of cookies) {
        const r = await mailbox.decideCookie(c, decision);
        out(`${c} ${r.state}${r.id === undefined ? '' : ` id=${r.id}`}`);
      }
      return 0;
    },
  };
}
