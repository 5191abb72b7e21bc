#!/usr/bin/python3
"""An independent second implementation of the NMTP/1 message layer, for interop tests.

Written from docs/protocol.md (sections 2, 10, 30, 40) and the vector files' own
documentation only, without reading the reference implementation, so that a place where
the spec does not decide shows up as a disagreement (test/interop/message-interop.test.ts).

Scope: decoding a framed message (section 10, with the limits and error precedence of
section 10.9 and the content digest of section 10.7) and verifying its signatures as a
receiver does (section 30.2-30.7 and 30.12), with domain key records (section 40.2) and
certificates (section 40.6) given as data: `dns` maps a TXT owner name to its records (a
missing name is NXDOMAIN, as in test/vectors/signature/vectors.json). Not covered: the
address layer of section 20 (full validation, section 30.12, checks only the frame-layer
address syntax of section 10.5.3 here) and signing.

Dependencies: the standard library, and `cryptography` (Debian python3-cryptography) as a
second ed25519 verifier that must agree with the pure-Python rule of section 30.5.

Command line (JSON on stdin, JSON on stdout):
  nmtp_message.py frame-vectors      {"vectors": [...]} as in test/vectors/frame/*.json
  nmtp_message.py sig-vectors        {"vectors": [...]} as in test/vectors/signature/vectors.json
  nmtp_message.py verify-messages    [{"id", "message_b64", "now", "dns", "rcpt"?, "from_domain"?}]
"""

import base64
import hashlib
import json
import re
import sys
import unicodedata

# ---------------------------------------------------------------------------------------
# Section 10: the framed message
# ---------------------------------------------------------------------------------------

# Section 10.8: default limits; keys as in the vectors' `limits` object (section 10.13).
DEFAULT_LIMITS = {
    "maxLineBytes": 8192,
    "maxFields": 256,
    "maxHeaderBytes": 65536,
    "maxDepth": 32,
    "maxParts": 10000,
    "maxTotalBytes": 67108864,
}

# Section 10.3: singleton fields (lower-cased: names compare case-insensitively).
SINGLETONS = {
    n.lower()
    for n in (
        "Content-Length Content-Type Content-Disposition Content-Filename Content-Id "
        "Content-Language From Sender Reply-To To Cc Subject Date Message-Id "
        "In-Reply-To References"
    ).split()
}
ADDRESS_LIST_FIELDS = {"from", "sender", "reply-to", "to", "cc"}  # section 10.5.3

# Unicode White_Space (PropList.txt), for the `address` rule of section 10.5.3.
WHITE_SPACE = set(
    [chr(c) for c in range(0x09, 0x0E)]
    + [" ", "\u0085", "\u00a0", "\u1680"]
    + [chr(c) for c in range(0x2000, 0x200B)]
    + ["\u2028", "\u2029", "\u202f", "\u205f", "\u3000"]
)

FIELD_NAME = re.compile(rb"[A-Za-z0-9-]+")
CONTENT_LENGTH = re.compile(r"(?:0|[1-9][0-9]{0,14})\Z")  # section 10.5.1
TOKEN = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*"  # section 10.5.2, RFC 6838 restricted-name
CT_HEAD = re.compile(r"(" + TOKEN + r")/(" + TOKEN + r")")
CT_PARAM = re.compile(r"; (" + TOKEN + r")=([^;]*)")
DATE = re.compile(  # section 10.5.4
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-]([0-9]{2}):([0-9]{2}))\Z"
)


