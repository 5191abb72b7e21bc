/**
 * A second implementation of the message layer, written from docs/protocol.md alone
 * (test/interop/nmtp_message.py, Python standard library + Debian's python3-cryptography),
 * must agree with the vectors and with the reference CLI: "second implementations written
 * from the spec alone" have to interoperate with ours. The frame vectors (§10.13) and the
 * signature vectors (§30.10) are checked value for value; then messages made fresh by
 * `nmtp convert` + `nmtp sign` (with keys from `nmtp keys generate`), and tampered copies
 * of them, get the same per-signature verdicts and the same replay-rule verdict from the
 * Python verifier as from `nmtp verify`. No DNS: key records are given as data
 * (`--key-record` for the CLI, a name → records map for Python).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./nmtp_message.py', import.meta.url));
const CLI = fileURLToPath(new URL('../../bin/nmtp', import.meta.url));
const VECTORS = fileURLToPath(new URL('../vectors/', import.meta.url));

// The vector files' shapes, as far as this test reads them (§10.13, §30.10).
interface Vectors {
  vectors: {
    id: string;
    expected?: unknown;
    expected_error?: string;
    input?: unknown;
  }[];
}
interface SigVectors {
  vectors: { id: string; input: unknown; expected: { status: string; code?: string } }[];
}
interface WorkedExample {
  root_part_text: string;
  digest_hex: string;
  field_value: string;
  domain: string;
  selector: string;
  dns_record: string;
  signed_at: number;
  expires_at: number;
  recipients: string[];
}

const readJson = <T>(rel: string): T => JSON.parse(readFileSync(join(VECTORS, rel), 'utf8')) as T;

/** Runs one command of nmtp_message.py: JSON in, JSON out. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON keyed by vector id
function python(command: string, input: unknown): Record<string, any> {
  const out = execFileSync(PYTHON, [SCRIPT, command], {
    input: JSON.stringify(input),
    maxBuffer: 64 << 20,
  });
  return JSON.parse(out.toString('utf8'));
}

interface Run {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

/** The reference CLI as a black box (bin/nmtp is what `npx nmtp` runs). */
function nmtp(args: string[], stdin: Uint8Array = new Uint8Array(0)): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (status) =>
      resolve({ status, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }),
    );
    child.stdin.end(stdin);
  });
}

test('nmtp_message.py runs under /usr/bin/python3 with cryptography', () => {
  // test/harness installs python3-cryptography (test/harness/debian-packages.txt).
  execFileSync(PYTHON, ['-c', 'import cryptography.hazmat.primitives.asymmetric.ed25519']);
});

test('frame: every valid vector decodes to the same trace, part tree, digest and size', () => {
  const doc = readJson<Vectors>('frame/valid.json');
  const got = python('frame-vectors', doc);
  for (const v of doc.vectors) {
    assert.deepEqual(got[v.id], { ok: v.expected }, v.id);
  }
});

test('frame: every invalid vector is refused with the same code', () => {
  const doc = readJson<Vectors>('frame/invalid.json');
  const got = python('frame-vectors', doc);
  for (const v of doc.vectors) {
    assert.deepEqual(got[v.id], { error: v.expected_error }, v.id);
  }
});

test('signature: every vector gets the same status and code', () => {
  const doc = readJson<SigVectors>('signature/vectors.json');
  const got = python('sig-vectors', doc);
  for (const v of doc.vectors) {
    const want: Record<string, unknown> = { status: v.expected.status };
    if (v.expected.code !== undefined) want.code = v.expected.code;
    assert.deepEqual(got[v.id], want, v.id);
  }
});

test('signature: the worked example of §30.9 (digest of its root part, and its verdicts)', () => {
  const w = readJson<WorkedExample>('signature/worked-example.json');
  const framed = Buffer.concat([Buffer.from('NMTP/1\r\n\r\n'), Buffer.from(w.root_part_text)]);
  const frame = python('frame-vectors', {
    vectors: [{ id: 'w', input_hex: framed.toString('hex') }],
  });
  assert.equal(frame.w.ok.content_digest_hex, w.digest_hex);
  const input = (recipient: string, now: number): unknown => ({
    field_value: w.field_value,
    digest_hex: w.digest_hex,
    now,
    recipient,
    dns: { [`${w.selector}._nmtpkey.${w.domain}`]: [w.dns_record] },
    certificates: [],
  });
  const got = python('sig-vectors', {
    vectors: [
      { id: 'valid', input: input(w.recipients[0]!, w.signed_at) },
      { id: 'other-recipient', input: input('carol@example.net', w.signed_at) },
      { id: 'after-x', input: input(w.recipients[0]!, w.expires_at + 1) },
    ],
  });
  assert.deepEqual(got, {
    valid: { status: 'valid' },
    'other-recipient': { status: 'not-for-recipient', code: 'NMTP_ERR_SIG_NOT_FOR_RECIPIENT' },
    'after-x': { status: 'expired', code: 'NMTP_ERR_SIG_EXPIRED' },
  });
});

