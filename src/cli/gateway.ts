/**
 * `nmtp-gateway`: the gateway's command. `start` runs it (src/cli/gateway-start.ts wires
 * the services); the other commands inspect and manage a configuration, routing and the
 * queue the way Postfix's postconf, postqueue and postsuper do.
 *
 *   nmtp-gateway start [--config FILE]
 *   nmtp-gateway check-config [--config FILE]
 *   nmtp-gateway route [--config FILE] ADDRESS…
 *   nmtp-gateway queue list|show ID|retry ID…|delete ID… [--config FILE]
 *   nmtp-gateway sink HOST:PORT DIR        (a throwaway SMTP receiver for demos)
 *
 * The configuration file defaults to $NMTP_GATEWAY_CONFIG, else the embedded defaults
 * (config/gateway.yaml). Exit codes follow sysexits: 0 ok, 2 usage, 65 data error,
 * 75 temporary failure, 78 configuration error.
 */
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { classify } from '../core/errors/policy.ts';
import { loadConfig, type GatewayConfig } from '../gateway/config.ts';
import { routeCommand } from '../gateway/route-command.ts';
import { queueCommand, QUEUE_USAGE } from './gateway-queue.ts';
import { startGateway } from './gateway-start.ts';
import { isMain, out } from './args.ts';

interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly positionals?: boolean;
  run(c: GatewayConfig, args: string[], file: string | undefined): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  start: {
    summary: 'run the gateway (every service in config gateway.services) until SIGTERM/SIGINT',
    usage: 'nmtp-gateway start [--config FILE]',
    async run(c) {
      // Caught from the start: a SIGTERM right after "ready" (a supervisor, a test) stops
      // the gateway cleanly instead of killing it (the line can reach the supervisor before
      // this process runs again), and one during the start stops it once it has started.
      let signalled: string | undefined;
      let wake: (() => void) | undefined;
      const onSignal = (sig: string): void => {
        if (signalled !== undefined) {
          // A second signal: the operator insists; work in flight is in the queue already.
          process.stderr.write(`nmtp-gateway: ${sig} again, exiting now\n`);
          process.exit(130);
        }
        signalled = sig;
        wake?.();
      };
      const term = (): void => onSignal('SIGTERM');
      const int = (): void => onSignal('SIGINT');
      process.on('SIGTERM', term);
      process.on('SIGINT', int);
      try {
        const g = await startGateway(c);
        const listening = Object.entries(g.ports)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ');
        process.stderr.write(
          `nmtp-gateway: ready (${listening}; queue ${g.queue.backend}). Publish the key as TXT ${g.keyName}: "${g.keyRecord}"\n`,
        );
        if (signalled === undefined) await new Promise<void>((resolve) => (wake = resolve));
        process.stderr.write(`nmtp-gateway: ${signalled}: stopping (finishing work in flight)\n`);
        await g.close().catch(() => undefined);
      } catch (e) {
        process.off('SIGTERM', term);
        process.off('SIGINT', int);
        throw e;
      }
      return 0;
    },
  },
  'check-config': {
    summary: 'validate the configuration; print the effective configuration as YAML',
    usage: 'nmtp-gateway check-config [--config FILE] [--quiet]',
    async run(c, _args, file) {
      process.stderr.write(`nmtp-gateway: ${file ?? 'embedded defaults'}: valid\n`);
      out(stringify(c));
      return 0;
    },
  },
  route: {
    summary: 'print how each address would be routed (nmtp or smtp) and why',
    usage: 'nmtp-gateway route [--config FILE] ADDRESS…',
    positionals: true,
    async run(c, args) {
      if (args.length === 0) throw new Usage('route takes at least one address');
      return routeCommand(c, args, out);
    },
  },
  queue: {
    summary: 'list, show, retry or delete queue entries (postqueue -p / postsuper -r, -d)',
    usage: QUEUE_USAGE,
    positionals: true,
    async run(c, args) {
      return queueCommand(c, args, out);
    },
  },
  sink: {
    summary: 'a throwaway SMTP receiver for demos: every message to a file (like smtp-sink)',
    usage: 'nmtp-gateway sink HOST:PORT DIR',
    positionals: true,
    async run(_c, args) {
      const [listen, dir] = args;
      const m = /^(.*):(\d{1,5})$/.exec(listen ?? '');
      if (m === null || dir === undefined || args.length !== 2) {
        throw new Usage('sink takes HOST:PORT and a directory');
      }
      const { startSink } = await import('../../adapters/smtp-sink/index.ts');
      const sink = await startSink({
        host: m[1]!.replace(/^\[|\]$/g, ''),
        port: Number(m[2]),
        dir,
        onMessage: (x) =>
          out(
            `stored ${x.file}: from=<${x.from}> to=${x.to.map((t) => `<${t}>`).join(',')} size=${x.size}`,
          ),
      });
      // Caught before the line that says it listens (see start).
      const stopped = new Promise<void>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      process.stderr.write(
        `nmtp-gateway sink: listening on ${m[1]}:${sink.port}, writing to ${dir}\n`,
      );
      await stopped;
      await sink.close();
      return 0;
    },
  },
};

class Usage extends Error {}

function help(): void {
  out('nmtp-gateway — the SMTP ⇄ NMTP gateway\n\ncommands:');
  for (const [name, c] of Object.entries(COMMANDS)) out(`  ${name.padEnd(13)} ${c.summary}`);
  out(
    '\nEvery command takes --config FILE (default: $NMTP_GATEWAY_CONFIG, else the embedded\n' +
      'defaults documented in config/gateway.yaml). `nmtp-gateway <command> --help` for more.',
  );
}

export async function main(argv: string[]): Promise<number> {
  const name = argv[0];
  const cmd = name === undefined ? undefined : COMMANDS[name];
  if (cmd === undefined) {
    help();
    return name === undefined || name === 'help' || name === '--help' || name === '-h' ? 0 : 2;
  }
  let file: string | undefined;
  try {
    const { values, positionals } = parseArgs({
      args: argv.slice(1),
      options: {
        config: { type: 'string', short: 'c' },
        quiet: { type: 'boolean', short: 'q' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: cmd.positionals === true,
      strict: true,
    });
    if (values.help === true) {
      out(`usage: ${cmd.usage}\n\n${cmd.summary}`);
      return 0;
    }
    file = values.config ?? process.env['NMTP_GATEWAY_CONFIG'];
    const c = loadConfig(file);
    return await cmd.run(c, positionals, file);
  } catch (err) {
    if (err instanceof Usage || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(
        `nmtp-gateway ${name}: ${(err as Error).message}\nusage: ${cmd.usage}\n`,
      );
      return 2;
    }
    const v = classify(err);
    process.stderr.write(`nmtp-gateway ${name}: ${v.message}\n`);
    if (v.code === 'NMTP_ERR_GW_CONFIG_INVALID') return 78;
    return v.temporary ? 75 : 65;
  }
}

if (isMain(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