class FrameError(Exception):
    """A decoding error; `code` is the NMTP_ERR_FRAME_* code of section 10.9."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def check_content_type(value):
    """Section 10.5.2. Returns (type, subtype) lower-cased."""
    m = CT_HEAD.match(value)
    if not m:
        raise FrameError("NMTP_ERR_FRAME_CONTENT_TYPE_SYNTAX")
    pos, seen = m.end(), set()
    while pos < len(value):
        p = CT_PARAM.match(value, pos)
        if not p or p.group(1).lower() in seen:
            raise FrameError("NMTP_ERR_FRAME_CONTENT_TYPE_SYNTAX")
        seen.add(p.group(1).lower())
        pos = p.end()
    return m.group(1).lower(), m.group(2).lower()


def check_address_list(value):
    """Section 10.5.3: the frame layer's delimiting syntax only."""
    bad = FrameError("NMTP_ERR_FRAME_ADDRESS_LIST_SYNTAX")
    pos = 0
    while True:
        lt = value.find("<", pos)
        if lt < 0:
            raise bad
        if lt > pos:  # display-name SP
            name = value[pos:lt]
            if len(name) < 2 or not name.endswith(" "):
                raise bad
            name = name[:-1]
            if ">" in name or name.startswith(" ") or name.endswith(" "):
                raise bad
        gt = value.find(">", lt + 1)
        if gt < 0:
            raise bad
        addr = value[lt + 1 : gt]
        if not addr or any(
            c in "<>," or c in WHITE_SPACE or is_control(c) for c in addr
        ):
            raise bad
        pos = gt + 1
        if pos == len(value):
            return
        if not value.startswith(", ", pos):
            raise bad
        pos += 2


def check_date(value):
    """Section 10.5.4: RFC 3339 with upper-case T/Z, seconds 00-59, a real day."""
    m = DATE.match(value)
    if not m:
        raise FrameError("NMTP_ERR_FRAME_DATE_SYNTAX")
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    ok = 1 <= mo <= 12 and 1 <= d <= days[mo - 1] and h <= 23 and mi <= 59 and s <= 59
    if m.group(7) is not None:
        ok = ok and int(m.group(7)) <= 23 and int(m.group(8)) <= 59
    if not ok:
        raise FrameError("NMTP_ERR_FRAME_DATE_SYNTAX")


def is_control(c):
    o = ord(c)
    return o <= 0x1F or 0x7F <= o <= 0x9F


