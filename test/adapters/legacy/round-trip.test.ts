/**
 * Round trip over a corpus: legacy → framed (Engineer A's legacyToFramed) → legacy (ours)
 * → framed again. Every header's decoded text, every part's decoded octets, the tree shape
 * and the filenames must survive: the second framed message must equal the first (apart
 * from the Legacy-* provenance fields the conversion adds each time), and Python's email
 * package must read our legacy output as the framed message says (helpers.ts).
 *
 * Corpus: A's fixtures (test/fixtures/mime/*.eml) and ../shared/corpus/mail-gem/ (read in
 * place; the test fails if it is missing). Messages A's converter refuses are counted, not
 * round-tripped: that is A's contract.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { isContainerPart, type FramedMessage, type Part } from '../../../src/core/frame/index.ts';
import { legacyToFramed } from '../../../adapters/mime/index.ts';
import { framedToLegacy } from '../../../adapters/legacy/index.ts';
import { PEERS, assertDecodedEqual, assertWireRules, pythonDecode } from './helpers.ts';

const CORPUS = fileURLToPath(new URL('../../../../shared/corpus/mail-gem/', import.meta.url));
const MIME_FIXTURES = fileURLToPath(new URL('../../fixtures/mime/', import.meta.url));

function emls(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .flatMap((n) => {
      const p = join(dir, n);
      return statSync(p).isDirectory() ? emls(p) : n.endsWith('.eml') ? [p] : [];
    });
}

const CONVERT = { gateway: 'gw.example.net', now: Date.UTC(2026, 10, 29, 4, 0, 0) };

/** The framed tree without the provenance a conversion adds (it differs per conversion). */
function comparable(p: Part): unknown {
  const fields = p.fields
    .filter((x) => !/^(legacy-|content-length$)/i.test(x.name))
    .map((x) => [x.name.toLowerCase(), x.value]);
  return isContainerPart(p)
    ? { fields, children: p.children.map(comparable) }
    : { fields, body: Buffer.from(p.body).toString('base64') };
}

describe('round trip legacy → framed → legacy → framed over the corpus', () => {
  it('the shared corpus is present', () => {
    assert.ok(existsSync(CORPUS), `missing corpus ${CORPUS}`);
  });

  const files = [...emls(MIME_FIXTURES), ...emls(CORPUS)];
  const accepted: { file: string; msg: FramedMessage }[] = [];
  const refused: string[] = [];

  it('A converts the corpus (messages it refuses are counted)', async () => {
    assert.ok(files.length >= 100, `corpus of ${files.length}`);
    for (const file of files) {
      try {
        const { message } = await legacyToFramed(new Uint8Array(readFileSync(file)), CONVERT);
        accepted.push({ file, msg: message });
      } catch (e) {
        if (!(e instanceof NmtpError)) throw e;
        refused.push(`${file}: ${e.code}`);
      }
    }
    console.log(`round trip: ${accepted.length} of ${files.length} accepted by legacyToFramed`);
    assert.ok(accepted.length > 0);
  });

  for (const peer of PEERS) {
    const label = `${peer.smtputf8 ? 'SMTPUTF8' : 'no-SMTPUTF8'}+${peer.eightBitMime ? '8BITMIME' : '7bit'}`;
    it(`every accepted message round-trips (${label})`, async () => {
      const failures: string[] = [];
      const outs: { file: string; msg: FramedMessage; out: Uint8Array }[] = [];
      let needUtf8 = 0;
      for (const { file, msg } of accepted) {
        let out: Uint8Array;
        try {
          out = framedToLegacy(msg, peer);
        } catch (e) {
          // Toward a 7-bit peer a UTF-8 address or message id has no legacy form.
          if (e instanceof NmtpError && !peer.smtputf8 && /NEEDS_SMTPUTF8$/.test(e.code)) {
            needUtf8++;
            continue;
          }
          failures.push(`${file}: ${String(e)}`);
          continue;
        }
        outs.push({ file, msg, out });
        try {
          assertWireRules(out, peer);
          const again = await legacyToFramed(out, CONVERT);
          assert.deepEqual(comparable(again.message.root), comparable(msg.root));
        } catch (e) {
          failures.push(`${file}: ${String(e).slice(0, 600)}`);
        }
      }
      const decoded = pythonDecode(outs.map((o) => o.out));
      outs.forEach(({ file, msg }, i) => {
        try {
          assertDecodedEqual(msg.root, decoded[i]!, peer);
        } catch (e) {
          failures.push(`${file} (python): ${String(e).slice(0, 600)}`);
        }
      });
      console.log(
        `round trip ${label}: ${outs.length - new Set(failures.map((x) => x.split(':')[0])).size} of ${accepted.length} ok; ${needUtf8} need SMTPUTF8`,
      );
      assert.deepEqual(failures, []);
    });
  }
});
