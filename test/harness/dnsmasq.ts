/**
 * A real DNS server (dnsmasq) on 127.0.0.1 and an ephemeral port, answering only the
 * records a test gives it: no upstream, no /etc/hosts, no DHCP. Stopped by `stop()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export interface DnsServer {
  readonly address: string; // "127.0.0.1:PORT", for node:dns setServers
  stop(): Promise<void>;
}

export interface DnsRecords {
  /** name → TXT strings (each a character-string of at most 255 octets). */
  readonly txt?: ReadonlyMap<string, readonly string[]>;
  /** name → SRV targets. */
  readonly srv?: ReadonlyMap<
    string,
    readonly { target: string; port: number; priority: number; weight: number }[]
  >;
  /** domain → MX records; exchange "." is a null MX (RFC 7505). */
  readonly mx?: ReadonlyMap<string, readonly { exchange: string; preference: number }[]>;
  /** name → addresses (A and AAAA), e.g. an MX host's. */
  readonly addresses?: ReadonlyMap<string, readonly string[]>;
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

// dnsmasq's --txt-record takes comma-separated strings and, given as an argument rather
// than in a configuration file, keeps quotes literally: a string cannot contain a comma.
const txtArg = (s: string): string => {
  if (s.includes(',')) throw new Error(`dnsmasq harness: TXT string with a comma: ${s}`);
  return s;
};

export interface DnsmasqOptions {
  /**
   * TTL of every answer, in seconds (dnsmasq's --local-ttl). dnsmasq answers the records it
   * is given with TTL 0 unless told otherwise, so a test of a TTL cache sets this.
   */
  readonly ttl?: number;
  /** A fixed port (a server restarted with other records at one address); default: a free one. */
  readonly port?: number;
}

export async function startDnsmasq(
  records: DnsRecords,
  options: DnsmasqOptions = {},
): Promise<DnsServer> {
  const args = [
    '--keep-in-foreground',
    '--no-resolv',
    '--no-hosts',
    '--no-poll',
    '--bind-interfaces',
    '--listen-address=127.0.0.1',
    '--user=root',
    '--pid-file',
    '--log-facility=-',
    // Every name is local: what is not configured here is NXDOMAIN, never forwarded.
    '--local=/#/',
  ];
  if (options.ttl !== undefined) args.push(`--local-ttl=${options.ttl}`);
  for (const [name, strings] of records.txt ?? []) {
    args.push(`--txt-record=${name},${strings.map(txtArg).join(',')}`);
  }
  for (const [name, targets] of records.srv ?? []) {
    for (const t of targets) {
      args.push(`--srv-host=${name},${t.target},${t.port},${t.priority},${t.weight}`);
    }
  }
  for (const [domain, mx] of records.mx ?? []) {
    for (const r of mx) args.push(`--mx-host=${domain},${r.exchange},${r.preference}`);
  }
  for (const [name, addresses] of records.addresses ?? []) {
    args.push(`--host-record=${name},${addresses.join(',')}`);
  }
  // The port is free when probed; if dnsmasq loses the race it exits and we try again.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = options.port ?? (await freeUdpPort());
    const child: ChildProcess = spawn('dnsmasq', [...args, `--port=${port}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const address = `127.0.0.1:${port}`;
    const probe = new Resolver({ timeout: 200, tries: 1 });
    probe.setServers([address]);
    // Until it answers or exits (lost the port): a start on a loaded machine can take seconds.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) break;
      try {
        await probe.resolveTxt('nmtp-harness-probe.invalid');
      } catch (err) {
        // ENOTFOUND means dnsmasq answered (NXDOMAIN): it is up.
        if ((err as { code?: string }).code === 'ENOTFOUND') {
          return {
            address,
            async stop() {
              child.kill('SIGTERM');
              await exited;
            },
          };
        }
      }
      await sleep(50);
    }
    child.kill('SIGKILL');
    await exited;
    if (!/Address already in use/i.test(stderr)) {
      throw new Error(`dnsmasq did not start: ${stderr.trim() || 'no answer'}`);
    }
  }
  throw new Error('dnsmasq: no free port after 5 attempts');
}