class Decoder:
    """Sections 10.2-10.9: decodes a whole input as a stream would see it, reporting the
    first error in the order of section 10.9 (end of input = NMTP_ERR_FRAME_TRUNCATED
    unless a bound was reached in what arrived)."""

    def __init__(self, data, limits=None):
        self.data = data
        self.lim = dict(DEFAULT_LIMITS, **(limits or {}))
        self.pos = 0
        self.parts = 0

    def decode(self):
        d = self.data
        # Step 1: the version line, octet by octet.
        for i, b in enumerate(b"NMTP/1\r\n"):
            if i >= len(d):
                raise FrameError("NMTP_ERR_FRAME_TRUNCATED")
            if d[i] != b:
                raise FrameError("NMTP_ERR_FRAME_VERSION")
        self.pos = 8
        trace = self.read_header_block(None)
        root_start = self.pos
        root = self.read_part(0, None, root=True)
        # Step 8: nothing after the root's sentinel (section 10.2).
        if self.pos < len(d):
            raise FrameError("NMTP_ERR_FRAME_TRAILING_BYTES")
        return {
            "trace": trace,
            "root": root,
            # Section 10.7: SHA-256 of the root part, first field octet through sentinel.
            "content_digest_hex": hashlib.sha256(d[root_start : self.pos]).hexdigest(),
            "total_bytes": self.pos,
        }

    def read_header_block(self, container_end):
        """Steps 2-3 of section 10.9. Returns [[name, value], ...]."""
        d, lim = self.data, self.lim
        fields, seen, used = [], set(), 0
        while True:
            # Step 2: the bound B and, on a tie, the later error of the list.
            bounds = [
                (lim["maxLineBytes"], "NMTP_ERR_FRAME_LINE_TOO_LONG"),
                (lim["maxHeaderBytes"] - used, "NMTP_ERR_FRAME_HEADER_TOO_LARGE"),
                (lim["maxTotalBytes"] - self.pos, "NMTP_ERR_FRAME_TOO_LARGE"),
            ]
            if container_end is not None:
                bounds.append((container_end - self.pos, "NMTP_ERR_FRAME_CONTAINER_MISMATCH"))
            b = min(x for x, _ in bounds)
            code = [c for x, c in bounds if x == b][-1]
            if b <= 0:
                raise FrameError(code)
            lf = d.find(b"\n", self.pos, self.pos + b)
            if lf < 0:
                if len(d) - self.pos >= b:
                    raise FrameError(code)
                raise FrameError("NMTP_ERR_FRAME_TRUNCATED")
            line = d[self.pos : lf + 1]
            self.pos = lf + 1
            # Step 3.
            if len(line) < 2 or line[-2] != 0x0D:
                raise FrameError("NMTP_ERR_FRAME_FIELD_SYNTAX")
            used += len(line)
            if line == b"\r\n":
                return fields
            if len(fields) >= lim["maxFields"]:
                raise FrameError("NMTP_ERR_FRAME_TOO_MANY_FIELDS")
            m = FIELD_NAME.match(line)
            if not m or line[m.end() : m.end() + 2] != b": ":
                raise FrameError("NMTP_ERR_FRAME_FIELD_SYNTAX")
            name = line[: m.end()].decode("ascii")
            raw = line[m.end() + 2 : -2]
            try:
                value = raw.decode("utf-8", "strict")  # rejects overlong, surrogates
            except UnicodeDecodeError:
                raise FrameError("NMTP_ERR_FRAME_UTF8")
            if any(is_control(c) for c in value):
                raise FrameError("NMTP_ERR_FRAME_CONTROL_CHAR")
            if unicodedata.normalize("NFC", value) != value:
                raise FrameError("NMTP_ERR_FRAME_NOT_NFC")
            if value.startswith(" ") or value.endswith(" "):
                raise FrameError("NMTP_ERR_FRAME_FIELD_SYNTAX")
            key = name.lower()
            if key in SINGLETONS:
                if key in seen:
                    raise FrameError(
                        "NMTP_ERR_FRAME_LENGTH_DUPLICATE"
                        if key == "content-length"
                        else "NMTP_ERR_FRAME_DUPLICATE_FIELD"
                    )
                seen.add(key)
            # Section 10.5: structured syntax, wherever the field occurs.
            if key == "content-length" and not CONTENT_LENGTH.match(value):
                raise FrameError("NMTP_ERR_FRAME_LENGTH_SYNTAX")
            if key == "content-type":
                check_content_type(value)
            if key in ADDRESS_LIST_FIELDS:
                check_address_list(value)
            if key == "date":
                check_date(value)
            fields.append([name, value])

    def read_part(self, depth, container_end, root=False):
        """Steps 4-7 of section 10.9 for one part and its subtree."""
        d, lim = self.data, self.lim
        # Step 4: before the part's first octet.
        if depth > lim["maxDepth"]:
            raise FrameError("NMTP_ERR_FRAME_TOO_DEEP")
        if self.parts + 1 > lim["maxParts"]:
            raise FrameError("NMTP_ERR_FRAME_TOO_MANY_PARTS")
        self.parts += 1
        fields = self.read_header_block(container_end)
        # Step 5.
        lengths = [v for n, v in fields if n.lower() == "content-length"]
        if not lengths:
            raise FrameError("NMTP_ERR_FRAME_LENGTH_MISSING")
        length = int(lengths[0])
        body_start = self.pos
        end = body_start + length + 4
        if container_end is not None and end > container_end:
            raise FrameError("NMTP_ERR_FRAME_CONTAINER_MISMATCH")
        if root and end > lim["maxTotalBytes"]:
            raise FrameError("NMTP_ERR_FRAME_LENGTH_OVER_LIMIT")
        ctypes = [v for n, v in fields if n.lower() == "content-type"]
        ctype = check_content_type(ctypes[0]) if ctypes else ("text", "plain")
        kind = (
            "multipart"
            if ctype[0] == "multipart"
            else "message" if ctype == ("message", "nmtp") else "leaf"
        )
        if kind == "message" and length == 0:
            raise FrameError("NMTP_ERR_FRAME_CONTAINER_MISMATCH")
        body_end = body_start + length
        part = {"fields": fields}
        if kind == "leaf":
            # Step 6: body octets as they are.
            if len(d) < body_end:
                raise FrameError("NMTP_ERR_FRAME_TRUNCATED")
            part["body_hex"] = d[body_start:body_end].hex()
            self.pos = body_end
        else:
            children = []
            while self.pos < body_end:
                # Step 7: a second child of message/nmtp.
                if kind == "message" and children:
                    raise FrameError("NMTP_ERR_FRAME_CONTAINER_MISMATCH")
                children.append(self.read_part(depth + 1, body_end))
            part["children"] = children
        # Step 6: the sentinel, octet by octet.
        for b in b"\r\n\r\n":
            if self.pos >= len(d):
                raise FrameError("NMTP_ERR_FRAME_TRUNCATED")
            if d[self.pos] != b:
                raise FrameError("NMTP_ERR_FRAME_SENTINEL")
            self.pos += 1
        return part