// ---- Messages made fresh by the CLI ------------------------------------------------------

interface Case {
  id: string;
  message: Buffer;
  now: number;
  records: Record<string, string>;
  rcpt?: string;
  fromDomain?: string;
  /** Sanity check that the variant is what it claims (both implementations must say so). */
  expect: string[] | { error: string };
}

let dir = '';
const cases: Case[] = [];

const LEGACY = [
  'From: Ann <ann@example.org>',
  'To: Bob <bob@example.net>, dave@example.net',
  'Subject: interop',
  'Date: Mon, 7 Dec 2026 10:00:00 +0000',
  'Message-ID: <interop-1@example.org>',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'Hello Bob, gr\u00fc\u00dfe.',
  '',
].join('\r\n');

/** "s1._nmtpkey.example.org. IN TXT "v=…"" → [name, record]. */
function record(printed: string): [string, string] {
  const m = /^(\S+)\. IN TXT "(.*)"$/m.exec(printed);
  assert.ok(m, printed);
  return [m[1]!, m[2]!];
}

function tagOf(message: Buffer, n: number, tag: string): number {
  const sigs = [...message.toString('latin1').matchAll(/^Signature: (.*)\r$/gm)];
  const m = new RegExp(`; ${tag}=([0-9]+);`).exec(sigs[n]![1]!);
  return Number(m![1]);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nmtp-interop-'));
  const keyA = join(dir, 'a.pem');
  const keyB = join(dir, 'b.pem');
  const keyW = join(dir, 'w.pem');
  const [ga, gb, gw, conv] = await Promise.all([
    nmtp(['keys', 'generate', '--domain', 'example.org', '--selector', 's1', '--out', keyA]),
    nmtp(['keys', 'generate', '--domain', 'relay.example.net', '--selector', 'r1', '--out', keyB]),
    nmtp(['keys', 'generate', '--domain', 'example.org', '--selector', 's1', '--out', keyW]),
    nmtp(['convert', '--to', 'framed'], Buffer.from(LEGACY)),
  ]);
  for (const r of [ga, gb, gw, conv]) assert.equal(r.status, 0, r.stderr);
  const [nameA, recA] = record(ga.stdout.toString());
  const [nameB, recB] = record(gb.stdout.toString());
  const [, recW] = record(gw.stdout.toString());
  const rcpts = ['--rcpt', 'bob@example.net', '--rcpt', 'dave@example.net'];
  const s1 = await nmtp(
    ['sign', '--key', keyA, '--domain', 'example.org', '--selector', 's1', ...rcpts],
    conv.stdout,
  );
  assert.equal(s1.status, 0, s1.stderr);
  // A relay signs what it sends on, for one recipient.
  const s2 = await nmtp(
    [
      'sign',
      '--key',
      keyB,
      '--domain',
      'relay.example.net',
      '--selector',
      'r1',
      '--rcpt',
      'bob@example.net',
    ],
    s1.stdout,
  );
  assert.equal(s2.status, 0, s2.stderr);
  const signed = s2.stdout;
  const t = tagOf(signed, 0, 't');
  const x = tagOf(signed, 0, 'x');
  // The relay signed in the same second or a later one: its t= and x= may be one more.
  const t1 = tagOf(signed, 1, 't');
  const x1 = tagOf(signed, 1, 'x');
  const now = t + 60;
  const good = { [nameA]: recA, [nameB]: recB };
  const text = signed.toString('latin1');
  const edit = (from: string, to: string): Buffer => {
    assert.ok(text.includes(from), from);
    return Buffer.from(text.replace(from, to), 'latin1');
  };
  const base = { message: signed, now, records: good };
  const V = 'valid';
  cases.push(
    { ...base, id: 'as-signed', expect: [V, V] },
    {
      ...base,
      id: 'replay-ok-relay',
      rcpt: 'bob@example.net',
      fromDomain: 'relay.example.net',
      expect: [V, V],
    },
    {
      ...base,
      id: 'replay-not-for-recipient',
      rcpt: 'dave@example.net',
      fromDomain: 'relay.example.net',
      expect: ['valid', 'not-for-recipient'],
    },
    {
      ...base,
      id: 'replay-no-transfer-signature',
      rcpt: 'bob@example.net',
      fromDomain: 'other.example',
      expect: [V, V],
    },
    {
      ...base,
      id: 'body-octet',
      message: edit('Hello Bob', 'Hello Bop'),
      expect: ['invalid', 'invalid'],
    },
    {
      ...base,
      id: 'signed-tag-t',
      message: edit(`t=${t}; x=${x}`, `t=${t - 1}; x=${x}`),
      expect: ['invalid', V],
    },
    {
      ...base,
      id: 'wrong-key-record',
      records: { [nameA]: recW, [nameB]: recB },
      expect: ['invalid', V],
    },
    // A revoked author key, and no record at all for the relay's selector.
    {
      ...base,
      id: 'revoked-and-missing-record',
      records: { [nameA]: recA.replace(/p=[^;]+/, 'p=') },
      expect: ['revoked', 'unknown-key'],
    },
    {
      ...base,
      id: 'expired-key-record',
      records: { [nameA]: `${recA}; x=${t}`, [nameB]: recB },
      expect: ['expired', V],
    },
    {
      ...base,
      id: 'signature-expired',
      now: Math.max(x, x1) + 1,
      expect: ['expired', 'expired'],
    },
    { ...base, id: 'signature-at-expiry', now: Math.min(x, x1), expect: [V, V] },
    {
      ...base,
      id: 'signature-from-future',
      now: Math.min(t, t1) - 301,
      expect: ['invalid', 'invalid'],
    },
    {
      ...base,
      id: 'malformed-signature',
      message: edit('; a=ed25519; d=example.org', '; a=ed25519;  d=example.org'),
      expect: ['invalid', V],
    },
    {
      ...base,
      id: 'trailing-octet',
      message: Buffer.concat([signed, Buffer.from('x')]),
      expect: { error: 'NMTP_ERR_FRAME_TRAILING_BYTES' },
    },
  );
});

