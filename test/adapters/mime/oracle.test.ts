/**
 * Python 3's email package (policy=default) as an independent decoder: for every corpus
 * message that converts, Subject, From display names and every leaf part (decoded octets;
 * text as text) must agree with ours, except for the few intended differences listed in
 * INTENDED below, each with its reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { legacyToFramed } from '../../../adapters/mime/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { getField, type Part } from '../../../src/core/frame/index.ts';
import { parseMailboxList } from '../../../src/core/address/index.ts';
import { COMPOSED, compose, corpusFiles, leaves, typeOf } from './helpers.ts';

const ORACLE = fileURLToPath(new URL('./oracle.py', import.meta.url));

interface PyLeaf {
  type: string;
  octets_b64: string | null;
  text?: string;
  text_error?: string;
  skip?: boolean;
}
interface PyEntry {
  subject?: string | null;
  from_names?: string[] | null;
  leaves?: PyLeaf[];
}

/** The same sanitising our field values get (spec §50.3.3), applied to Python's text. */
const asField = (s: string): string =>
  s
    .normalize('NFC')
    .replace(/[\s\p{Cc}]+/gu, ' ')
    .trim();

/**
 * Intended differences, by corpus key and aspect. Few and specific; each says why.
 */
const WIN1252 =
  'raw 8-bit header octets that are not UTF-8 are read as windows-1252 (spec §50.3.1); Python replaces them with U+FFFD';
const ADJACENT =
  'RFC 2047 §6.2: whitespace between adjacent encoded-words is dropped; Python keeps a space between words in an address phrase';
const UTF8_IN_ASCII =
  'a us-ascii (or undeclared) text part whose octets are valid UTF-8 is read as UTF-8 (spec §50.5.2); Python replaces each 8-bit octet with U+FFFD';
const UNTERMINATED =
  'the last part of an unterminated multipart keeps its final line break: no delimiter follows it to own the CRLF (RFC 2046 §5.1.1); Python drops it';
const EQ_BOUNDARY =
  'an unquoted boundary containing "=" (not a token, RFC 2045 §5.1) is taken whole, as MUAs do; Python cuts it at "=" and finds no parts';
const NO_COLON =
  'a header line without a colon is dropped and the header block continues (spec §50.3.1); Python ends the header block there and makes the rest body';
const BARE_CR =
  'a bare CR is not a line break (only LF / CRLF end header lines, spec §50.3.1), so it is a control replaced by SP; Python splits the line at it';
const UUENCODE =
  'x-uuencode is not a Content-Transfer-Encoding of RFC 2045; octets are kept as they are, with a warning (spec §50.5.1); Python decodes uuencode';

const INTENDED: Record<string, { aspect: string; reason: string }[]> = {
  'mail-gem/error_emails/invalid_subject_characters.eml': [{ aspect: 'subject', reason: WIN1252 }],
  'mail-gem/error_emails/bad_subject.eml': [{ aspect: 'from', reason: ADJACENT }],
  'mail-gem/error_emails/content_transfer_encoding_plain.eml': [
    { aspect: 'leaf0-text', reason: UTF8_IN_ASCII },
  ],
  'mail-gem/plain_emails/raw_email5.eml': [{ aspect: 'leaf0-text', reason: UTF8_IN_ASCII }],
  'mail-gem/plain_emails/raw_email6.eml': [{ aspect: 'leaf0-text', reason: UTF8_IN_ASCII }],
  'mail-gem/mime_emails/raw_email4.eml': [{ aspect: 'leaf2-text', reason: UNTERMINATED }],
  'fixtures/missing-final-boundary.eml': [{ aspect: 'leaf1-text', reason: UNTERMINATED }],
  'mail-gem/mime_emails/raw_email_with_binary_encoded.eml': [
    { aspect: 'leaf0-octets', reason: EQ_BOUNDARY },
  ],
  'mail-gem/mime_emails/raw_email_with_illegal_boundary.eml': [
    { aspect: 'leaf-count', reason: EQ_BOUNDARY },
  ],
  'mail-gem/plain_emails/raw_email_bad_time.eml': [{ aspect: 'leaf-count', reason: EQ_BOUNDARY }],
  'mail-gem/plain_emails/raw_email_incorrect_header.eml': [
    { aspect: 'subject', reason: NO_COLON },
    { aspect: 'leaf0-text', reason: NO_COLON },
  ],
  'mail-gem/rfc2822/example13.eml': [
    { aspect: 'subject', reason: NO_COLON },
    { aspect: 'leaf0-text', reason: NO_COLON },
  ],
  'fixtures/header-without-colon.eml': [{ aspect: 'leaf0-text', reason: NO_COLON }],
  'fixtures/nul-and-bare-cr.eml': [
    { aspect: 'subject', reason: BARE_CR },
    { aspect: 'leaf0-text', reason: BARE_CR },
  ],
  'fixtures/uuencode-cte.eml': [{ aspect: 'leaf0-octets', reason: UUENCODE }],
};

function intended(key: string, aspect: string): boolean {
  return (INTENDED[key] ?? []).some((d) => aspect.startsWith(d.aspect));
}

test('decoding agrees with Python email (policy=default)', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'nmtp-oracle-'));
  try {
    const inputs = new Map(corpusFiles());
    for (const [name, options] of COMPOSED) {
      const p = join(tmp, `${name}.eml`);
      writeFileSync(p, await compose(options));
      inputs.set(`composed/${name}`, p);
    }
    const py = spawnSync('python3', [ORACLE], {
      input: JSON.stringify([...inputs.values()]),
      maxBuffer: 256 * 1024 * 1024,
      encoding: 'utf8',
    });
    assert.equal(py.status, 0, py.stderr);
    const oracle = JSON.parse(py.stdout) as Record<string, PyEntry>;

    const stats = { messages: 0, headers: 0, leaves: 0, intendedDiffs: 0 };
    const mismatches: string[] = [];
    const usedIntended = new Set<string>();
    const differ = (key: string, aspect: string, detail: string): void => {
      if (intended(key, aspect)) {
        stats.intendedDiffs++;
        usedIntended.add(
          `${key} ${(INTENDED[key] ?? []).find((d) => aspect.startsWith(d.aspect))!.aspect}`,
        );
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

      // Subject
      const ours = getField(root.fields, 'Subject');
      const theirs = o.subject === null || o.subject === undefined ? undefined : asField(o.subject);
      stats.headers++;
      if (ours !== theirs)
        differ(key, 'subject', `${JSON.stringify(ours)} vs ${JSON.stringify(theirs)}`);

      // From display names (when every From mailbox mapped)
      const from = getField(root.fields, 'From');
      if (
        from !== undefined &&
        getField(root.fields, 'Legacy-From') === undefined &&
        o.from_names
      ) {
        stats.headers++;
        const ourNames = parseMailboxList(from).map((m) => m.displayName ?? '');
        const theirNames = o.from_names.map((n) =>
          asField(n).replace(/</g, '\uff1c').replace(/>/g, '\uff1e'),
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
        } else if (type.startsWith('text/') && t.text !== undefined) {
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
            differ(
              key,
              `leaf${i}-octets`,
              `${type}: ${body.length} vs ${theirOctets.length} octets`,
            );
          }
        }
      });
    }
    console.log(`oracle: ${JSON.stringify(stats)}`);
    assert.deepEqual(mismatches, []);
    // Every listed intended difference must still occur (no stale exclusions).
    const listed = Object.entries(INTENDED).flatMap(([k, ds]) => ds.map((d) => `${k} ${d.aspect}`));
    assert.deepEqual(
      listed.filter((l) => !usedIntended.has(l)),
      [],
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