def decode_frame(data, limits=None):
    """Section 10: decode `data` (bytes); returns the decoded tree or raises FrameError."""
    return Decoder(data, limits).decode()


# ---------------------------------------------------------------------------------------
# Section 2: strict base64url; section 30.5: the ed25519 acceptance rule
# ---------------------------------------------------------------------------------------

B64CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64url_strict(s, n):
    """Section 2: exactly the encoding of n octets, no padding, unused low bits zero.
    Returns the octets or None."""
    if len(s) != (n * 8 + 5) // 6 or any(c not in B64CHARS for c in s):
        return None
    out = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    if len(out) != n or b64url(out) != s:
        return None
    return out


def b64url(b):
    return base64.urlsafe_b64encode(b).decode("ascii").rstrip("=")


P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(p1, p2):  # extended coordinates (X, Y, Z, T)
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = b - a, dd - c, dd + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s, p):
    q = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _encode(p):
    x, y, z, _ = p
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _decode_point(b):
    """Strict decoding: y < p, x recoverable, not x = 0 with the sign bit set (rule 3)."""
    if len(b) != 32:
        return None
    n = int.from_bytes(b, "little")
    sign, y = n >> 255, n & ((1 << 255) - 1)
    if y >= P:
        return None
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if v * x * x % P == u:
        pass
    elif v * x * x % P == (-u) % P:
        x = x * SQRT_M1 % P
    else:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


BASE = _decode_point(int.to_bytes(4 * pow(5, P - 2, P) % P, 32, "little"))


def acceptable_public_key(a):
    """Section 30.5 rule 3 (and section 40.1): canonical and not of small order."""
    pt = _decode_point(a)
    if pt is None:
        return False
    return _encode(_mul(8, pt)) != _encode((0, 1, 1, 0))


def ed25519_verify(sig, pub, msg):
    """Section 30.5, rules 1-4 (cofactorless). Cross-checked with OpenSSL through
    `cryptography` when the key is acceptable: the spec says OpenSSL applies rules 2 and 4
    exactly so, and a disagreement raises."""
    if len(sig) != 64 or len(pub) != 32:  # rule 1
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= L:  # rule 2
        return False
    a = _decode_point(pub)
    if a is None or not acceptable_public_key(pub):  # rule 3
        return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + pub + msg).digest(), "little") % L
    neg_ka = _mul(k, a)
    neg_ka = ((-neg_ka[0]) % P, neg_ka[1], neg_ka[2], (-neg_ka[3]) % P)
    ours = _encode(_add(_mul(s, BASE), neg_ka)) == sig[:32]  # rule 4
    theirs = _openssl_verify(sig, pub, msg)
    if theirs is not None and theirs != ours:
        raise RuntimeError("ed25519: pure rule and OpenSSL disagree")
    return ours


