/**
 * The receiver's check of a view (src/core/session/view.ts, §60.10.4, §60.10.6): every view
 * the reference client cuts from a message passes, split anywhere; a view that is not the
 * view of the announced message, or does not reproduce a view held before, is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeMessage, type Part } from '../../../src/core/frame/index.ts';
import { keyPairFromSeed } from '../../../src/core/keys/index.ts';
import { signMessage } from '../../../src/core/message/index.ts';
import {
  ViewChecker,
  VIEWS,
  viewSha256,
  type Announcement,
  type HeldView,
  type View,
} from '../../../src/core/session/index.ts';
import { LayoutScanner, viewRanges } from '../../../src/client/source.ts';

const enc = new TextEncoder();
const key = keyPairFromSeed(Uint8Array.from({ length: 32 }, (_, i) => i));

function signed(root: Part, subject = 'hi'): Uint8Array {
  const withSubject: Part = {
    ...root,
    fields: [{ name: 'Subject', value: subject }, ...root.fields],
  };
  return signMessage(encodeMessage({ trace: [], root: withSubject }), {
    key,
    domain: 'example.org',
    selector: 's2026',
    recipients: ['alice@example.net'],
    signedAt: 1795000000,
    expiresAt: 1795604800,
    salt: new Uint8Array(16),
  });
}

const leaf = (type: string, body: string): Part => ({
  fields: [{ name: 'Content-Type', value: type }],
  body: enc.encode(body),
});
const MESSAGES: Record<string, Uint8Array> = {
  'text/plain root': signed(leaf('text/plain', 'hello\n')),
  'non-text root': signed(leaf('application/octet-stream', 'xyz')),
  multipart: signed({
    fields: [{ name: 'Content-Type', value: 'multipart/mixed' }],
    children: [
      leaf('text/html', '<p>hi</p>'),
      {
        fields: [{ name: 'Content-Type', value: 'multipart/alternative' }],
        children: [
          leaf('text/plain', 'the text\r\n\r\nwith an empty line'),
          leaf('text/plain', 'no'),
        ],
      },
    ],
  }),
  'multipart without text/plain': signed({
    fields: [{ name: 'Content-Type', value: 'multipart/mixed' }],
    children: [leaf('text/html', '<p>hi</p>')],
  }),
};

function layoutOf(m: Uint8Array) {
  const s = new LayoutScanner();
  s.push(m);
  return s.finish();
}

function viewOf(m: Uint8Array, view: View): Uint8Array {
  const parts = viewRanges(layoutOf(m), view).map(([a, b]) => m.subarray(a, b));
  return Buffer.concat(parts);
}

function announce(m: Uint8Array): Announcement {
  const l = layoutOf(m);
  return { size: l.size, digest: l.digest, signers: l.signers };
}

function check(
  octets: Uint8Array,
  view: View,
  a: Announcement,
  earlier?: HeldView,
  step = octets.length || 1,
) {
  const c = new ViewChecker(view, a, earlier);
  for (let at = 0; at < octets.length; at += step) c.push(octets.subarray(at, at + step));
  return c.finish();
}

for (const [name, m] of Object.entries(MESSAGES)) {
  for (const view of VIEWS) {
    test(`${name}: the client's ${view} view passes, whole and split at every octet`, () => {
      const v = viewOf(m, view);
      assert.deepEqual(check(v, view, announce(m)), { ok: true });
      if (v.length < 2000) {
        for (const step of [1, 7, 64])
          assert.deepEqual(check(v, view, announce(m), undefined, step), { ok: true });
      }
    });
    for (const earlier of VIEWS) {
      test(`${name}: a ${view} view reproduces the ${earlier} view held before`, () => {
        const held: HeldView = { view: earlier, sha256: viewSha256(viewOf(m, earlier)) };
        for (const step of [1, 13, 100000]) {
          assert.deepEqual(check(viewOf(m, view), view, announce(m), held, step), { ok: true });
        }
      });
    }
  }
}

test('a headers view of another message (same announcement) is refused when the full one arrives', () => {
  const real = MESSAGES.multipart!;
  const fake = signed(
    {
      fields: [{ name: 'Content-Type', value: 'multipart/mixed' }],
      children: [leaf('text/plain', 'harmless')],
    },
    'harmless',
  );
  for (const v of ['signers', 'headers', 'text'] as const) {
    const held: HeldView = { view: v, sha256: viewSha256(viewOf(fake, v)) };
    const r = check(real, 'full', announce(real), held);
    if (v === 'signers') {
      // Signed by the same key for the same recipient, salt and times, but over another
      // digest: the trace block differs.
      assert.equal(r.ok, false);
    } else {
      assert.equal(r.ok, false, v);
      if (!r.ok) assert.match(r.reason, new RegExp(`does not reproduce the ${v} view`));
    }
  }
});

test('a malformed headers view is refused with the reason', () => {
  const m = MESSAGES['text/plain root']!;
  const a = announce(m);
  const h = viewOf(m, 'headers');
  const cases: [string, Uint8Array][] = [
    ['no root header block', viewOf(m, 'signers')],
    ['cut in the middle', h.subarray(0, h.length - 5)],
    ['octets after the header block', Buffer.concat([h, enc.encode('x')])],
    [
      'a bare LF',
      Buffer.from(
        Buffer.from(h).toString('latin1').replace('Subject: hi\r\n', 'Subject: hi\n'),
        'latin1',
      ),
    ],
    ['another version', Buffer.concat([enc.encode('NMTP/2\r\n'), h.subarray(8)])],
  ];
  for (const [why, octets] of cases) assert.equal(check(octets, 'headers', a).ok, false, why);
});

test('a preview whose signatures are for another digest or by others is refused', () => {
  const m = MESSAGES.multipart!;
  const a = announce(m);
  const other = announce(MESSAGES['non-text root']!);
  for (const view of ['signers', 'headers', 'text'] as const) {
    const v = viewOf(m, view);
    assert.match(
      (check(v, view, { ...a, digest: other.digest }) as { reason: string }).reason,
      /another content digest/,
    );
    assert.match(
      (check(v, view, { ...a, signers: ['example.com'] }) as { reason: string }).reason,
      /announced example.com/,
    );
  }
  // The full view: the signer list must match too; the digest is the receiver's own check.
  assert.equal(check(m, 'full', { ...a, signers: [] }).ok, false);
  assert.deepEqual(check(m, 'full', { ...a, digest: other.digest }), { ok: true });
});

test('the digest view carries nothing; a text view is the headers view or the text part', () => {
  const m = MESSAGES.multipart!;
  const a = announce(m);
  assert.equal(check(enc.encode('x'), 'digest', a).ok, false);
  // A multipart message's text view holds one text/plain part, not another part.
  const wrong = Buffer.concat([
    viewOf(m, 'headers'),
    enc.encode('Content-Type: text/html\r\nContent-Length: 2\r\n\r\nhi\r\n\r\n'),
  ]);
  assert.equal(check(wrong, 'text', a).ok, false);
  // With no text/plain leaf the text view is the headers view (§60.10.4).
  const n = MESSAGES['multipart without text/plain']!;
  assert.deepEqual(viewOf(n, 'text'), viewOf(n, 'headers'));
  assert.deepEqual(check(viewOf(n, 'headers'), 'text', announce(n)), { ok: true });
  // A text/plain root's text view is the message: a cut one is refused.
  const t = MESSAGES['text/plain root']!;
  assert.equal(check(t.subarray(0, t.length - 1), 'text', announce(t)).ok, false);
  // And a non-text root's text view is only its headers.
  const b = MESSAGES['non-text root']!;
  assert.equal(check(b, 'text', announce(b)).ok, false);
});

test('every transition to a bigger view must reproduce the held one (signers → headers → text → full)', () => {
  const real = MESSAGES.multipart!;
  // The same signatures and root header block, another text part.
  const other = Buffer.from(
    Buffer.from(real).toString('latin1').replace('the text', 'THE TEXT'),
    'latin1',
  );
  assert.equal(other.length, real.length);
  const a = announce(real);
  const pairs: [View, View][] = [
    ['signers', 'headers'],
    ['signers', 'text'],
    ['headers', 'text'],
    ['text', 'full'],
    ['text', 'text'],
  ];
  for (const [held, next] of pairs) {
    // The later view is the real message's; the held one was cut from a message that
    // differs only where the held view reaches (its text part), or is tampered (signers).
    const source =
      held === 'signers' ? tamperTrace(real) : held === 'headers' ? otherSubject(real) : other;
    const h: HeldView = { view: held, sha256: viewSha256(viewOf(source, held)) };
    const r = check(viewOf(real, next), next, a, h);
    assert.equal(r.ok, false, `${held} → ${next}`);
  }
});

/** The message with another Subject (another root header block). */
function otherSubject(m: Uint8Array): Uint8Array {
  return Buffer.from(
    Buffer.from(m).toString('latin1').replace('Subject: hi', 'Subject: ho'),
    'latin1',
  );
}

/** The message with one more trace field (a trace block the receiver did not see). */
function tamperTrace(m: Uint8Array): Uint8Array {
  const text = Buffer.from(m).toString('latin1');
  return Buffer.from(text.replace('NMTP/1\r\n', 'NMTP/1\r\nTrace: relay.example\r\n'), 'latin1');
}
