/**
 * Private Postfix instances (Debian's postfix package) for the integration tests, and
 * Postfix's own smtp-sink as a next hop. Never the system instance in /etc/postfix, never
 * port 25: each instance has its own config_directory, queue_directory, data_directory
 * and log file under a temporary directory, listens on 127.0.0.1 and ephemeral ports, and
 * does no DNS lookups.
 *
 * An instance is configured as the gateway's Postfix would be: config/postfix/
 * main.cf.snippet and master.cf.snippet are appended to a base configuration written
 * here, so the snippets operators install are the ones the tests run. Local mail goes to
 * Maildirs through Postfix's virtual(8) delivery agent (no system users needed): each
 * user listed in `users` gets <dir>/maildirs/<domain>/<user>/, owned by nobody.
 *
 * Postfix runs as root-started daemons (`postfix -c DIR start`): as root, Postfix does not
 * require DIR to be listed in the default main.cf's alternate_config_directories.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  chmod,
  chown,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freeTcpPort } from '../support/net.ts';

/** The unprivileged owner of the Maildirs (Debian's nobody:nogroup). */
const MAILDIR_UID = 65534;
const MAILDIR_GID = 65534;

const TEMPLATES = new URL('../../config/postfix/', import.meta.url);

export type PostfixTemplate = 'main.cf.snippet' | 'master.cf.snippet' | 'transport';

/**
 * One of config/postfix/'s files with its `{{NAME}}` placeholders filled in; a
 * placeholder without a value is an error, so a renamed placeholder cannot go unnoticed.
 */
export function postfixTemplate(
  name: PostfixTemplate,
  vars: Readonly<Record<string, string>> = {},
): string {
  const text = readFileSync(new URL(name, TEMPLATES), 'utf8');
  return text.replace(/\{\{([A-Z_]+)\}\}/g, (_, key: string) => {
    const v = vars[key];
    if (v === undefined) throw new Error(`config/postfix/${name}: no value for {{${key}}}`);
    return v;
  });
}

export interface PostfixOptions {
  /** myhostname (default "postfix.test"). */
  readonly hostname?: string;
  /** The domain whose users get Maildir delivery (default "local.test"). */
  readonly localDomain?: string;
  /** Local parts (or full addresses in localDomain) that have a Maildir (default alice, bob). */
  readonly users?: readonly string[];
  /**
   * The nmtp-transport table: key (domain, .domain, address) → "transport:nexthop",
   * e.g. { 'gw.test': 'lmtp:inet:127.0.0.1:2424' }, or the table's text as a whole
   * (`postfixTemplate('transport', …)`).
   */
  readonly transport?: Readonly<Record<string, string>> | string;
  /**
   * Where mail for any other domain goes, e.g. "[127.0.0.1]:2526". Without it such mail
   * bounces at once (default_transport = error): an instance never reaches beyond loopback.
   */
  readonly relayhost?: string;
  /** message_size_limit in octets (default 40 MiB: a 25 MB attachment is 34 MB in base64). */
  readonly messageSizeLimit?: number;
  /** maximal_queue_lifetime (Postfix time, e.g. "0", "30s", "5d"; default Postfix's 5d). */
  readonly maximalQueueLifetime?: string;
  /** bounce_queue_lifetime (default Postfix's 5d). */
  readonly bounceQueueLifetime?: string;
  /** maximal_backoff_time (default "2s"; minimal_backoff_time and queue_run_delay are 1s). */
  readonly maximalBackoffTime?: string;
  /** Any other main.cf settings, applied last (`postconf -e`), overriding the above. */
  readonly mainCf?: Readonly<Record<string, string>>;
  /** Keep the directory after stop() (default: removed). */
  readonly keep?: boolean;
}

/** One message file of a Maildir's new/ folder. */
export interface MaildirMessage {
  readonly file: string;
  readonly raw: Buffer;
}

/** One entry of `postqueue -j` (Postfix 3.1+ JSON queue listing). */
export interface QueueEntry {
  readonly queue_name: string;
  readonly queue_id: string;
  readonly arrival_time: number;
  readonly message_size: number;
  readonly forced_expire?: boolean;
  readonly sender: string;
  readonly recipients: readonly { readonly address: string; readonly delay_reason?: string }[];
}