def _openssl_verify(sig, pub, msg):
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        return None
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
        return True
    except InvalidSignature:
        return False
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------
# Section 30.2: Signature field syntax
# ---------------------------------------------------------------------------------------

LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
DOMAIN_RE = re.compile(r"(?=.{1,253}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
                       r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
UNIX_RE = re.compile(r"(?:0|[1-9][0-9]{0,12})\Z")
CERT_ID_RE = re.compile(r"[0-9a-f]{32}\Z")
# `user` (section 30.2) is a canonical address (section 20.6.1: prepared local part "@"
# domainAscii). The local-part rules of section 20.4 are out of scope here: only the shape
# (no ";", no white space, one "@") and the lower-case A-label domain are checked.
USER_RE = re.compile(r"[^\s;@]+@((?:[a-z0-9-]+\.)+[a-z0-9-]+)\Z")
TAG = r"=([^; ]+)(?:; |\Z)"


class SigError(Exception):
    """A verification failure: `status` (section 30.7), `code`, `temporary`."""

    def __init__(self, status, code, temporary=False):
        super().__init__(code)
        self.status, self.code, self.temporary = status, code, temporary


def split_tags(value, names_ok, err):
    """Sections 30.2, 40.2, 40.6: `name=value` items joined by exactly "; ", values without
    ";"; `names_ok(names)` says whether the names and their order are allowed. The tag list
    is checked before any value (the precedence added to sections 30.2, 40.2 and 40.6)."""
    tags = []
    for item in value.split("; "):
        m = re.fullmatch(r"([a-z]+)=([^;]*)", item)
        if not m:
            raise err
        tags.append((m.group(1), m.group(2)))
    if not names_ok([n for n, _ in tags]):
        raise err
    return dict(tags)


def unix_time(text, err):
    """Section 30.2 `unix-time`: no sign, no leading zero, at most 2^40."""
    if not UNIX_RE.match(text) or int(text) > 2**40:
        raise err
    return int(text)


SIG_PLAIN = ["v", "a", "d", "s", "t", "x", "h", "r", "b"]
SIG_USER = ["v", "a", "d", "s", "u", "c", "t", "x", "h", "r", "b"]


def parse_signature(value):
    """Section 30.2: first the version and algorithm precedence, then the tag list, then
    each tag's value in tag order (the first failure decides)."""
    m = re.match(r"v" + TAG, value)
    if m and m.group(1) != "1":
        raise SigError("invalid", "NMTP_ERR_SIG_VERSION")
    if value.startswith("v=1; "):
        m = re.match(r"a" + TAG, value[5:])
        if m and m.group(1) != "ed25519":
            raise SigError("invalid", "NMTP_ERR_SIG_ALGORITHM")
    bad = SigError("invalid", "NMTP_ERR_SIG_MALFORMED")
    t = split_tags(value, lambda n: n in (SIG_PLAIN, SIG_USER), bad)
    # A `v=`/`a=` value that is not a tag of the precedence rule (empty, or holding SP) is
    # "any other deviation": malformed. (The reference reports VERSION / ALGORITHM for these
    # when the tag list is otherwise well-formed: reported as a code-vs-spec mismatch.)
    if t["v"] != "1" or t["a"] != "ed25519":
        raise bad
    if not DOMAIN_RE.match(t["d"]) or not LABEL_RE.match(t["s"]):
        raise bad
    if "u" in t:
        um = USER_RE.match(t["u"])
        if not um or not DOMAIN_RE.match(um.group(1)) or not CERT_ID_RE.match(t["c"]):
            raise bad
    signed_at, expires = unix_time(t["t"], bad), unix_time(t["x"], bad)
    if expires <= signed_at:
        raise bad
    digest = b64url_strict(t["h"], 32)
    r = re.fullmatch(r"([A-Za-z0-9_-]{22}):([A-Za-z0-9_,-]+)", t["r"])
    if digest is None or r is None:
        raise bad
    salt = b64url_strict(r.group(1), 16)
    if salt is None:
        raise bad
    items = r.group(2).split(",")
    if len(items) > 256:
        raise SigError("invalid", "NMTP_ERR_SIG_TOO_MANY_RECIPIENTS")
    hashes = [b64url_strict(h, 16) for h in items]
    if len(set(items)) != len(items) or None in hashes:
        raise bad
    sig = b64url_strict(t["b"], 64)
    if sig is None:
        raise bad
    return {
        "d": t["d"], "s": t["s"], "u": t.get("u"), "c": t.get("c"), "t": signed_at,
        "x": expires, "h": digest, "salt": salt, "hashes": hashes, "b": sig,
        # Section 30.4: the unsigned part runs up to the "; b=" before the signature.
        "signed_input": b"NMTP-SIG-1\n" + value[: value.rindex("; b=")].encode("utf-8"),
    }


# ---------------------------------------------------------------------------------------
# Section 40.2: domain key records; section 40.6: certificates
# ---------------------------------------------------------------------------------------

KEY_ORDER = ["v", "k", "p", "x", "f", "n"]


def parse_key_record(text):
    """Section 40.2. Returns {"p": bytes or None (revoked), "x": int or None, "flags"}."""
    bad = SigError("invalid", "NMTP_ERR_KEY_RECORD_SYNTAX")

    def order_ok(names):
        idx = [KEY_ORDER.index(n) if n in KEY_ORDER else -1 for n in names]
        return -1 not in idx and idx == sorted(set(idx)) and idx[:3] == [0, 1, 2]

    t = split_tags(text, order_ok, bad)
    if t["v"] != "NMTPKEY1" or t["k"] != "ed25519":
        raise bad
    key = None
    if t["p"] != "":
        key = b64url_strict(t["p"], 32)
        if key is None:
            raise bad
        if not acceptable_public_key(key):
            raise SigError("invalid", "NMTP_ERR_KEY_WEAK")
    expires = unix_time(t["x"], bad) if "x" in t else None
    if t.get("f", "") not in ("", "u"):
        raise bad
    if not re.fullmatch(r"[\x20-\x3a\x3c-\x7e]*", t.get("n", "")):
        raise bad
    return {"p": key, "x": expires, "flags": t.get("f", "")}


def lookup_key(dns, name, now):
    """Section 40.2 and section 30.6 step 4a: returns the parsed record or raises
    SigError."""
    records = dns.get(name)
    if records is None:
        raise SigError("unknown-key", "NMTP_ERR_KEY_NOT_FOUND")
    if isinstance(records, dict) and records.get("error"):  # a resolver failure
        raise SigError("unknown-key", "NMTP_ERR_KEY_LOOKUP_FAILED", True)
    # A record given as a list of character-strings is concatenated without separator.
    records = ["".join(r) if isinstance(r, list) else r for r in records]
    ours = [r for r in records if re.match(r"v=NMTPKEY1(?:;|\Z)", r)]
    if not ours:
        raise SigError("unknown-key", "NMTP_ERR_KEY_NOT_FOUND")
    if len(ours) > 1:
        raise SigError("invalid", "NMTP_ERR_KEY_AMBIGUOUS")
    rec = parse_key_record(ours[0])
    if rec["p"] is None:
        raise SigError("revoked", "NMTP_ERR_KEY_REVOKED")
    if rec["x"] is not None and now > rec["x"]:
        raise SigError("expired", "NMTP_ERR_KEY_EXPIRED")
    return rec


CERT_ORDER = ["v", "a", "d", "s", "id", "u", "k", "nb", "na", "b"]


def verify_certificate(value, now, dns):
    """Section 40.6 "Verification" at time now. Returns the parsed certificate or raises
    SigError with the status mapping of section 30.6 step 4b."""
    bad = SigError("invalid", "NMTP_ERR_CERT_MALFORMED")
    t = split_tags(value, lambda n: n == CERT_ORDER, bad)
    if t["v"] != "1" or t["a"] != "ed25519":
        raise bad
    if not DOMAIN_RE.match(t["d"]) or not LABEL_RE.match(t["s"]):
        raise bad
    um = USER_RE.match(t["u"])
    if not CERT_ID_RE.match(t["id"]) or not um or not DOMAIN_RE.match(um.group(1)):
        raise bad
    key = b64url_strict(t["k"], 32)
    if key is None:
        raise bad
    if not acceptable_public_key(key):
        raise SigError("invalid", "NMTP_ERR_KEY_WEAK")
    nb, na = unix_time(t["nb"], bad), unix_time(t["na"], bad)
    if na <= nb:
        raise bad
    sig = b64url_strict(t["b"], 64)
    if sig is None:
        raise bad
    d, u = t["d"], t["u"]
    if u.rpartition("@")[2] != d:
        raise SigError("invalid", "NMTP_ERR_CERT_WRONG_DOMAIN")
    if now < nb:
        raise SigError("invalid", "NMTP_ERR_CERT_NOT_YET_VALID")
    if now > na:
        raise SigError("expired", "NMTP_ERR_CERT_EXPIRED")
    issuer = lookup_key(dns, t["s"] + "._nmtpkey." + d, now)
    if "u" not in issuer["flags"]:
        raise SigError("invalid", "NMTP_ERR_CERT_NOT_AUTHORIZED")
    signed = b"NMTP-CERT-1\n" + value[: value.rindex("; b=")].encode("utf-8")
    if not ed25519_verify(sig, issuer["p"], signed):
        raise SigError("invalid", "NMTP_ERR_CERT_BAD_SIGNATURE")
    revocation = dns.get(t["id"] + "._nmtprevoked." + d)
    if isinstance(revocation, dict) and revocation.get("error"):
        raise SigError("unknown-key", "NMTP_ERR_KEY_LOOKUP_FAILED", True)
    if revocation:
        raise SigError("revoked", "NMTP_ERR_CERT_REVOKED")
    return {"d": d, "s": t["s"], "u": u, "k": key, "nb": nb, "na": na}


# ---------------------------------------------------------------------------------------
# Section 30.6: verification of one Signature field; section 30.7: results, replay rule
# ---------------------------------------------------------------------------------------

CLOCK_SKEW = 300  # section 30.6 step 3


def verify_signature(value, digest, now, dns, certificates, recipient=None):
    """Section 30.6 steps 1-7. `recipient` is already canonical (section 20.6.1).
    Returns {"status", "code"?, "temporary"?, "d"?}."""
    d = None
    try:
        sig = parse_signature(value)  # step 1
        d = sig["d"]
        if sig["h"] != digest:  # step 2
            raise SigError("invalid", "NMTP_ERR_SIG_DIGEST_MISMATCH")
        if now > sig["x"]:  # step 3
            raise SigError("expired", "NMTP_ERR_SIG_EXPIRED")
        if sig["t"] > now + CLOCK_SKEW:
            raise SigError("invalid", "NMTP_ERR_SIG_FUTURE")
        if sig["u"] is None:  # step 4a
            key = lookup_key(dns, sig["s"] + "._nmtpkey." + sig["d"], now)["p"]
        else:  # step 4b
            cert_value = next(
                (cv for cv in certificates if ("id=" + sig["c"]) in cv.split("; ")), None
            )
            if cert_value is None:
                raise SigError("invalid", "NMTP_ERR_SIG_CERT_MISSING")
            cert = verify_certificate(cert_value, now, dns)
            if (cert["d"], cert["s"], cert["u"]) != (sig["d"], sig["s"], sig["u"]):
                raise SigError("invalid", "NMTP_ERR_CERT_MISMATCH")
            if sig["t"] < cert["nb"]:
                raise SigError("invalid", "NMTP_ERR_CERT_NOT_YET_VALID")
            if sig["t"] > cert["na"]:
                raise SigError("expired", "NMTP_ERR_CERT_EXPIRED")
            key = cert["k"]
        if not ed25519_verify(sig["b"], key, sig["signed_input"]):  # step 5
            raise SigError("invalid", "NMTP_ERR_SIG_BAD_SIGNATURE")
        if recipient is not None:  # step 6
            mine = hashlib.sha256(sig["salt"] + recipient.encode("utf-8")).digest()[:16]
            if mine not in sig["hashes"]:
                raise SigError("not-for-recipient", "NMTP_ERR_SIG_NOT_FOR_RECIPIENT")
        return {"status": "valid", "d": d}  # step 7
    except SigError as e:
        out = {"status": e.status, "code": e.code, "d": d}
        if e.temporary:
            out["temporary"] = True
        return out


def replay_rule(outcomes, from_domain):
    """Section 30.7: the last Signature whose d= is D decides. Returns
    {"verdict": "deliver"|"reject"|"defer", "code"?}."""
    mine = [o for o in outcomes if o.get("d") == from_domain]
    if not mine:
        return {"verdict": "reject", "code": "NMTP_ERR_SIG_NO_TRANSFER_SIGNATURE"}
    last = mine[-1]
    if last["status"] == "valid":
        return {"verdict": "deliver"}
    return {"verdict": "defer" if last.get("temporary") else "reject", "code": last["code"]}


def verify_message(data, now, dns, recipient=None, from_domain=None, limits=None):
    """Section 30.12 "Verifying" (frame-level validation only; see the module docstring)."""
    try:
        msg = decode_frame(data, limits)  # step 1
    except FrameError as e:
        return {"error": e.code}
    digest = bytes.fromhex(msg["content_digest_hex"])  # step 2
    certs = [v for n, v in msg["trace"] if n.lower() == "certificate"]
    outcomes = [  # step 3
        verify_signature(v, digest, now, dns, certs, recipient)
        for n, v in msg["trace"]
        if n.lower() == "signature"
    ]
    out = {"signatures": outcomes}
    if recipient is not None and from_domain is not None:  # step 4
        out["replay"] = replay_rule(outcomes, from_domain)
    return out


# ---------------------------------------------------------------------------------------
# Command line for the node test
# ---------------------------------------------------------------------------------------


def _frame_vectors(doc):
    out = {}
    for v in doc["vectors"]:
        try:
            out[v["id"]] = {"ok": decode_frame(bytes.fromhex(v["input_hex"]), v.get("limits"))}
        except FrameError as e:
            out[v["id"]] = {"error": e.code}
    return out


def _sig_vectors(doc):
    out = {}
    for v in doc["vectors"]:
        i = v["input"]
        r = verify_signature(
            i["field_value"], bytes.fromhex(i["digest_hex"]), i["now"], i["dns"],
            i.get("certificates", []), i.get("recipient"),
        )
        r.pop("d", None)
        out[v["id"]] = r
    return out


def _verify_messages(items):
    out = {}
    for it in items:
        r = verify_message(
            base64.b64decode(it["message_b64"]), it["now"], it["dns"], it.get("rcpt"),
            it.get("from_domain"),
        )
        out[it["id"]] = r
    return out


def main(argv):
    cmds = {
        "frame-vectors": _frame_vectors,
        "sig-vectors": _sig_vectors,
        "verify-messages": _verify_messages,
    }
    if len(argv) != 2 or argv[1] not in cmds:
        sys.stderr.write("usage: nmtp_message.py " + "|".join(cmds) + " < input.json\n")
        return 2
    json.dump(cmds[argv[1]](json.load(sys.stdin)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
