/**
 * Shared by the legacy → framed tests: the corpus (hand-written fixtures, the real-world
 * mail-gem corpus read in place, nodemailer-generated messages), and tree walking.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import MailComposer from 'nodemailer/lib/mail-composer';
import type Mail from 'nodemailer/lib/mailer';
import { legacyToFramed } from '../../../adapters/mime/index.ts';
import { parseMailboxList } from '../../../src/core/address/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';
import {
  getField,
  isContainerPart,
  parseContentType,
  type Part,
} from '../../../src/core/frame/index.ts';

export const FIXTURES = fileURLToPath(new URL('../../fixtures/mime/', import.meta.url));
export const MAIL_GEM = fileURLToPath(
  new URL('../../../../shared/corpus/mail-gem/', import.meta.url),
);

export interface ManifestEntry {
  readonly outcome: string;
  readonly why?: string;
  readonly warnings?: readonly string[];
}

export function loadManifest(): Record<string, ManifestEntry> {
  const m = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as {
    messages: Record<string, ManifestEntry>;
  };
  return m.messages;
}

function walk(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.eml')) out.push(p);
  }
  return out;
}

/**
 * Python's own email test messages (Lib/test/test_email/data/msg_*.txt), read in place from
 * the installation of the python3 that runs the oracle; Debian's python3 has them in
 * libpython3.11-testsuite (test/harness/debian-packages.txt).
 */
export function pythonEmailData(): string {
  const py = spawnSync(
    'python3',
    [
      '-c',
      'import os, sys, email; d = os.path.dirname(os.path.dirname(email.__file__)); ' +
        "print(os.path.join(d, 'test', 'test_email', 'data')); " +
        "print(f'/usr/lib/python3.{sys.version_info[1]}/test/test_email/data')",
    ],
    { encoding: 'utf8' },
  );
  const candidates = (py.stdout ?? '').split('\n').filter((l) => l !== '');
  const dir = candidates.find((d) => existsSync(join(d, 'msg_01.txt')));
  if (dir === undefined) {
    throw new Error(
      `Python's email test messages missing (looked in ${candidates.join(', ')}): ` +
        'apt-get install libpython3.11-testsuite',
    );
  }
  return dir;
}

let pythonFiles: [string, string][] | undefined;

/** Corpus files keyed like the manifest. Throws (test fails) when ../shared is missing. */
export function corpusFiles(): Map<string, string> {
  if (!existsSync(MAIL_GEM)) throw new Error(`corpus missing: ${MAIL_GEM} (CI has ../shared)`);
  const out = new Map<string, string>();
  for (const p of walk(MAIL_GEM, [])) out.set(`mail-gem/${p.slice(MAIL_GEM.length)}`, p);
  for (const p of walk(FIXTURES, [])) out.set(`fixtures/${p.slice(FIXTURES.length)}`, p);
  if (pythonFiles === undefined) {
    const dir = pythonEmailData();
    pythonFiles = readdirSync(dir)
      .filter((n) => /^msg_\d+[a-z]?\.txt$/.test(n))
      .sort()
      .map((n) => [`python/${n}`, join(dir, n)]);
  }
  for (const [k, p] of pythonFiles) out.set(k, p);
  return out;
}

/** Builds a message with nodemailer's MailComposer (a real-world legacy writer). */
export async function compose(mail: Mail.Options): Promise<Buffer> {
  return new MailComposer(mail).compile().build();
}

const FROM = '"Ålice Ünïcode" <alice@example.com>';
const LONG = 'Lorem ipsum dolor sit amet, '.repeat(40);

