#!/usr/bin/env python3
"""Generates valid.json and invalid.json in this folder.

This is an independent second encoder (Python, hashlib): it builds each message from its
parts, computes lengths and the content digest itself, and writes the expected structure
by hand. The TypeScript codec is then tested against these files; nothing here is copied
from its output. Run: python3 test/vectors/frame/generate.py
"""
import hashlib
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
CRLF = b"\r\n"


def block(fields):
    return b"".join(f"{n}: {v}".encode() + CRLF for n, v in fields) + CRLF


def leaf(fields, body=b"", length_first=True, name="Content-Length"):
    """A leaf part; Content-Length is added (first, or last) unless fields already have it."""
    if isinstance(body, str):
        body = body.encode()
    if not any(n.lower() == "content-length" for n, _ in fields):
        cl = (name, str(len(body)))
        fields = [cl] + fields if length_first else fields + [cl]
    return {"fields": fields, "body": body}


def container(fields, children):
    return {"fields": fields, "children": children}


def part_bytes(p):
    if "body" in p:
        inner = p["body"]
    else:
        inner = b"".join(part_bytes(c) for c in p["children"])
    # A Content-Length given as None is a placeholder: "compute it, keep its position and case".
    fields = [(n, str(len(inner)) if v is None else v) for n, v in p["fields"]]
    p["fields"] = fields
    if not any(n.lower() == "content-length" for n, _ in fields):
        fields = [("Content-Length", str(len(inner)))] + fields
        p["fields"] = fields
    return block(fields) + inner + CRLF + CRLF


def expected_part(p):
    out = {"fields": [[n, v] for n, v in p["fields"]]}
    if "body" in p:
        out["body_hex"] = p["body"].hex()
    else:
        out["children"] = [expected_part(c) for c in p["children"]]
    return out


def message(trace, root):
    root_bytes = part_bytes(root)
    data = b"NMTP/1\r\n" + block(trace) + root_bytes
    return data, {
        "trace": [[n, v] for n, v in trace],
        "root": expected_part(root),
        "content_digest_hex": hashlib.sha256(root_bytes).hexdigest(),
        "total_bytes": len(data),
    }