after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

interface Verdicts {
  signatures?: { status: string; code?: string }[];
  replay?: { verdict: string; code?: string };
  error?: string;
}

/** Reads `nmtp verify`'s report: one line per signature, the replay rule, exit status. */
function fromCli(r: Run, withReplay: boolean): Verdicts {
  if (r.status === 65) {
    const m = /(NMTP_ERR_[A-Z0-9_]+)/.exec(r.stderr);
    return { error: m?.[1] ?? r.stderr };
  }
  const out = r.stdout.toString();
  const signatures = [
    ...out.matchAll(/^signature \d+: (\S+)\s.*?(?: {2}(NMTP_ERR_[A-Z0-9_]+))?$/gm),
  ].map((m) => (m[2] === undefined ? { status: m[1]! } : { status: m[1]!, code: m[2] }));
  const v: Verdicts = { signatures };
  if (withReplay) {
    const code = /^replay rule: refused \((NMTP_ERR_[A-Z0-9_]+)\)$/m.exec(out)?.[1];
    const verdict = r.status === 0 ? 'deliver' : r.status === 75 ? 'defer' : 'reject';
    v.replay = code === undefined ? { verdict } : { verdict, code };
  }
  return v;
}

test('fresh CLI messages: Python verdicts equal `nmtp verify`, per signature and for the replay rule', async () => {
  assert.ok(cases.length > 0);
  const cliRuns = await Promise.all(
    cases.map((c) => {
      const args = ['verify', '--now', String(c.now)];
      for (const [name, txt] of Object.entries(c.records))
        args.push('--key-record', `${name}=${txt}`);
      if (c.rcpt !== undefined) args.push('--rcpt', c.rcpt, '--from-domain', c.fromDomain!);
      return nmtp(args, c.message);
    }),
  );
  const py = python(
    'verify-messages',
    cases.map((c) => ({
      id: c.id,
      message_b64: c.message.toString('base64'),
      now: c.now,
      dns: Object.fromEntries(Object.entries(c.records).map(([n, t]) => [n, [t]])),
      ...(c.rcpt === undefined ? {} : { rcpt: c.rcpt, from_domain: c.fromDomain }),
    })),
  );
  cases.forEach((c, i) => {
    const ref = fromCli(cliRuns[i]!, c.rcpt !== undefined);
    const p = py[c.id] as Verdicts & { signatures?: { d?: string; temporary?: boolean }[] };
    const mine: Verdicts =
      p.error !== undefined
        ? { error: p.error }
        : {
            signatures: p.signatures!.map((s) =>
              s.code === undefined ? { status: s.status } : { status: s.status, code: s.code! },
            ),
            ...(p.replay === undefined ? {} : { replay: p.replay }),
          };
    assert.deepEqual(mine, ref, `${c.id}: python vs nmtp verify`);
    if (Array.isArray(c.expect)) {
      assert.deepEqual(
        ref.signatures?.map((s) => s.status),
        c.expect,
        `${c.id}: statuses`,
      );
    } else {
      assert.deepEqual(ref, c.expect, `${c.id}: refused`);
    }
  });
});