/** MailComposer option sets covering encodings, charsets, structure and headers. */
export const COMPOSED: readonly (readonly [string, Mail.Options])[] = [
  ['text-only', { from: FROM, to: 'bob@example.org', subject: 'hi', text: 'hello' }],
  ['html-only', { from: FROM, to: 'bob@example.org', subject: 'html', html: '<p>ok ✓</p>' }],
  [
    'alternative',
    { from: FROM, to: 'b@example.org', subject: 'alt', text: 'plain', html: '<b>bold</b>' },
  ],
  [
    'unicode-subject',
    { from: FROM, to: 'b@example.org', subject: 'Grüße ✓ 中文 😀 '.repeat(8), text: 'x' },
  ],
  ['long-text-qp', { from: FROM, to: 'b@example.org', subject: 'qp', text: `é ${LONG}` }],
  [
    'b64-text',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 'b64',
      text: '中文'.repeat(200),
      textEncoding: 'base64',
    },
  ],
  [
    'qp-forced',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 'qpf',
      text: 'Ångström = 1e-10 m',
      textEncoding: 'quoted-printable',
    },
  ],
  [
    'attachment-buffer',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 'att',
      text: 'see',
      attachments: [{ filename: 'data.bin', content: Buffer.from([0, 1, 2, 255, 13, 10, 13]) }],
    },
  ],
  [
    'attachment-unicode-name',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 'att',
      text: 'see',
      attachments: [
        {
          filename: 'résumé € 2026 — final version with a very long name.pdf',
          content: Buffer.from('%PDF-1.4\n'),
        },
      ],
    },
  ],
  [
    'attachment-text',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 'att',
      text: 'see',
      attachments: [{ filename: 'notes.txt', content: 'line1\nline2\n' }],
    },
  ],
  [
    'inline-cid',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 'cid',
      html: '<img src="cid:logo@x">',
      attachments: [
        { filename: 'logo.png', content: Buffer.from('89504e47', 'hex'), cid: 'logo@x' },
      ],
    },
  ],
  [
    'cc-reply-to',
    {
      from: FROM,
      to: ['a@example.org', '"Doe, John" <john@example.org>'],
      cc: 'c@example.org',
      replyTo: 'r@example.org',
      subject: 'rcpts',
      text: 'x',
    },
  ],
  [
    'sender',
    { from: FROM, sender: 'list@example.net', to: 'b@example.org', subject: 's', text: 'x' },
  ],
  [
    'refs',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 're',
      text: 'x',
      inReplyTo: '<a@b>',
      references: ['<a@b>', '<c@d>'],
      messageId: '<mid@example.com>',
    },
  ],
  [
    'date',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 'd',
      text: 'x',
      date: new Date('2026-11-29T04:00:00Z'),
    },
  ],
  [
    'custom-headers',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 'h',
      text: 'x',
      headers: { 'X-Tracking': 'éè', 'X-Priority': '1' },
    },
  ],
  ['priority', { from: FROM, to: 'b@example.org', subject: 'p', text: 'x', priority: 'high' }],
  [
    'list-headers',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 'l',
      text: 'x',
      list: { unsubscribe: 'https://example.com/u', id: 'list.example.com' },
    },
  ],
  [
    'rfc822-attachment',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 'fwd',
      text: 'fwd',
      attachments: [
        {
          filename: 'inner.eml',
          contentType: 'message/rfc822',
          content: 'From: inner@example.net\r\nSubject: inner\r\n\r\ninner body\r\n',
        },
      ],
    },
  ],
  [
    'alternatives',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 'alts',
      text: 'x',
      alternatives: [{ contentType: 'text/x-web-markdown', content: '**x**' }],
    },
  ],
  [
    'iso-8859-1-text',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 'latin',
      text: { content: Buffer.from('caf\xe9', 'latin1') },
      headers: {},
    },
  ],
  [
    'ical',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 'cal',
      text: 'x',
      icalEvent: { method: 'request', content: 'BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n' },
    },
  ],
  [
    'amp',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 'amp',
      text: 't',
      html: '<p>h</p>',
      amp: '<!doctype html><html ⚡4email></html>',
    },
  ],
  [
    'many-attachments',
    {
      from: FROM,
      to: 'b@example.org',
      subject: 'many',
      text: 'x',
      attachments: Array.from({ length: 12 }, (_, i) => ({
        filename: `f${i}.dat`,
        content: Buffer.alloc(i * 100, i),
      })),
    },
  ],
  [
    'eai-address',
    { from: 'Ünï <üser@exämple.com>', to: 'δοκιμή@παράδειγμα.ελ', subject: 'eai', text: 'x' },
  ],
  [
    'bcc-dropped',
    { from: FROM, to: 'b@example.org', bcc: 'hidden@example.org', subject: 'bcc', text: 'x' },
  ],
];