export interface PostfixInstance {
  readonly host: '127.0.0.1';
  /** The ordinary smtpd (what swaks or a legacy MTA talks to). */
  readonly port: number;
  /** The nmtp-return smtpd of master.cf.snippet: the gateway's smtp-out delivers here. */
  readonly returnPort: number;
  /** The instance's directory: etc/ (config_directory), queue/, data/, maildirs/, maillog. */
  readonly dir: string;
  readonly configDir: string;
  readonly localDomain: string;
  /** The Maildir of a user ("alice" or "alice@local.test"); it exists after a delivery. */
  maildir(user: string): string;
  /** The messages in the user's Maildir new/, oldest first. */
  readMail(user: string): Promise<MaildirMessage[]>;
  /** Waits until the user's new/ holds at least `count` messages; throws with the log on timeout. */
  waitForMail(user: string, count: number, timeoutMs?: number): Promise<MaildirMessage[]>;
  /** The queue (`postqueue -j`). */
  postqueue(): Promise<QueueEntry[]>;
  /** Waits until the queue listing satisfies `ok`; throws with the log on timeout. */
  waitForQueue(ok: (q: QueueEntry[]) => boolean, timeoutMs?: number): Promise<QueueEntry[]>;
  /** Attempts delivery of every deferred message now (`postqueue -f`). */
  flush(): Promise<void>;
  /** The instance's log (maillog_file). */
  logs(): Promise<string>;
  /** Waits until a log line matches; returns it; throws with the log on timeout. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Replaces the nmtp-transport table (postmap, then `postfix reload`). */
  setTransport(transport: Readonly<Record<string, string>> | string): Promise<void>;
  /** Changes main.cf settings (`postconf -e`) and reloads. */
  postconf(settings: Readonly<Record<string, string>>): Promise<void>;
  /** Stops every process of the instance and removes its directory (unless `keep`). */
  stop(): Promise<void>;
}

interface Exec {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function exec(cmd: string, args: readonly string[]): Promise<Exec> {
  return new Promise((resolve, reject) => {
    // Postfix's commands read MAIL_CONFIG: an inherited one must not redirect them.
    const env = { ...process.env };
    delete env.MAIL_CONFIG;
    execFile(cmd, args, { env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') return reject(err);
      resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr });
    });
  });
}

async function must(cmd: string, args: readonly string[], log?: () => Promise<string>) {
  const r = await exec(cmd, args);
  if (r.code !== 0) {
    // Postfix writes its diagnostics to the log, not to a stderr that is no terminal.
    const tail = log === undefined ? '' : lastLines(await log().catch(() => ''), 20);
    throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}\n${r.stderr}${tail}`);
  }
  return r;
}

/**
 * What `postfix check` says about a configuration. Postfix prints its diagnostics only to
 * a terminal (and to the log, which a fatal error in main.cf may come before), so it runs
 * under script(1), which gives it one.
 */
async function diagnose(configDir: string): Promise<string> {
  const r = await exec('script', ['-qec', `postfix -c '${configDir}' check`, '/dev/null']);
  return r.stdout.replace(/\r\n/g, '\n').trim();
}

function lastLines(text: string, n: number): string {
  const lines = text.trimEnd().split('\n');
  return lines.slice(-n).join('\n');
}

/**
 * How long a wait on Postfix (a delivery, the queue, a log line, a sink's capture) goes
 * by default before it fails. Only a bound that turns a bug into a failure: on a loaded
 * CI machine a delivery through Postfix's daemons can take many seconds.
 */
const PATIENCE_MS = 30_000;

/** Polls `probe` every 50 ms until it returns a value; `describe` explains a timeout. */
async function until<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  describe: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) throw new Error(await describe());
    await sleep(50);
  }
}

function transportText(t: Readonly<Record<string, string>> | string | undefined): string {
  if (t === undefined) return '';
  if (typeof t === 'string') return t;
  return Object.entries(t)
    .map(([k, v]) => `${k} ${v}\n`)
    .join('');
}

// The daemons a test instance needs, as in Debian's master.cf but never chrooted (a
// chroot would need copies of /etc files under the queue directory).
const MASTER_SERVICES = `\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
  -o syslog_name=postfix/$service_name
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;

/**
 * The live processes of an instance: those whose environment names its config directory
 * (`postfix -c` sets MAIL_CONFIG, and master passes it on to every daemon).
 */
export function postfixProcesses(configDir: string): number[] {
  const needle = `MAIL_CONFIG=${configDir}\0`;
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, 'latin1').includes(needle)) pids.push(+name);
    } catch {
      // Gone meanwhile, or a kernel thread.
    }
  }
  return pids;
}

function killAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

// Instances and sinks still running when the process exits (a test that failed before
// its cleanup): their daemons are not our children and would outlive us.
const live = new Set<() => void>();
process.once('exit', () => {
  for (const kill of live) kill();
});

export async function startPostfix(o: PostfixOptions = {}): Promise<PostfixInstance> {
  const hostname = o.hostname ?? 'postfix.test';
  const localDomain = (o.localDomain ?? 'local.test').toLowerCase();
  const dir = await mkdtemp(join(tmpdir(), 'nmtp-postfix-'));
  // Postfix's daemons (user postfix) and virtual(8) (user nobody) go through it.
  await chmod(dir, 0o755);
  const etc = join(dir, 'etc');
  const maildirs = join(dir, 'maildirs');
  const logFile = join(dir, 'maillog');
  await mkdir(etc);
  await mkdir(join(dir, 'queue'));
  await mkdir(maildirs);
  await chown(maildirs, MAILDIR_UID, MAILDIR_GID);

  const address = (user: string): string =>
    (user.includes('@') ? user : `${user}@${localDomain}`).toLowerCase();
  const maildir = (user: string): string => {
    const [local, domain] = address(user).split('@') as [string, string];
    return join(maildirs, domain, local);
  };
  // virtual(8) refuses regexp substitution in virtual_mailbox_maps, so every user is listed.
  const mailboxes = (o.users ?? ['alice', 'bob'])
    .map((u) => {
      const a = address(u);
      if (!a.endsWith(`@${localDomain}`) || /[\s/]|^\./.test(a)) {
        throw new Error(`postfix harness: not a user of ${localDomain}: ${u}`);
      }
      const [local] = a.split('@') as [string];
      return `${a} ${localDomain}/${local}/\n`;
    })
    .join('');
  await writeFile(join(etc, 'virtual-mailboxes'), mailboxes);

  const logs = (): Promise<string> => readFile(logFile, 'utf8').catch(() => '');
  const withLog = async (what: string): Promise<string> =>
    `${what}\n--- ${logFile} (last lines) ---\n${lastLines(await logs(), 40)}`;

  const writeTransport = async (t: Readonly<Record<string, string>> | string | undefined) => {
    const file = join(etc, 'nmtp-transport');
    await writeFile(file, transportText(t));
    await must('postmap', ['-c', etc, `hash:${file}`], logs);
  };

  const mainCf = (port: number): string => {
    const settings: Record<string, string> = {
      compatibility_level: '3.6',
      config_directory: etc,
      queue_directory: join(dir, 'queue'),
      data_directory: join(dir, 'data'),
      maillog_file: logFile,
      maillog_file_prefixes: dir,
      myhostname: hostname,
      myorigin: '$myhostname',
      mydestination: '',
      local_recipient_maps: '',
      alias_maps: '',
      alias_database: '',
      biff: 'no',
      append_dot_mydomain: 'no',
      readme_directory: 'no',
      inet_interfaces: 'loopback-only',
      inet_protocols: 'ipv4',
      mynetworks: '127.0.0.0/8',
      smtpd_banner: `$myhostname ESMTP (test instance, port ${port})`,
      // No DNS at all: next hops are IP literals, client names are not looked up.
      smtp_dns_support_level: 'disabled',
      lmtp_dns_support_level: 'disabled',
      smtpd_peername_lookup: 'no',
      smtpd_error_sleep_time: '0',
      relayhost: o.relayhost ?? '',
      default_transport:
        o.relayhost === undefined
          ? 'error:5.4.4 no route in this test instance (no relayhost, no nmtp-transport entry)'
          : 'smtp',
      virtual_mailbox_domains: localDomain,
      virtual_mailbox_base: maildirs,
      virtual_mailbox_maps: 'texthash:$config_directory/virtual-mailboxes',
      virtual_uid_maps: `static:${MAILDIR_UID}`,
      virtual_gid_maps: `static:${MAILDIR_GID}`,
      virtual_mailbox_limit: '0',
      message_size_limit: String(o.messageSizeLimit ?? 40 * 1024 * 1024),
      queue_run_delay: '1s',
      minimal_backoff_time: '1s',
      maximal_backoff_time: o.maximalBackoffTime ?? '2s',
      maximal_queue_lifetime: o.maximalQueueLifetime ?? '5d',
      bounce_queue_lifetime: o.bounceQueueLifetime ?? '5d',
    };
    const base = Object.entries(settings)
      .map(([k, v]) => `${k} = ${v}\n`)
      .join('');
    return `# Test instance written by test/harness/postfix.ts\n${base}\n${postfixTemplate('main.cf.snippet')}`;
  };

  const masterCf = (port: number, returnPort: number): string =>
    `127.0.0.1:${port} inet n - n - - smtpd\n${MASTER_SERVICES}\n` +
    postfixTemplate('master.cf.snippet', { RETURN_LISTENER: `127.0.0.1:${returnPort}` });

  let port: number;
  let returnPort: number;
  let running = false;
  const killLeftovers = (): void => killAll(postfixProcesses(etc), 'SIGKILL');
  live.add(killLeftovers);
  try {
    // The ports are free when probed; if master loses the race to another process it
    // fails to bind and we try again with others.
    for (let attempt = 0; ; attempt++) {
      port = await freeTcpPort();
      returnPort = await freeTcpPort();
      if (port === returnPort) continue;
      await writeFile(join(etc, 'main.cf'), mainCf(port));
      await writeFile(join(etc, 'master.cf'), masterCf(port, returnPort));
      await writeTransport(o.transport);
      const overrides = Object.entries(o.mainCf ?? {}).map(([k, v]) => `${k}=${v}`);
      if (overrides.length > 0) await must('postconf', ['-c', etc, '-e', ...overrides], logs);
      const r = await exec('postfix', ['-c', etc, 'start']);
      if (r.code === 0) break;
      const log = await logs();
      if (attempt >= 4 || !/Address already in use/i.test(log)) {
        throw new Error(
          await withLog(`postfix -c ${etc} start: exit ${r.code}\n${await diagnose(etc)}`),
        );
      }
    }
    running = true;
  } catch (e) {
    killLeftovers();
    live.delete(killLeftovers);
    if (!o.keep) await rm(dir, { recursive: true, force: true });
    throw e;
  }

  const readMail = async (user: string): Promise<MaildirMessage[]> => {
    const newDir = join(maildir(user), 'new');
    let names: string[];
    try {
      names = await readdir(newDir);
    } catch {
      return [];
    }
    // Maildir names begin with the delivery time in seconds, then a per-host counter.
    names.sort((a, b) => {
      const [sa, sb] = [parseInt(a, 10), parseInt(b, 10)];
      return sa !== sb ? sa - sb : a < b ? -1 : a > b ? 1 : 0;
    });
    return Promise.all(
      names.map(async (n) => ({ file: join(newDir, n), raw: await readFile(join(newDir, n)) })),
    );
  };

  const postqueue = async (): Promise<QueueEntry[]> => {
    const r = await must('postqueue', ['-c', etc, '-j'], logs);
    return r.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as QueueEntry);
  };

  const reload = async (): Promise<void> => {
    await must('postfix', ['-c', etc, 'reload'], logs);
  };

  return {
    host: '127.0.0.1',
    port,
    returnPort,
    dir,
    configDir: etc,
    localDomain,
    maildir,
    readMail,
    waitForMail: (user, count, timeoutMs = PATIENCE_MS) =>
      until(
        async () => {
          const m = await readMail(user);
          return m.length >= count ? m : undefined;
        },
        timeoutMs,
        () => withLog(`postfix harness: fewer than ${count} messages for ${address(user)}`),
      ),
    postqueue,
    waitForQueue: (ok, timeoutMs = PATIENCE_MS) =>
      until(
        async () => {
          const q = await postqueue();
          return ok(q) ? q : undefined;
        },
        timeoutMs,
        async () =>
          withLog(`postfix harness: queue not as awaited: ${JSON.stringify(await postqueue())}`),
      ),
    flush: async () => {
      await must('postqueue', ['-c', etc, '-f'], logs);
    },
    logs,
    waitForLog: (pattern, timeoutMs = PATIENCE_MS) =>
      until(
        async () => (await logs()).split('\n').find((l) => pattern.test(l)),
        timeoutMs,
        () => withLog(`postfix harness: no log line matches ${pattern}`),
      ),
    setTransport: async (t) => {
      await writeTransport(t);
      await reload();
    },
    postconf: async (settings) => {
      const args = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
      await must('postconf', ['-c', etc, '-e', ...args], logs);
      await reload();
    },
    async stop() {
      if (running) {
        running = false;
        // Waits for master, which passes SIGTERM on to its children (slow on a loaded
        // machine), then kills what is left — and waits for that too: a process SIGKILL has
        // not yet ended is still listed, and a caller may check that none is.
        await exec('postfix', ['-c', etc, 'stop']);
        const gone = async (): Promise<true | undefined> =>
          postfixProcesses(etc).length === 0 ? true : undefined;
        await until(gone, 15_000, async () => '').catch(async () => {
          killLeftovers();
          await until(gone, PATIENCE_MS, async () =>
            withLog(`postfix harness: still running after SIGKILL: ${postfixProcesses(etc)}`),
          );
        });
        live.delete(killLeftovers);
      }
      if (!o.keep) await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface SmtpSinkOptions {
  /** Speak LMTP (LHLO; one reply per recipient after the final dot). */
  readonly lmtp?: boolean;
  /** Commands answered with a hard error, e.g. ['RCPT'] (smtp-sink -f). */
  readonly reject?: readonly string[];
  /** The hard error's reply (default "550 5.1.1 Recipient refused by smtp-sink"). */
  readonly rejectReply?: string;
  /** Commands answered with a soft error, e.g. ['RCPT'] (smtp-sink -r). */
  readonly defer?: readonly string[];
  /** The soft error's reply (default "450 4.2.0 Try again later (smtp-sink)"). */
  readonly deferReply?: string;
  /** Greeting host name (default "smtp-sink.test"). */
  readonly hostname?: string;
}

/** One transaction smtp-sink wrote to its dump directory. */
export interface SinkMessage {
  readonly file: string;
  /** X-Mail-Args: MAIL FROM's arguments as received, e.g. "<a@b.test> SIZE=412 BODY=8BITMIME". */
  readonly mailFrom: string;
  /** X-Rcpt-Args, one per RCPT, e.g. "<x@y.test> ORCPT=rfc822;x@y.test". */
  readonly rcptTo: readonly string[];
  /** The message as received (smtp-sink's own header lines and its Received removed). */
  readonly data: Buffer;
}

export interface SmtpSink {
  readonly port: number;
  readonly dir: string;
  /** Completed transactions, oldest first (a transaction still in progress is not listed). */
  messages(): Promise<SinkMessage[]>;
  waitForMessages(count: number, timeoutMs?: number): Promise<SinkMessage[]>;
  stop(): Promise<void>;
}

// smtp-sink's capture: its X-* lines, then a three-line Received, then the message.
function parseSinkDump(file: string, raw: Buffer): SinkMessage {
  let pos = 0;
  let mailFrom = '';
  const rcptTo: string[] = [];
  for (;;) {
    const nl = raw.indexOf(0x0a, pos);
    if (nl < 0) break;
    const line = raw.subarray(pos, nl).toString('latin1');
    pos = nl + 1;
    if (line.startsWith('X-Mail-Args: ')) mailFrom = line.slice(13);
    else if (line.startsWith('X-Rcpt-Args: ')) rcptTo.push(line.slice(13));
    else if (line.startsWith('Received: ')) {
      // Its two continuation lines.
      for (let i = 0; i < 2; i++) pos = raw.indexOf(0x0a, pos) + 1;
      break;
    }
  }
  // smtp-sink ends each capture with an empty line of its own.
  let end = raw.length;
  if (raw.subarray(-1).toString() === '\n') end -= 1;
  return { file, mailFrom, rcptTo, data: raw.subarray(pos, end) };
}

/** Postfix's smtp-sink on 127.0.0.1 and an ephemeral port, capturing every transaction. */
export async function startSmtpSink(o: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const dir = await mkdtemp(join(tmpdir(), 'nmtp-smtp-sink-'));
  await chmod(dir, 0o755);
  const dumps = join(dir, 'dumps');
  await mkdir(dumps);
  await chown(dumps, MAILDIR_UID, MAILDIR_GID);
  const args = ['-u', 'nobody', '-h', o.hostname ?? 'smtp-sink.test', '-d', `${dumps}/m.`];
  if (o.lmtp) args.push('-L');
  if (o.reject !== undefined && o.reject.length > 0) {
    args.push(
      '-f',
      o.reject.join(','),
      '-B',
      o.rejectReply ?? '550 5.1.1 Recipient refused by smtp-sink',
    );
  }
  if (o.defer !== undefined && o.defer.length > 0) {
    args.push(
      '-r',
      o.defer.join(','),
      '-b',
      o.deferReply ?? '450 4.2.0 Try again later (smtp-sink)',
    );
  }
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freeTcpPort();
    const child: ChildProcess = spawn('smtp-sink', [...args, `127.0.0.1:${port}`, '64'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const kill = (): void => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    live.add(kill);
    // Until it greets or exits (lost the port): a start on a loaded machine can take seconds.
    const deadline = Date.now() + PATIENCE_MS;
    while (child.exitCode === null && Date.now() < deadline) {
      if (await greets(port)) {
        // A capture file is complete once smtp-sink has closed it.
        const open = (): Set<string> => {
          const files = new Set<string>();
          try {
            for (const fd of readdirSync(`/proc/${child.pid}/fd`)) {
              try {
                files.add(readlinkSync(`/proc/${child.pid}/fd/${fd}`));
              } catch {
                // Closed meanwhile.
              }
            }
          } catch {
            // The sink has exited: nothing is open.
          }
          return files;
        };
        const messages = async (): Promise<SinkMessage[]> => {
          const stillOpen = open();
          const names = (await readdir(dumps)).filter((n) => !stillOpen.has(join(dumps, n)));
          const found = await Promise.all(
            names.map(async (n) => {
              const file = join(dumps, n);
              const [raw, st] = await Promise.all([readFile(file), stat(file)]);
              return { message: parseSinkDump(file, raw), mtime: st.mtimeMs };
            }),
          );
          // File names are random: the order of completion is the order of last writes.
          return found.sort((a, b) => a.mtime - b.mtime).map((f) => f.message);
        };
        return {
          port,
          dir,
          messages,
          waitForMessages: (count, timeoutMs = PATIENCE_MS) =>
            until(
              async () => {
                const m = await messages();
                return m.length >= count ? m : undefined;
              },
              timeoutMs,
              async () => `smtp-sink on ${port}: fewer than ${count} messages`,
            ),
          async stop() {
            kill();
            await exited;
            live.delete(kill);
            await rm(dir, { recursive: true, force: true });
          },
        };
      }
      await sleep(20);
    }
    kill();
    await exited;
    live.delete(kill);
    if (!/in use/i.test(stderr)) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`smtp-sink did not start: ${stderr.trim() || 'no greeting'}`);
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error('smtp-sink: no free port after 5 attempts');
}

/** True when something on the port sends a 220 greeting. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.on('error', () => done(false));
    sock.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\n')) {
        if (got.startsWith('220')) sock.end('QUIT\r\n');
        done(got.startsWith('220'));
      }
    });
  });
}
