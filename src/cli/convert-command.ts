/**
 * `nmtp convert`: legacy RFC 5322/MIME to a framed message and back. Its own module so
 * the MIME stack (mailsplit, libmime, iconv-lite, mailauth: tens of MB) is loaded when this
 * command runs, not with every `nmtp` command (`nmtp serve` never uses it).
 */
import { hostname } from 'node:os';
import { encodeMessage } from '../core/frame/index.ts';
import { decodeAndValidate } from '../core/message/index.ts';
import { need, readStdin, UsageError, type CliCommand } from './args.ts';

export const CONVERT_COMMAND: CliCommand = {
  summary: 'convert a legacy RFC 5322/MIME message to a framed one or back (stdin → stdout)',
  usage:
    'nmtp convert --to framed [--gateway D] [--mail-from A --rcpt A…] [--carry-original]\n' +
    '       nmtp convert --to legacy [--smtputf8] [--8bitmime]',
  options: {
    to: { type: 'string' },
    gateway: { type: 'string' },
    'mail-from': { type: 'string' },
    rcpt: { type: 'string', multiple: true },
    'carry-original': { type: 'boolean' },
    smtputf8: { type: 'boolean' },
    '8bitmime': { type: 'boolean' },
  },
  async run(v) {
    const to = need(v, 'to');
    const input = await readStdin();
    if (to === 'framed') {
      // Loaded here, not with the program: the MIME stack (mailsplit, libmime, iconv-lite,
      // mailauth) is tens of MB that `nmtp serve` and the other commands never use.
      const { legacyToFramed } = await import('../../adapters/mime/index.ts');
      const mailFrom = v['mail-from'] as string | undefined;
      const { message, warnings } = await legacyToFramed(input, {
        gateway: (v['gateway'] as string | undefined) ?? hostname(),
        now: Date.now(),
        ...(mailFrom === undefined
          ? {}
          : { envelope: { mailFrom, rcptTo: (v['rcpt'] as string[] | undefined) ?? [] } }),
        ...(v['carry-original'] === true ? { carryOriginal: true } : {}),
      });
      for (const w of warnings) process.stderr.write(`warning ${w.code}: ${w.detail}\n`);
      process.stdout.write(encodeMessage(message));
      return 0;
    }
    if (to === 'legacy') {
      const { framedToLegacyChunks } = await import('../../adapters/legacy/index.ts');
      const message = decodeAndValidate(input);
      const chunks = framedToLegacyChunks(message, {
        smtputf8: v['smtputf8'] === true,
        eightBitMime: v['8bitmime'] === true,
      });
      for (const chunk of chunks) process.stdout.write(chunk);
      return 0;
    }
    throw new UsageError('--to takes "framed" or "legacy"');
  },
};