/** Leaves in preorder (what Python's walk() yields for non-multipart parts). */
export function leaves(part: Part, out: Part[] = []): Part[] {
  if (isContainerPart(part)) for (const c of part.children) leaves(c, out);
  else out.push(part);
  return out;
}

export function typeOf(part: Part): string {
  const v = getField(part.fields, 'Content-Type');
  if (v === undefined) return 'text/plain';
  const ct = parseContentType(v);
  return `${ct.type}/${ct.subtype}`.toLowerCase();
}

/** Tree shape as a string: types, nesting. */
export function shape(part: Part): string {
  if (!isContainerPart(part)) return typeOf(part);
  return `${typeOf(part)}(${part.children.map(shape).join(',')})`;
}

// ---- Python email oracle (oracle.py): shared by oracle.test.ts and generated-oracle.test.ts

const ORACLE = fileURLToPath(new URL('./oracle.py', import.meta.url));

export interface PyLeaf {
  type: string;
  octets_b64: string | null;
  text?: string;
  text_error?: string;
  skip?: boolean;
  /** part.get_filename(): RFC 2231 / RFC 2047 decoded, `filename` else `name`. */
  filename?: string | null;
}
export interface PyEntry {
  subject?: string | null;
  from_names?: string[] | null;
  leaves?: PyLeaf[];
}

/** What Python's email package (policy=default) decodes for each file, keyed by path. */
export function runOracle(paths: readonly string[]): Record<string, PyEntry> {
  const py = spawnSync('python3', [ORACLE], {
    input: JSON.stringify(paths),
    maxBuffer: 256 * 1024 * 1024,
    encoding: 'utf8',
  });
  if (py.status !== 0) throw new Error(`oracle.py failed: ${py.stderr}`);
  return JSON.parse(py.stdout) as Record<string, PyEntry>;
}

/**
 * The sanitising our field values get (spec §50.3.3), applied to Python's text: each control
 * (TAB included) one SP, runs kept, NFC, SP trimmed at the ends.
 */
export const asField = (s: string): string =>
  s
    .replace(/\p{Cc}/gu, ' ')
    .normalize('NFC')
    .replace(/^ +| +$/g, '');
/** Display names are prepared as §20.8 says: whitespace runs become one SP. */
export const asName = (s: string): string =>
  s
    .normalize('NFC')
    .replace(/[\s\p{Cc}]+/gu, ' ')
    .trim();

/**
 * Decides whether a difference is intended: returns the listed entry it matched (for the
 * stale-exclusion check), or undefined when the difference is a mismatch.
 */
export type IntendedFn = (key: string, aspect: string) => string | undefined;

export interface OracleComparison {
  stats: { messages: number; headers: number; leaves: number; intendedDiffs: number };
  /** The same counts over the items of keys that are not written to show differences. */
  found: { items: number; intendedDiffs: number };
  mismatches: string[];
  usedIntended: Set<string>;
}

/**
 * Converts each input (key → path) and compares Subject, From display names and every leaf
 * with Python's decoding. Inputs that fail with an NmtpError are skipped (their outcome is
 * another test's business).
 */
