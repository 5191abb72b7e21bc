/**
 * `nmtp`: the command-line tool for trying NMTP by hand. Each command is a small function
 * over the core; this file owns the process: arguments, files, stdin/stdout, the clock and
 * randomness. `nmtp <command> --help` describes each command.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { classify } from '../core/errors/policy.ts';
import {
  encodeMessage,
  END,
  FrameDecoder,
  NEED_MORE,
  type FramedMessage,
} from '../core/frame/index.ts';
import {
  domainKeyName,
  fingerprint,
  keyPairFromSeed,
  printDomainKeyRecord,
  seedFromPem,
  seedToPem,
  splitTxt,
} from '../core/keys/index.ts';
import { signMessage, verifyMessage, type MessageVerification } from '../core/message/index.ts';
import { dnsTxtResolver, staticTxtResolver } from '../dns/txt.ts';
import { toBase64url } from '../core/sign/index.ts';
import { CONVERT_COMMAND } from './convert-command.ts';
import { TRANSPORT_COMMANDS } from './transport-commands.ts';
import { SUBMISSION_COMMANDS } from './submission-commands.ts';
import {
  isMain,
  need,
  out,
  positionalsLast,
  readStdin,
  UsageError,
  type CliCommand,
} from './args.ts';

type Command = CliCommand;

const now = (): number => Math.floor(Date.now() / 1000);

function loadKey(path: string) {
  return keyPairFromSeed(seedFromPem(readFileSync(path, 'utf8')));
}

function record(values: Record<string, unknown>): string[] {
  return (values['key-record'] as string[] | undefined) ?? [];
}

function resolverFor(values: Record<string, unknown>) {
  const pairs = record(values);
  if (pairs.length > 0) {
    const map = new Map<string, string[]>();
    for (const p of pairs) {
      const eq = p.indexOf('=');
      if (eq <= 0) throw new UsageError(`--key-record takes NAME=TXT, got "${p}"`);
      const name = p.slice(0, eq).toLowerCase();
      map.set(name, [...(map.get(name) ?? []), p.slice(eq + 1)]);
    }
    return staticTxtResolver(map);
  }
  const servers = values['dns-server'] as string[] | undefined;
  return dnsTxtResolver(servers === undefined ? {} : { servers });
}

function printVerification(v: MessageVerification): boolean {
  out(`content digest: ${toBase64url(v.contentDigest)}`);
  if (v.signatures.length === 0) out('no signatures');
  v.signatures.forEach((s, i) => {
    const who = s.signature
      ? `d=${s.signature.domain} s=${s.signature.selector}${s.signature.user ? ` u=${s.signature.user}` : ''}`
      : '(unparseable)';
    out(`signature ${i + 1}: ${s.status}  ${who}${s.code ? `  ${s.code}` : ''}`);
  });
  if (v.replay) out(`replay rule: ${v.replay.ok ? 'ok' : `refused (${v.replay.code})`}`);
  return (
    v.signatures.length > 0 &&
    v.signatures.every((s) => s.status === 'valid') &&
    (v.replay?.ok ?? true)
  );
}

/**
 * `nmtp verify`'s exit status. With the replay rule (--rcpt and --from-domain) it is the
 * delivery verdict: "a temporary result (DNS failure) defers the recipient; any other
 * failure rejects it" (§30.7) — earlier hops' signatures, which name the recipients they
 * were sent to, are not part of it. Without it: every signature valid.
 */
function verifyExit(v: MessageVerification): number {
  if (v.replay !== undefined) return v.replay.ok ? 0 : v.replay.temporary ? 75 : 1;
  const failed = v.signatures.filter((s) => s.status !== 'valid');
  if (v.signatures.length > 0 && failed.length === 0) return 0;
  return failed.length > 0 && failed.every((s) => s.temporary) ? 75 : 1;
}

/** --now: unix seconds, or a UTC date-time (YYYY-MM-DDTHH:MM:SSZ); default the clock. */
function verifyTime(text: string | undefined): number {
  if (text === undefined) return now();
  if (/^(?:0|[1-9][0-9]{0,12})$/.test(text)) return Number(text);
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(text)) {
    const ms = Date.parse(text);
    if (!Number.isNaN(ms)) return Math.floor(ms / 1000);
  }
  throw new UsageError('--now takes unix seconds or YYYY-MM-DDTHH:MM:SSZ');
}