def readable(data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


valid = []


def V(id, description, trace, root, limits=None):
    data, expected = message(trace, root)
    v = {"id": id, "description": description}
    text = readable(data)
    if text is not None:
        v["input_text"] = text
    v["input_hex"] = data.hex()
    if limits:
        v["limits"] = limits
    v["expected"] = expected
    valid.append(v)


V(
    "worked-example",
    "The worked example of docs/protocol.md §10.10.",
    [("Trace", "by mx.example.net")],
    container(
        [("From", "Ann <ann@example.org>"), ("Subject", "Grüße"), ("Content-Type", "multipart/mixed")],
        [leaf([], "Hello"), leaf([("Content-Type", "application/octet-stream")], b"\x00\x01\x02")],
    ),
)
V(
    "message-nmtp-multipart",
    "A forwarded multipart message inside message/nmtp inside multipart/mixed.",
    [],
    container(
        [("Content-Type", "multipart/mixed")],
        [
            leaf([], "see below"),
            container(
                [("Content-Type", "message/nmtp")],
                [container([("Subject", "orig"), ("Content-Type", "multipart/alternative")], [leaf([], "a"), leaf([("Content-Type", "text/html")], "<i>a</i>")])],
            ),
        ],
    ),
)
V("minimal", "Smallest message: no trace fields, a root part with an empty body.", [], leaf([]))
V(
    "simple-text",
    "A plain text message with the usual fields.",
    [],
    leaf(
        [
            ("From", "Ann Example <ann@example.org>"),
            ("To", "<bob@example.net>, Carol <carol@example.com>"),
            ("Subject", "Hello"),
            ("Date", "2026-11-29T03:40:00Z"),
            ("Message-Id", "<1@example.org>"),
        ],
        "Hi Bob,\r\nsee you.\r\n",
    ),
)
V(
    "trace-fields",
    "Trace block with repeated Trace fields and a Signature field; none is part of the content digest.",
    [
        ("Signature", "v=1; a=ed25519; d=example.org; s=s1; b=AAAA"),
        ("Trace", "by relay1.example.net"),
        ("Trace", "by relay2.example.net"),
    ],
    leaf([("Subject", "traced")], "x"),
)
V(
    "binary-body",
    "A body holding NUL, CR LF CR LF, a fake version line and a fake header: the length, not the content, ends it.",
    [],
    leaf(
        [("Content-Type", "application/octet-stream")],
        b"\x00\r\n\r\nNMTP/1\r\nContent-Length: 5\r\n\r\n\xff\xfe\x80",
    ),
)
V(
    "multipart-mixed",
    "Text part and a binary attachment with a Unicode file name.",
    [("Trace", "by mx.example.org")],
    container(
        [
            ("From", "Ann <ann@example.org>"),
            ("Subject", "Report"),
            ("Content-Type", "multipart/mixed"),
        ],
        [
            leaf([("Content-Type", "text/plain; charset=utf-8")], "See attached.\r\n"),
            leaf(
                [
                    ("Content-Type", "image/png"),
                    ("Content-Disposition", "attachment"),
                    ("Content-Filename", "Überblick 2026 – Ärger.png"),
                ],
                bytes(range(256)),
            ),
        ],
    ),
)
V(
    "multipart-empty",
    "A multipart with no children: Content-Length 0 and the sentinel.",
    [],
    container([("Content-Type", "multipart/mixed")], []),
)
V(
    "multipart-nested",
    "multipart/alternative inside multipart/mixed (depth 2).",
    [],
    container(
        [("Content-Type", "multipart/mixed")],
        [
            container(
                [("Content-Type", "multipart/alternative")],
                [leaf([], "plain"), leaf([("Content-Type", "text/html")], "<p>html</p>")],
            ),
            leaf([("Content-Type", "application/pdf")], b"%PDF-1.7\n"),
        ],
    ),
)
V(
    "message-nmtp",
    "A forwarded message: message/nmtp holds exactly one nested root part.",
    [],
    container(
        [("Subject", "Fwd: hi"), ("Content-Type", "message/nmtp")],
        [leaf([("From", "<x@example.com>"), ("Subject", "hi")], "inner body")],
    ),
)
V(
    "lowercase-names",
    "Field names are case-insensitive: content-length and CONTENT-TYPE are recognised.",
    [],
    container(
        [("CONTENT-TYPE", "Multipart/Mixed"), ("content-length", None)],
        [leaf([], "a", name="content-length")],
    ),
)
V(
    "length-not-first",
    "Content-Length may be anywhere in the header block.",
    [],
    leaf([("Subject", "late length")], "body", length_first=False),
)
V(
    "unicode-values",
    "UTF-8 header values in NFC: emoji, CJK, RTL text, and a display name with a comma.",
    [],
    leaf(
        [
            ("From", "Doe, John <john@example.org>"),
            ("To", "山田太郎 <taro@例え.jp>, مريم <maryam@example.com>"),
            ("Subject", "Grüße 👋 — 你好"),
        ],
        "ok",
    ),
)
V("empty-value", "A field value may be empty: the line is the name, colon, space, CRLF.", [], leaf([("X-Empty", "")], ""))
V(
    "inner-spaces",
    "Runs of spaces inside a value are kept; only the edges must not be spaces.",
    [],
    leaf([("Subject", "a   b  c")], "."),
)
V(
    "content-type-params",
    "Content-Type with parameters; a parameter value may hold = and spaces but not ;.",
    [],
    container(
        [("Content-Type", "multipart/mixed; x-note=a=b c")],
        [
            leaf([("Content-Type", "text/plain; charset=utf-8; format=flowed")], "t"),
            leaf([("Content-Type", "application/x-nmtp-legacy-text; charset=iso-2022-jp")], b"\x1b$B$3\x1b(B"),
        ],
    ),
)
V(
    "repeated-fields",
    "Fields outside the singleton list may repeat.",
    [],
    leaf([("Keywords", "a"), ("Keywords", "b"), ("X-Tag", "1"), ("x-tag", "2")], "r"),
)
V(
    "date-offsets",
    "An RFC 3339 date with a positive offset and fractional seconds.",
    [],
    leaf([("Date", "2026-11-29T09:10:00.123+05:30")], ""),
)
V(
    "bom-kept",
    "A value starting with U+FEFF keeps it (a decoder must not strip it as a byte order mark).",
    [],
    leaf([("Subject", "\ufeffbom")], ""),
)
V(
    "body-looks-like-header",
    "A body that looks like a header block is still opaque octets.",
    [],
    leaf([], "Content-Length: 5\r\n\r\nhello\r\n\r\n"),
)
V(
    "upper-case-multipart",
    "Media types compare case-insensitively: MULTIPART/MIXED is a container.",
    [],
    container([("Content-Type", "MULTIPART/MIXED")], [leaf([], "u")]),
)
V(
    "depth-at-limit",
    "Nesting exactly at a lowered depth limit (2) is accepted.",
    [],
    container(
        [("Content-Type", "multipart/mixed")],
        [container([("Content-Type", "multipart/mixed")], [leaf([], "deep")])],
    ),
    {"maxDepth": 2},
)
V(
    "parts-at-limit",
    "Exactly a lowered part limit (3, the root included) is accepted.",
    [],
    container([("Content-Type", "multipart/mixed")], [leaf([], "1"), leaf([], "2")]),
    {"maxParts": 3},
)
V(
    "line-at-limit",
    "A header line of exactly a lowered line limit (32 octets with CRLF) is accepted.",
    [],
    leaf([("Subject", "x" * (32 - len("Subject: ") - 2))], ""),
    {"maxLineBytes": 32},
)
V(
    "empty-multipart-in-multipart",
    "An empty multipart as a child.",
    [],
    container([("Content-Type", "multipart/mixed")], [container([("Content-Type", "multipart/related")], []), leaf([], "z")]),
)

# A message of exactly a lowered total limit: compute its size and use that as the limit.
_data, _ = message([], leaf([("Subject", "total")], "12345"))
V(
    "total-at-limit",
    "A message of exactly a lowered total-size limit is accepted.",
    [],
    leaf([("Subject", "total")], "12345"),
    {"maxTotalBytes": len(_data)},
)

for v in valid:
    assert "None" not in v.get("input_text", ""), v["id"]

invalid = []


def I(id, description, data, code, limits=None):
    if isinstance(data, str):
        data = data.encode()
    v = {"id": id, "description": description}
    text = readable(data)
    if text is not None:
        v["input_text"] = text
    v["input_hex"] = data.hex()
    if limits:
        v["limits"] = limits
    v["expected_error"] = code
    invalid.append(v)


def M(root_header, body=b"", trace=b"\r\n", sentinel=b"\r\n\r\n"):
    """Raw message from a raw root header block (without the empty line)."""
    if isinstance(body, str):
        body = body.encode()
    return b"NMTP/1\r\n" + trace + root_header + b"\r\n" + body + sentinel


ok_root = b"Content-Length: 2\r\n"

I("version-2", "Unknown version NMTP/2 is refused, not guessed.", M(ok_root, "hi").replace(b"NMTP/1", b"NMTP/2"), "NMTP_ERR_FRAME_VERSION")
I("version-lowercase", "The version marker is case-sensitive.", M(ok_root, "hi").replace(b"NMTP/1", b"nmtp/1"), "NMTP_ERR_FRAME_VERSION")
I("version-bare-lf", "The version line ends in CRLF.", b"NMTP/1\n\r\nContent-Length: 0\r\n\r\n\r\n\r\n", "NMTP_ERR_FRAME_VERSION")
I("version-missing", "A message must start with the version line.", b"Content-Length: 0\r\n\r\n\r\n\r\n", "NMTP_ERR_FRAME_VERSION")
I("version-10", "NMTP/10 is not NMTP/1.", M(ok_root, "hi").replace(b"NMTP/1", b"NMTP/10"), "NMTP_ERR_FRAME_VERSION")
I("empty-input", "No bytes at all.", b"", "NMTP_ERR_FRAME_TRUNCATED")

I("field-no-space", "A colon must be followed by one SP.", M(ok_root + b"Subject:x\r\n", "hi"), "NMTP_ERR_FRAME_FIELD_SYNTAX")
I("field-name-space", "Field names hold only letters, digits and hyphens.", M(ok_root + b"Sub ject: x\r\n", "hi"), "NMTP_ERR_FRAME_FIELD_SYNTAX")
I("field-name-underscore", "An underscore is not a field-name character.", M(ok_root + b"X_Y: x\r\n", "hi"), "NMTP_ERR_FRAME_FIELD_SYNTAX")
I("field-name-empty", "The field name is not empty.", M(ok_root + b": x\r\n", "hi"), "NMTP_ERR_FRAME_FIELD_SYNTAX")
I("field-name-non-ascii", "Field names are ASCII.", M(ok_root + "Sübject: x\r\n".encode(), "hi"), "NMTP_ERR_FRAME_FIELD_SYNTAX")
I("field-no-colon", "A header line without a colon.", M(ok_root + b"Subject x\r\n", "hi"), "NMTP_ERR_FRAME_FIELD_SYNTAX")
I("field-bare-lf", "A header line ending in LF alone.", M(b"Content-Length: 2\n", "hi"), "NMTP_ERR_FRAME_FIELD_SYNTAX")
I("value-leading-space", "A value must not start with SP (two spaces after the colon).", M(ok_root + b"Subject:  x\r\n", "hi"), "NMTP_ERR_FRAME_FIELD_SYNTAX")
I("value-trailing-space", "A value must not end with SP.", M(ok_root + b"Subject: x \r\n", "hi"), "NMTP_ERR_FRAME_FIELD_SYNTAX")
I("value-only-space", "A value that is one space both starts and ends with SP.", M(ok_root + b"Subject:  \r\n", "hi"), "NMTP_ERR_FRAME_FIELD_SYNTAX")
I("trace-field-syntax", "Trace fields follow the same syntax.", M(ok_root, "hi", trace=b"Trace:by x\r\n\r\n"), "NMTP_ERR_FRAME_FIELD_SYNTAX")

I("utf8-invalid-byte", "0xFF never occurs in UTF-8.", M(ok_root + b"Subject: a\xffb\r\n", "hi"), "NMTP_ERR_FRAME_UTF8")
I("utf8-overlong", "Overlong encoding of '/' (C0 AF).", M(ok_root + b"Subject: \xc0\xaf\r\n", "hi"), "NMTP_ERR_FRAME_UTF8")
I("utf8-surrogate", "An encoded surrogate (ED A0 80) is not UTF-8.", M(ok_root + b"Subject: \xed\xa0\x80\r\n", "hi"), "NMTP_ERR_FRAME_UTF8")
I("utf8-truncated", "A multi-byte sequence cut short by the line end.", M(ok_root + b"Subject: \xe2\x82\r\n", "hi"), "NMTP_ERR_FRAME_UTF8")

I("control-tab", "TAB is a C0 control and not allowed.", M(ok_root + b"Subject: a\tb\r\n", "hi"), "NMTP_ERR_FRAME_CONTROL_CHAR")
I("control-nul", "NUL in a value.", M(ok_root + b"Subject: a\x00b\r\n", "hi"), "NMTP_ERR_FRAME_CONTROL_CHAR")
I("control-cr", "A bare CR inside a value.", M(ok_root + b"Subject: a\rb\r\n", "hi"), "NMTP_ERR_FRAME_CONTROL_CHAR")
I("control-del", "DEL in a value.", M(ok_root + b"Subject: a\x7fb\r\n", "hi"), "NMTP_ERR_FRAME_CONTROL_CHAR")
I("control-c1", "U+0085 (NEL), a C1 control.", M(ok_root + b"Subject: a\xc2\x85b\r\n", "hi"), "NMTP_ERR_FRAME_CONTROL_CHAR")

I("not-nfc", "e + COMBINING ACUTE ACCENT is not NFC (NFC is U+00E9).", M(ok_root + "Subject: caf\u0065\u0301\r\n".encode(), "hi"), "NMTP_ERR_FRAME_NOT_NFC")
I("not-nfc-singleton", "U+212B ANGSTROM SIGN normalises to U+00C5.", M(ok_root + "Subject: \u212b\r\n".encode(), "hi"), "NMTP_ERR_FRAME_NOT_NFC")

I("line-too-long", "A 33-octet line with a 32-octet line limit.", M(ok_root + b"Subject: " + b"x" * 22 + b"\r\n", "hi"), "NMTP_ERR_FRAME_LINE_TOO_LONG", {"maxLineBytes": 32})
I("line-too-long-no-lf", "A line that never ends is refused once it passes the line limit.", b"NMTP/1\r\n\r\nSubject: " + b"x" * 100, "NMTP_ERR_FRAME_LINE_TOO_LONG", {"maxLineBytes": 32})
I("too-many-fields", "Four fields with a field limit of 3.", M(ok_root + b"A: 1\r\nB: 2\r\nC: 3\r\n", "hi"), "NMTP_ERR_FRAME_TOO_MANY_FIELDS", {"maxFields": 3})
I("trace-too-many-fields", "The trace block obeys the field limit too.", M(ok_root, "hi", trace=b"Trace: 1\r\nTrace: 2\r\nTrace: 3\r\n\r\n"), "NMTP_ERR_FRAME_TOO_MANY_FIELDS", {"maxFields": 2})
I("header-too-large", "Header block over a 48-octet header limit, each line within the line limit.", M(ok_root + b"A: 1234567890\r\nB: 1234567890\r\n", "hi"), "NMTP_ERR_FRAME_HEADER_TOO_LARGE", {"maxHeaderBytes": 48})

I("duplicate-from", "Two From fields: verifier and reader could pick different ones.", M(ok_root + b"From: <a@example.org>\r\nFrom: <b@example.org>\r\n", "hi"), "NMTP_ERR_FRAME_DUPLICATE_FIELD")
I("duplicate-subject-case", "Subject and subject are the same field.", M(ok_root + b"Subject: a\r\nsubject: b\r\n", "hi"), "NMTP_ERR_FRAME_DUPLICATE_FIELD")
I("duplicate-content-type", "Two Content-Type fields.", M(ok_root + b"Content-Type: text/plain\r\nContent-Type: multipart/mixed\r\n", "hi"), "NMTP_ERR_FRAME_DUPLICATE_FIELD")
I("duplicate-in-trace", "The singleton rule applies in the trace block too.", M(ok_root, "hi", trace=b"Subject: a\r\nSubject: b\r\n\r\n"), "NMTP_ERR_FRAME_DUPLICATE_FIELD")

I("length-missing", "A part without Content-Length.", M(b"Subject: x\r\n", "hi"), "NMTP_ERR_FRAME_LENGTH_MISSING")
I("length-missing-empty-header", "A part with an empty header block.", b"NMTP/1\r\n\r\n\r\n\r\n\r\n", "NMTP_ERR_FRAME_LENGTH_MISSING")
I("length-duplicate-same", "Two equal Content-Length fields are still refused.", M(b"Content-Length: 2\r\nContent-Length: 2\r\n", "hi"), "NMTP_ERR_FRAME_LENGTH_DUPLICATE")
I("length-duplicate-conflict", "Conflicting Content-Length fields (request-smuggling shape).", M(b"Content-Length: 2\r\ncontent-length: 20\r\n", "hi"), "NMTP_ERR_FRAME_LENGTH_DUPLICATE")
for i, (val, why) in enumerate(
    [
        ("+2", "a sign"),
        ("-1", "a negative number"),
        ("02", "a leading zero"),
        ("0x2", "hexadecimal"),
        ("2e0", "an exponent"),
        ("", "nothing"),
        ("1000000000000000", "16 digits"),
        ("\uff12", "a full-width digit"),
        ("2.0", "a decimal point"),
    ]
):
    I(f"length-syntax-{i}", f"Content-Length with {why}.", M(f"Content-Length: {val}\r\n".encode(), "hi"), "NMTP_ERR_FRAME_LENGTH_SYNTAX")
I("length-over-default-limit", "A declared length beyond the 64 MiB default is refused before any body byte is read.", M(b"Content-Length: 999999999999999\r\n", "", sentinel=b""), "NMTP_ERR_FRAME_LENGTH_OVER_LIMIT")
I("length-over-lowered-limit", "A declared length that would pass a lowered total limit.", M(b"Content-Length: 100\r\n", "", sentinel=b""), "NMTP_ERR_FRAME_LENGTH_OVER_LIMIT", {"maxTotalBytes": 100})

I("content-type-no-slash", "Content-Type without a subtype.", M(ok_root + b"Content-Type: multipart\r\n", "hi"), "NMTP_ERR_FRAME_CONTENT_TYPE_SYNTAX")
I("content-type-no-space", "Parameters are introduced by '; ' (one SP).", M(ok_root + b"Content-Type: text/plain;charset=utf-8\r\n", "hi"), "NMTP_ERR_FRAME_CONTENT_TYPE_SYNTAX")
I("content-type-no-equals", "A parameter without '='.", M(ok_root + b"Content-Type: text/plain; charset\r\n", "hi"), "NMTP_ERR_FRAME_CONTENT_TYPE_SYNTAX")
I("content-type-dup-param", "A parameter given twice.", M(ok_root + b"Content-Type: text/plain; a=1; A=2\r\n", "hi"), "NMTP_ERR_FRAME_CONTENT_TYPE_SYNTAX")
I("content-type-quoted", "MIME quoting is not NMTP syntax (the quote is not a token character in the type).", M(ok_root + b'Content-Type: "text"/plain\r\n', "hi"), "NMTP_ERR_FRAME_CONTENT_TYPE_SYNTAX")

I("address-bare", "An address without angle brackets.", M(ok_root + b"From: a@example.org\r\n", "hi"), "NMTP_ERR_FRAME_ADDRESS_LIST_SYNTAX")
I("address-no-sp", "Display name not followed by SP.", M(ok_root + b"From: Ann<a@example.org>\r\n", "hi"), "NMTP_ERR_FRAME_ADDRESS_LIST_SYNTAX")
I("address-list-no-sp", "Mailboxes separated by ',' without SP.", M(ok_root + b"To: <a@example.org>,<b@example.org>\r\n", "hi"), "NMTP_ERR_FRAME_ADDRESS_LIST_SYNTAX")
I("address-space-inside", "Whitespace inside the address.", M(ok_root + b"To: <a b@example.org>\r\n", "hi"), "NMTP_ERR_FRAME_ADDRESS_LIST_SYNTAX")
I("address-empty", "Empty angle brackets.", M(ok_root + b"Cc: <>\r\n", "hi"), "NMTP_ERR_FRAME_ADDRESS_LIST_SYNTAX")
I("address-trailing-comma", "A list ending in a separator.", M(ok_root + b"To: <a@example.org>, \r\n".replace(b", \r\n", b",\r\n"), "hi"), "NMTP_ERR_FRAME_ADDRESS_LIST_SYNTAX")

I("date-rfc5322", "An RFC 5322 date is not an NMTP date.", M(ok_root + b"Date: Sun, 29 Nov 2026 03:40:00 +0000\r\n", "hi"), "NMTP_ERR_FRAME_DATE_SYNTAX")
I("date-no-offset", "RFC 3339 local time without offset.", M(ok_root + b"Date: 2026-11-29T03:40:00\r\n", "hi"), "NMTP_ERR_FRAME_DATE_SYNTAX")
I("date-feb-30", "No such day.", M(ok_root + b"Date: 2026-02-30T00:00:00Z\r\n", "hi"), "NMTP_ERR_FRAME_DATE_SYNTAX")
I("date-lowercase-t", "Upper-case T and Z only.", M(ok_root + b"Date: 2026-11-29t03:40:00z\r\n", "hi"), "NMTP_ERR_FRAME_DATE_SYNTAX")

I("sentinel-length-short", "Declared length 2, body 3 octets: the octet after 2 is not CR.", M(b"Content-Length: 2\r\n", "hi!"), "NMTP_ERR_FRAME_SENTINEL")
I("sentinel-length-long", "Declared length 4, body 2 octets: the sentinel is absorbed and what follows is not a sentinel.", M(b"Content-Length: 4\r\n", "hi", sentinel=b"\r\n\r\nXY"), "NMTP_ERR_FRAME_SENTINEL")
I("sentinel-half", "Only CRLF after the body.", M(b"Content-Length: 2\r\n", "hi", sentinel=b"\r\nxx"), "NMTP_ERR_FRAME_SENTINEL")
I("sentinel-lf-only", "LF LF is not CRLF CRLF.", M(b"Content-Length: 2\r\n", "hi", sentinel=b"\n\n\n\n"), "NMTP_ERR_FRAME_SENTINEL")

child = b"Content-Length: 1\r\n\r\nx\r\n\r\n"  # a complete 26-octet part
assert len(child) == 26


def CL(n):
    return b"Content-Length: " + str(n).encode() + b"\r\n"


overrun = b"Content-Length: 2\r\n\r\nx\r\n\r\n"  # declares 2, so needs 27 octets
I("container-child-overruns", "A child declares more than its container holds (container 26, child needs 27).", M(b"Content-Type: multipart/mixed\r\n" + CL(len(overrun)), overrun), "NMTP_ERR_FRAME_CONTAINER_MISMATCH")
I("container-leftover", "Three octets after the last child cannot hold a part (no line end before the container ends).", M(b"Content-Type: multipart/mixed\r\n" + CL(len(child) + 3), child + b"abc"), "NMTP_ERR_FRAME_CONTAINER_MISMATCH")
I("container-leftover-crlf", "CRLF after the last child is read as the empty header block of another child, which has no Content-Length.", M(b"Content-Type: multipart/mixed\r\n" + CL(len(child) + 2), child + b"\r\n"), "NMTP_ERR_FRAME_LENGTH_MISSING")
I("message-nmtp-two-parts", "message/nmtp holds exactly one part.", M(b"Content-Type: message/nmtp\r\n" + CL(2 * len(child)), child + child), "NMTP_ERR_FRAME_CONTAINER_MISMATCH")
I("message-nmtp-empty", "message/nmtp with an empty body.", M(b"Content-Type: message/nmtp\r\nContent-Length: 0\r\n", b""), "NMTP_ERR_FRAME_CONTAINER_MISMATCH")
I("container-child-header-overruns", "A child header line runs past the end of its container.", M(b"Content-Type: multipart/mixed\r\n" + CL(10), b"Content-Length: 0\r\n\r\n\r\n\r\n"), "NMTP_ERR_FRAME_CONTAINER_MISMATCH")

mp = b"Content-Type: multipart/mixed\r\n"


def nest(n):
    part = child
    for _ in range(n):
        part = b"Content-Length: " + str(len(part)).encode() + b"\r\n" + mp + b"\r\n" + part + b"\r\n\r\n"
    return part


I("too-deep", "Depth 3 with a depth limit of 2.", b"NMTP/1\r\n\r\n" + nest(3), "NMTP_ERR_FRAME_TOO_DEEP", {"maxDepth": 2})
I("too-many-parts", "Four parts with a part limit of 3.", M(mp + CL(3 * len(child)), child * 3), "NMTP_ERR_FRAME_TOO_MANY_PARTS", {"maxParts": 3})
I("too-large-trace", "The trace block alone passes a lowered total limit.", M(ok_root, "hi", trace=b"Trace: " + b"t" * 40 + b"\r\n\r\n"), "NMTP_ERR_FRAME_TOO_LARGE", {"maxTotalBytes": 40})

I("root-header-too-large-total", "A root header line that passes a lowered total limit.", M(ok_root + b"Subject: " + b"s" * 40 + b"\r\n", "hi"), "NMTP_ERR_FRAME_TOO_LARGE", {"maxTotalBytes": 48})
I("tie-line-and-header", "A line passing the line limit and the header-block limit at the same octet: the header-block code wins (9, step 2).", M(b"Subject: " + b"x" * 22 + b"\r\n" + ok_root, "hi"), "NMTP_ERR_FRAME_HEADER_TOO_LARGE", {"maxLineBytes": 32, "maxHeaderBytes": 32})
I("too-deep-message-nmtp", "Nesting through message/nmtp counts as depth.", M(b"Content-Type: message/nmtp\r\n" + CL(len(b"Content-Type: message/nmtp\r\n" + CL(len(child)) + b"\r\n" + child + b"\r\n\r\n")), b"Content-Type: message/nmtp\r\n" + CL(len(child)) + b"\r\n" + child + b"\r\n\r\n"), "NMTP_ERR_FRAME_TOO_DEEP", {"maxDepth": 1})
I("trace-line-too-long", "Trace fields obey the line limit.", M(ok_root, "hi", trace=b"Trace: " + b"t" * 30 + b"\r\n\r\n"), "NMTP_ERR_FRAME_LINE_TOO_LONG", {"maxLineBytes": 32})
I("child-length-syntax", "A child part's Content-Length is checked like the root's.", M(mp + CL(len(b"Content-Length: 01\r\n\r\nx\r\n\r\n")), b"Content-Length: 01\r\n\r\nx\r\n\r\n"), "NMTP_ERR_FRAME_LENGTH_SYNTAX")
I("child-sentinel", "A child whose length lies short fails at its sentinel.", M(mp + CL(len(b"Content-Length: 0\r\n\r\nx\r\n\r\n")), b"Content-Length: 0\r\n\r\nx\r\n\r\n"), "NMTP_ERR_FRAME_SENTINEL")

I("trailing-crlf", "CRLF after the root part's sentinel.", M(ok_root, "hi") + b"\r\n", "NMTP_ERR_FRAME_TRAILING_BYTES")
I("trailing-message", "A second message appended to the first.", M(ok_root, "hi") + M(ok_root, "yo"), "NMTP_ERR_FRAME_TRAILING_BYTES")

I("truncated-body", "Input ends inside a body.", M(b"Content-Length: 10\r\n", "hi", sentinel=b""), "NMTP_ERR_FRAME_TRUNCATED")
I("truncated-header", "Input ends inside a header line.", b"NMTP/1\r\n\r\nContent-Len", "NMTP_ERR_FRAME_TRUNCATED")
I("truncated-sentinel", "Input ends inside the sentinel.", M(ok_root, "hi", sentinel=b"\r\n\r"), "NMTP_ERR_FRAME_TRUNCATED")
I("truncated-version", "Input ends inside the version line.", b"NMTP/", "NMTP_ERR_FRAME_TRUNCATED")
I("truncated-trace", "Input ends inside the trace block.", b"NMTP/1\r\nTrace: x\r\n", "NMTP_ERR_FRAME_TRUNCATED")

# Bounds reached exactly at the end of input (10.9 steps 2 and 8): a bound that is reached
# is an error found in what arrived, reported without waiting, so the end of input there is
# not TRUNCATED — the same code as with one more octet.
full_trace = b"NMTP/1\r\nTrace: " + b"t" * 23 + b"\r\n"  # 32 octets of trace block, no empty line
assert len(full_trace) - 8 == 32
I("header-full-at-end", "Trace lines filling the 32-octet header limit exactly, then the end of input: the empty line can no longer fit.", full_trace, "NMTP_ERR_FRAME_HEADER_TOO_LARGE", {"maxHeaderBytes": 32, "maxLineBytes": 32})
I("header-full-plus-one", "The same with one more octet: the same code.", full_trace + b"x", "NMTP_ERR_FRAME_HEADER_TOO_LARGE", {"maxHeaderBytes": 32, "maxLineBytes": 32})
I("line-at-limit-no-lf-at-end", "A trace line of exactly the 32-octet line limit without LF, then the end of input: its LF could only come past the limit.", b"NMTP/1\r\nTrace: " + b"t" * 25, "NMTP_ERR_FRAME_LINE_TOO_LONG", {"maxLineBytes": 32})
I("line-below-limit-no-lf-at-end", "One octet shorter: the LF could still come, so the end of input is TRUNCATED.", b"NMTP/1\r\nTrace: " + b"t" * 24, "NMTP_ERR_FRAME_TRUNCATED", {"maxLineBytes": 32})
I("container-child-header-fills-container-at-end", "A child's header line fills its container exactly, then the end of input: the empty line cannot fit in the container.", M(mp + CL(len(CL(1))), CL(1), sentinel=b""), "NMTP_ERR_FRAME_CONTAINER_MISMATCH")

ids = [v["id"] for v in valid + invalid]
assert len(ids) == len(set(ids)), "duplicate ids"

HEADER = {
    "format": "NMTP/1 framed-message vectors (docs/protocol.md section 10)",
    "fields": "input_hex is normative; input_text is the same bytes as a JSON string when they are UTF-8. "
    "limits overrides the default decoder limits for that vector. Valid vectors give the decoded "
    "trace and part tree (fields as [name, value] in written order, Content-Length included; "
    "body_hex for leaves, children for containers), the content digest (SHA-256 of the root part) "
    "and total_bytes. Invalid vectors give the error code a conforming decoder reports.",
}
for name, vs in (("valid.json", valid), ("invalid.json", invalid)):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        json.dump({**HEADER, "vectors": vs}, f, ensure_ascii=False, indent=2)
        f.write("\n")
print(f"{len(valid)} valid, {len(invalid)} invalid")