export async function compareWithOracle(
  inputs: ReadonlyMap<string, string>,
  oracle: Record<string, PyEntry>,
  intended: IntendedFn,
  written: (key: string) => boolean = () => false,
  opts: { filenames?: boolean } = {},
): Promise<OracleComparison> {
  const stats = { messages: 0, headers: 0, leaves: 0, intendedDiffs: 0 };
  const found = { items: 0, intendedDiffs: 0 };
  const mismatches: string[] = [];
  const usedIntended = new Set<string>();
  const differ = (key: string, aspect: string, detail: string): void => {
    const hit = intended(key, aspect);
    if (hit !== undefined) {
      stats.intendedDiffs++;
      if (!written(key)) found.intendedDiffs++;
      usedIntended.add(hit);
      return;
    }
    mismatches.push(`${key} ${aspect}: ${detail}`);
  };

  for (const [key, path] of inputs) {
    let root: Part;
    try {
      root = (await legacyToFramed(readFileSync(path), { gateway: 'gw.example', now: 0 })).message
        .root;
    } catch (e) {
      if (e instanceof NmtpError) continue; // expected failures are the corpus test's business
      throw e;
    }
    const o = oracle[path]!;
    stats.messages++;
    const before = stats.headers + stats.leaves;

    // Subject
    const ours = getField(root.fields, 'Subject');
    const theirs = o.subject === null || o.subject === undefined ? undefined : asField(o.subject);
    stats.headers++;
    if (ours !== theirs)
      differ(key, 'subject', `${JSON.stringify(ours)} vs ${JSON.stringify(theirs)}`);

    // From display names (when every From mailbox mapped)
    const from = getField(root.fields, 'From');
    if (from !== undefined && getField(root.fields, 'Legacy-From') === undefined && o.from_names) {
      stats.headers++;
      const ourNames = parseMailboxList(from).map((m) => m.displayName ?? '');
      const theirNames = o.from_names.map((n) =>
        asName(n).replace(/</g, '\uff1c').replace(/>/g, '\uff1e'),
      );
      if (JSON.stringify(ourNames) !== JSON.stringify(theirNames)) {
        differ(key, 'from', `${JSON.stringify(ourNames)} vs ${JSON.stringify(theirNames)}`);
      }
    }

    // Leaves
    const ourLeaves = leaves(root);
    const theirLeaves = o.leaves ?? [];
    if (ourLeaves.length !== theirLeaves.length) {
      differ(key, 'leaf-count', `${ourLeaves.length} vs ${theirLeaves.length}`);
      if (!written(key)) found.items += stats.headers + stats.leaves - before;
      continue;
    }
    ourLeaves.forEach((leaf, i) => {
      const t = theirLeaves[i]!;
      const body = 'body' in leaf ? leaf.body : new Uint8Array(0);
      stats.leaves++;
      const type = typeOf(leaf);
      if (t.skip === true) {
        // message/delivery-status: Python splits it into header blocks (see oracle.py).
        if (type !== 'message/delivery-status')
          differ(key, `leaf${i}-type`, `${type} vs delivery-status`);
        return;
      }
      if (opts.filenames === true) {
        // Content-Filename (spec §50.5.3) against part.get_filename().
        const ourName = getField(leaf.fields, 'Content-Filename');
        const theirName =
          t.filename === null || t.filename === undefined ? undefined : asField(t.filename);
        if (ourName !== theirName)
          differ(
            key,
            `leaf${i}-filename`,
            `${JSON.stringify(ourName)} vs ${JSON.stringify(theirName)}`,
          );
      }
      if (type.startsWith('text/') && t.text !== undefined) {
        const text = new TextDecoder().decode(body);
        if (text !== t.text)
          differ(
            key,
            `leaf${i}-text`,
            `${JSON.stringify(text.slice(0, 80))} vs ${JSON.stringify(t.text.slice(0, 80))}`,
          );
      } else {
        const theirOctets = Buffer.from(t.octets_b64 ?? '', 'base64');
        if (!theirOctets.equals(body)) {
          differ(key, `leaf${i}-octets`, `${type}: ${body.length} vs ${theirOctets.length} octets`);
        }
      }
    });
    if (!written(key)) found.items += stats.headers + stats.leaves - before;
  }
  return { stats, found, mismatches, usedIntended };
}