/** UTF-8 text as is; CRLF as a line end; controls and invalid octets as <NN> hex. */
function showBytes(bytes: Uint8Array): string {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  return text
    .replace(/\r\n/g, '\n')
    .replace(
      // eslint-disable-next-line no-control-regex -- finding control characters is the point
      /[\x00-\x09\x0b-\x1f\x7f\r]/g,
      (c) => `<${c.charCodeAt(0).toString(16).padStart(2, '0')}>`,
    )
    .replace(/\ufffd/g, '<??>');
}

/** The zone-file line publishing a domain key (--domain, --selector, --flags). */
function zoneLine(v: Record<string, unknown>, publicKey: Uint8Array): string {
  const name = domainKeyName(need(v, 'selector'), need(v, 'domain'));
  const flags = (v['flags'] as string | undefined) ?? '';
  const strings = splitTxt(printDomainKeyRecord({ publicKey, flags }));
  return `${name}. IN TXT ${strings.map((x) => JSON.stringify(x)).join(' ')}`;
}

function sampleMessage(from: string, to: string): FramedMessage {
  const utf8 = new TextEncoder();
  return {
    trace: [],
    root: {
      fields: [
        { name: 'From', value: `Zoë Ünal <${from}>` },
        { name: 'To', value: `<${to}>` },
        { name: 'Subject', value: 'Grüße aus NMTP — length-framed, UTF-8, signed' },
        { name: 'Date', value: new Date(now() * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z') },
        { name: 'Message-Id', value: `<${toBase64url(randomBytes(12))}@example.org>` },
        { name: 'Content-Type', value: 'multipart/mixed' },
      ],
      children: [
        {
          fields: [{ name: 'Content-Type', value: 'text/plain' }],
          body: utf8.encode('Hallo Bob!\r\nNo boundaries, no transfer encodings: just octets.\r\n'),
        },
        {
          fields: [
            { name: 'Content-Type', value: 'application/octet-stream' },
            { name: 'Content-Filename', value: 'Bericht; "final".bin' },
          ],
          body: new Uint8Array([0x00, 0x01, 0x02, 0x0d, 0x0a, 0x0d, 0x0a, 0xff]),
        },
      ],
    },
  };
}

const keyRecordOpt = { 'key-record': { type: 'string', multiple: true } } as const;
const dnsOpt = { 'dns-server': { type: 'string', multiple: true } } as const;

const COMMANDS: Record<string, Command> = {
  demo: {
    summary: 'generate keys, frame a message, sign it twice and verify it',
    usage: 'nmtp demo',
    options: {},
    async run() {
      const author = keyPairFromSeed(randomBytes(32));
      const relay = keyPairFromSeed(randomBytes(32));
      const records = new Map([
        [
          domainKeyName('s1', 'example.org'),
          [printDomainKeyRecord({ publicKey: author.publicKey, flags: '' })],
        ],
        [
          domainKeyName('r1', 'relay.example'),
          [printDomainKeyRecord({ publicKey: relay.publicKey, flags: '' })],
        ],
      ]);
      const t = now();
      let msg = encodeMessage(sampleMessage('zoë@example.org', 'bob@bücher.example'));
      msg = signMessage(msg, {
        key: author,
        domain: 'example.org',
        selector: 's1',
        recipients: ['bob@bücher.example'],
        signedAt: t,
        expiresAt: t + 7 * 86400,
        salt: randomBytes(16),
      });
      msg = signMessage(msg, {
        key: relay,
        domain: 'relay.example',
        selector: 'r1',
        recipients: ['bob@bücher.example'],
        signedAt: t,
        expiresAt: t + 86400,
        salt: randomBytes(16),
      });
      out('# DNS records the two domains publish');
      for (const [name, [txt]] of records) out(`${name}. IN TXT "${txt}"`);
      out('\n# The framed message (CRLF shown as line ends, other control octets as <NN>)');
      out(showBytes(msg));
      out('# Verification at bob@bücher.example, transfer from relay.example');
      const ok = printVerification(
        await verifyMessage(msg, {
          resolveTxt: staticTxtResolver(records),
          now: t,
          recipient: 'bob@bücher.example',
          authenticatedDomain: 'relay.example',
        }),
      );
      return ok ? 0 : 1;
    },
  },
  'keys generate': {
    summary:
      'a new ed25519 domain key: the private key into a file (0600), the DNS TXT record printed',
    usage:
      'nmtp keys generate --domain D --selector S [--out FILE (default: S.D.key)] [--flags u]\n' +
      '  writes the PKCS#8 PEM private key (for --key, --domain-key) to FILE, never over an\n' +
      '  existing one, and prints the record to publish (or to give as --key-record)',
    options: {
      domain: { type: 'string' },
      selector: { type: 'string' },
      flags: { type: 'string' },
      out: { type: 'string' },
    },
    run(v) {
      const domain = need(v, 'domain');
      const selector = need(v, 'selector');
      const file = (v['out'] as string | undefined) ?? `${selector}.${domain}.key`;
      const seed = randomBytes(32);
      const key = keyPairFromSeed(seed);
      const flags = (v['flags'] as string | undefined) ?? '';
      const txt = printDomainKeyRecord({ publicKey: key.publicKey, flags });
      // Checked (the names are valid) before anything is written.
      const line = zoneLine(v, key.publicKey);
      try {
        // 'wx': an existing key is never replaced (its record may be published already).
        writeFileSync(file, seedToPem(seed), { flag: 'wx', mode: 0o600 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new UsageError(`${file} exists: not overwritten (choose another --out)`);
        }
        throw e;
      }
      out(`# private key (PKCS#8 PEM, mode 0600): ${file}`);
      out(`# fingerprint ${fingerprint(key.publicKey)}`);
      out(line);
      // The same as `nmtp dns-records --format key-record` prints.
      out(`# with no DNS server: --key-record '${domainKeyName(selector, domain)}=${txt}'`);
      return 0;
    },
  },
  'dns-records': {
    summary: 'the TXT record a domain publishes for a key (PKCS#8 PEM file)',
    usage:
      'nmtp dns-records --domain D --selector S --key FILE [--flags u] [--format zone|key-record]\n' +
      '  zone: the zone-file line (default); key-record: NAME=TXT, the value of --key-record\n' +
      '  for `nmtp serve` and `nmtp verify` where no DNS server publishes it',
    options: {
      domain: { type: 'string' },
      selector: { type: 'string' },
      key: { type: 'string' },
      flags: { type: 'string' },
      format: { type: 'string' },
    },
    run(v) {
      const publicKey = loadKey(need(v, 'key')).publicKey;
      const format = (v['format'] as string | undefined) ?? 'zone';
      if (format === 'zone') out(zoneLine(v, publicKey));
      else if (format === 'key-record') {
        const flags = (v['flags'] as string | undefined) ?? '';
        const name = domainKeyName(need(v, 'selector'), need(v, 'domain'));
        out(`${name}=${printDomainKeyRecord({ publicKey, flags })}`);
      } else throw new UsageError('--format takes zone or key-record');
      return 0;
    },
  },
  sign: {
    summary: 'add a Signature to a framed message (stdin → stdout)',
    usage:
      'nmtp sign --key FILE --domain D --selector S --rcpt ADDR [--rcpt ADDR…] [--ttl SECONDS]',
    options: {
      key: { type: 'string' },
      domain: { type: 'string' },
      selector: { type: 'string' },
      rcpt: { type: 'string', multiple: true },
      ttl: { type: 'string' },
    },
    async run(v) {
      const t = now();
      const ttl = Number((v['ttl'] as string | undefined) ?? 7 * 86400);
      if (!Number.isSafeInteger(ttl) || ttl <= 0)
        throw new UsageError('--ttl takes a positive number of seconds');
      const signed = signMessage(await readStdin(), {
        key: loadKey(need(v, 'key')),
        domain: need(v, 'domain'),
        selector: need(v, 'selector'),
        recipients: (v['rcpt'] as string[] | undefined) ?? [],
        signedAt: t,
        expiresAt: t + ttl,
        salt: randomBytes(16),
      });
      process.stdout.write(signed);
      return 0;
    },
  },
  verify: {
    summary:
      'verify every Signature of a framed message (stdin); with --rcpt and --from-domain, ' +
      'the exit status is the delivery verdict of the replay rule (§30.7)',
    usage:
      'nmtp verify [--rcpt ADDR --from-domain D] [--now UNIX-SECONDS|YYYY-MM-DDTHH:MM:SSZ]\n' +
      '       [--key-record NAME=TXT…] [--dns-server HOST:PORT…]\n' +
      '  exit status: with --rcpt and --from-domain, 0 = deliver (the last signature by D is\n' +
      '  valid for ADDR; earlier ones are reported, not required), 1 = reject, 75 = retry\n' +
      '  later (a DNS failure); otherwise 0 = every signature valid (at least one), 1 = not,\n' +
      '  75 = only DNS failures. 65 = not a framed message, 2 = usage.',
    options: {
      rcpt: { type: 'string' },
      'from-domain': { type: 'string' },
      now: { type: 'string' },
      ...keyRecordOpt,
      ...dnsOpt,
    },
    async run(v) {
      const rcpt = v['rcpt'] as string | undefined;
      const from = v['from-domain'] as string | undefined;
      if ((rcpt === undefined) !== (from === undefined)) {
        // The replay rule needs both; one alone would give a verdict nobody asked for.
        throw new UsageError('--rcpt and --from-domain go together (the replay rule, §30.7)');
      }
      const result = await verifyMessage(await readStdin(), {
        resolveTxt: resolverFor(v),
        now: verifyTime(v['now'] as string | undefined),
        ...(rcpt === undefined ? {} : { recipient: rcpt }),
        ...(from === undefined ? {} : { authenticatedDomain: from }),
      });
      printVerification(result);
      const code = verifyExit(result);
      if (result.replay !== undefined) {
        out(`verdict: ${code === 0 ? 'deliver' : code === 75 ? 'retry later' : 'reject'}`);
      }
      return code;
    },
  },
  convert: CONVERT_COMMAND,
  inspect: {
    summary: 'decode a framed message (stdin) and print its structure',
    usage: 'nmtp inspect',
    options: {},
    async run() {
      const bytes = await readStdin();
      const d = new FrameDecoder({});
      d.push(bytes);
      for (let ev = d.next(), finished = false; ev !== END; ev = d.next()) {
        if (ev === NEED_MORE) {
          // All input is pushed: a decoder still wanting more means the message is cut short.
          if (finished) break;
          d.finish();
          finished = true;
          continue;
        }
        if (ev.type === 'trace-field') out(`trace ${ev.name}: ${ev.value}`);
        else if (ev.type === 'part-start') {
          const pad = '  '.repeat(ev.depth);
          out(
            `${pad}part ${ev.path.join('.') || 'root'} ${ev.contentType.type}/${ev.contentType.subtype} ${ev.contentLength} octets at ${ev.offset}`,
          );
          for (const f of ev.fields) out(`${pad}  ${f.name}: ${f.value}`);
        } else if (ev.type === 'end')
          out(`content digest ${toBase64url(ev.contentDigest)}, ${ev.totalBytes} octets`);
      }
      return 0;
    },
  },
  ...TRANSPORT_COMMANDS,
  ...SUBMISSION_COMMANDS,
};

function help(): void {
  out('nmtp — try the NMTP message format, signatures and keys by hand\n\ncommands:');
  for (const [name, c] of Object.entries(COMMANDS)) out(`  ${name.padEnd(14)} ${c.summary}`);
  out("\n`nmtp <command> --help` shows a command's options.");
}

export async function main(argv: string[]): Promise<number> {
  const two = `${argv[0] ?? ''} ${argv[1] ?? ''}`;
  const name = COMMANDS[two] ? two : argv[0];
  const rest = argv.slice(COMMANDS[two] ? 2 : 1);
  const cmd = name === undefined ? undefined : COMMANDS[name];
  if (cmd === undefined || name === 'help' || name === '--help') {
    help();
    return cmd === undefined && name !== undefined && name !== 'help' && name !== '--help' ? 2 : 0;
  }
  try {
    const options = { ...cmd.options, help: { type: 'boolean', short: 'h' } } as const;
    const { values, positionals } = parseArgs({
      args: cmd.positionals === true ? positionalsLast(rest, options) : rest,
      options,
      allowPositionals: cmd.positionals === true,
      strict: true,
    });
    if (values['help']) {
      out(`usage: ${cmd.usage}\n\n${cmd.summary}`);
      return 0;
    }
    return await cmd.run(values, positionals);
  } catch (err) {
    if (
      err instanceof UsageError ||
      (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    ) {
      process.stderr.write(`nmtp ${name}: ${(err as Error).message}\nusage: ${cmd.usage}\n`);
      return 2;
    }
    const v = classify(err);
    process.stderr.write(`nmtp ${name}: ${v.message}\n`);
    // Exit codes follow sysexits: 75 (EX_TEMPFAIL) for temporary, 65 (EX_DATAERR) otherwise.
    return v.temporary ? 75 : 65;
  }
}

if (isMain(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
