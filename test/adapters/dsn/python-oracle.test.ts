/**
 * Independent reader: python3's standard `email` package (policy=default) parses some
 * builder outputs; its view of the structure and of the delivery-status fields must match
 * what we meant to write. (For message/delivery-status, Python splits the body into one
 * header block per field group; message/global-delivery-status it reads as an embedded
 * message, so the remaining groups are split off its body and read with Python's own
 * header parser.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { buildDsn } from '../../../adapters/dsn/index.ts';
import { CASES, fixedSources } from './cases.ts';

const SCRIPT = String.raw`
import sys, json, email
from email import policy
from email.parser import HeaderParser
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
out = {
  "type": msg.get_content_type(),
  "report_type": msg.get_param("report-type"),
  "to": str(msg["To"]), "from": str(msg["From"]), "auto": str(msg["Auto-Submitted"]),
  "defects": [type(d).__name__ for d in msg.defects],
  "parts": [], "groups": [], "returned_subject": None,
}
for part in msg.iter_parts():
    out["parts"].append(part.get_content_type())
    out["defects"] += [type(d).__name__ for d in part.defects]
    ct = part.get_content_type()
    if ct == "message/delivery-status":
        out["groups"] = [dict((k, str(v)) for k, v in g.items()) for g in part.get_payload()]
    elif ct == "message/global-delivery-status":
        # Python treats unknown message/* as an embedded message: the per-message group
        # becomes its header, the per-recipient groups its body; split those by blank lines.
        first = part.get_payload(0)
        rest = first.get_payload(decode=True).decode("utf-8")
        blocks = [b for b in rest.replace("\r\n", "\n").split("\n\n") if b.strip()]
        out["groups"] = [dict((k, str(v)) for k, v in first.items())] + [
            dict((k, str(v)) for k, v in HeaderParser(policy=policy.default).parsestr(b).items()) for b in blocks]
    elif ct in ("message/rfc822", "message/global"):
        inner = part.get_payload(0) if part.is_multipart() else email.message_from_bytes(part.get_payload(decode=True), policy=policy.default)
        out["returned_subject"] = str(inner["Subject"])
print(json.dumps(out, ensure_ascii=False))
`;

function python(bytes: Uint8Array): Record<string, unknown> {
  const r = spawnSync('python3', ['-c', SCRIPT], { input: bytes, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

test('python3 email reads the mixed report as we wrote it', () => {
  const b = buildDsn(CASES.find((c) => c.name === 'mixed-multiple')!.input, fixedSources());
  const p = python(b.bytes);
  assert.equal(p.type, 'multipart/report');
  assert.equal(p.report_type, 'delivery-status');
  assert.equal(p.to, 'alice@legacy.example');
  assert.equal(p.from, 'Mail Delivery System <MAILER-DAEMON@example.net>');
  assert.equal(p.auto, 'auto-replied');
  assert.deepEqual(p.defects, []);
  assert.deepEqual(p.parts, ['text/plain', 'message/delivery-status', 'text/rfc822-headers']);
  const groups = p.groups as Record<string, string>[];
  assert.equal(groups.length, 5);
  assert.equal(groups[0]!['Original-Envelope-Id'], 'QQ314159');
  assert.equal(groups[0]!['Reporting-MTA'], 'dns; gw.example.net');
  assert.deepEqual(
    groups.slice(1).map((g) => [g['Final-Recipient'], g.Action, g.Status]),
    [
      ['rfc822; bob@nmtp.example', 'failed', '5.1.1'],
      ['rfc822; carol@nmtp.example', 'delayed', '4.2.0'],
      ['rfc822; erin@nmtp.example', 'relayed', '2.0.0'],
      ['rfc822; frank@legacy3.example', 'failed', '5.1.1'],
    ],
  );
  assert.equal(groups[2]!['Will-Retry-Until'], 'Fri, 4 Dec 2026 03:40:00 +0000');
  // Python unfolds the folded Diagnostic-Code to the same single line.
  assert.equal(
    groups[4]!['Diagnostic-Code'],
    "smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email address for typos or unnecessary spaces.",
  );
});

test('python3 email reads RET=FULL and the RFC 6533 global report', () => {
  const full = python(
    buildDsn(CASES.find((c) => c.name === 'ret-full')!.input, fixedSources()).bytes,
  );
  assert.deepEqual(full.parts, ['text/plain', 'message/delivery-status', 'message/rfc822']);
  assert.equal(full.returned_subject, 'Quarterly report');
  assert.deepEqual(full.defects, []);

  const g = python(
    buildDsn(CASES.find((c) => c.name === 'utf8-global')!.input, fixedSources()).bytes,
  );
  assert.equal(g.report_type, 'global-delivery-status');
  assert.equal(g.to, 'jürgen@legacy.example');
  assert.deepEqual(g.parts, ['text/plain', 'message/global-delivery-status', 'message/global']);
  assert.deepEqual(g.defects, []);
  const groups = g.groups as Record<string, string>[];
  assert.equal(groups[1]!['Final-Recipient'], 'utf-8; 用户@nmtp.example');
  assert.equal(groups[1]!['Diagnostic-Code'], 'X-NMTP; 5.1.1 用户不存在 (no such user)');
  assert.equal(g.returned_subject, 'Grüße');
});
