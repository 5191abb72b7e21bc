#!/usr/bin/python3
"""An independent second implementation of the NMTP/1 transfer client, for interop tests.

Written from docs/protocol.md section 60 (and section 2 for base64url) and
test/vectors/transport/README.md + its transcripts only, without reading the reference
implementation, so that a place where the spec does not decide shows up as a disagreement
(test/integration/transfer-interop.test.ts). The message layer (decoding, content digest,
signature fields) is test/interop/nmtp_message.py, imported.

Scope: implicit TLS 1.3 (section 60.2, 60.15), the greeting (60.8), HELLO with its proof
(60.8.1), reply syntax (60.6), RCPT / DATA / views / chunks / per-recipient answers
(60.10.2-60.10.5, 60.5), eager data (60.10.4), STATUS / GIVEUP and DATA on a cookie
(60.10.6), pipelined or lock-step (60.2), and raw lines for error cases. Not covered:
PROVE and following redirects (60.10.8; it needs the TLS exporter, which Python's ssl
module does not offer), SRV discovery, the connection pool.

Dependencies: the standard library, and `cryptography` (Debian python3-cryptography) to
sign the HELLO proof with the domain key (a PKCS#8 PEM file).

Command line (JSON on stdin, JSON on stdout):
  nmtp_transfer.py run   {"host", "port", "ca", "server_name"?, "domain", "selector",
                          "key_pem", "proof"?: "tamper", "jobs": [job, ...]}
  job = {"op": "deliver", "rcpts": [...], "message_b64", "mode"?: "pipelined"|"lockstep",
         "eager"?: bool, "chunk"?: n, "signers"?: [...] (announce these instead)}
      | {"op": "status"|"giveup", "cookies": [...]}
      | {"op": "data-cookie", "cookie", "message_b64"}
      | {"op": "raw", "line": "...", "replies"?: n}
  Output: {"greeting", "hello", "jobs": [...], "closed_by_server"?, "error"?}; every reply is
  {"line", "code", "enhanced", "params", "text"}.
"""

import base64
import json
import os
import re
import socket
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nmtp_message  # noqa: E402  (the message layer's second implementation)

MAX_LINE = 2048  # section 60.3, including CRLF
MAX_CHUNK = 1048576  # section 60.5

# Section 60.10.7: per-state timeouts of the client (seconds).
T_GREETING, T_HELLO, T_RCPT, T_DATA, T_ANSWERS, T_COOKIE, T_QUIT = 60, 60, 60, 60, 600, 60, 30


class ProtocolError(Exception):
    """The server broke the protocol (reply syntax, framing): the session is over."""


class Closed(Exception):
    """The server closed the connection."""


# ---------------------------------------------------------------------------------------
# Section 60.6: replies
# ---------------------------------------------------------------------------------------

REPLY_HEAD = re.compile(r"([2-5][0-9][0-9]) ([245])\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})")
PARAM = re.compile(r"([a-z][a-z0-9-]*)=(.+)\Z", re.S)


def is_tchar(c):
    o = ord(c)
    return not (o < 0x20 or o == 0x7F or 0x80 <= o <= 0x9F or c == " ")


def parse_reply(raw):
    """`raw` is the line without CRLF (bytes). Returns a dict or raises ProtocolError."""
    try:
        line = raw.decode("utf-8", "strict")
    except UnicodeDecodeError:
        raise ProtocolError("reply is not UTF-8")
    words = line.split(" ")
    if len(words) < 2 or "" in words:
        raise ProtocolError("reply syntax: " + line)
    m = REPLY_HEAD.fullmatch(" ".join(words[:2]))
    if not m:
        raise ProtocolError("reply code: " + line)
    code = int(m.group(1))
    # "The class of the enhanced code MUST equal the first digit of the reply code, except
    # that 3yz replies carry class 2".
    want = "2" if code // 100 == 3 else str(code // 100)
    if m.group(2) != want:
        raise ProtocolError("enhanced class: " + line)
    params, text, i = {}, None, 2
    while i < len(words):
        w = words[i]
        # "The text starts after the first word that is exactly "#"".
        if w == "#":
            text = " ".join(words[i + 1 :])
            if text == "":
                raise ProtocolError("empty text: " + line)
            break
        pm = PARAM.fullmatch(w)
        if not pm or not all(is_tchar(c) for c in pm.group(2)):
            raise ProtocolError("reply parameter: " + line)
        if pm.group(1) in params:  # "Parameters ... are never repeated"
            raise ProtocolError("repeated parameter: " + line)
        params[pm.group(1)] = pm.group(2)
        i += 1
    return {
        "line": line,
        "code": code,
        "enhanced": "%s.%s.%s" % m.group(2, 3, 4),
        "params": params,
        "text": text,
    }


# ---------------------------------------------------------------------------------------
# Section 60.10.4: the announcement and the views of a message
# ---------------------------------------------------------------------------------------


class _Walker(nmtp_message.Decoder):
    """The message layer's decoder, noting where each part starts and ends."""

    def __init__(self, data):
        super().__init__(data)
        self.spans = []  # (start, end, part, depth)
        self.trace_end = None
        self.root_header_end = None

    def read_header_block(self, container_end):
        fields = super().read_header_block(container_end)
        if self.trace_end is None:
            self.trace_end = self.pos
        elif self.root_header_end is None:
            self.root_header_end = self.pos
        return fields

    def read_part(self, depth, container_end, root=False):
        start = self.pos
        part = super().read_part(depth, container_end, root)
        self.spans.append((start, self.pos, part, depth))
        return part


def _is_text_plain(part):
    cts = [v for n, v in part["fields"] if n.lower() == "content-type"]
    return (nmtp_message.check_content_type(cts[0]) if cts else ("text", "plain")) == (
        "text",
        "plain",
    )


class Message:
    """A framed message (bytes) with its DATA announcement and its views."""

    def __init__(self, data):
        w = _Walker(data)
        decoded = w.decode()
        self.data = data
        self.size = len(data)
        self.digest = nmtp_message.b64url(bytes.fromhex(decoded["content_digest_hex"]))
        signers = []
        for name, value in decoded["trace"]:
            if name.lower() != "signature":
                continue
            try:
                s = nmtp_message.parse_signature(value)
            except nmtp_message.SigError:
                continue  # "an unparseable field names no signer" (section 60.10.4)
            ident = s["u"] if s["u"] is not None else s["d"]
            if ident not in signers:
                signers.append(ident)
        self.signers = signers
        headers = data[: w.root_header_end]
        leaves = sorted(
            (s for s in w.spans if "body_hex" in s[2] and _is_text_plain(s[2])),
            key=lambda s: s[0],
        )
        root_start = w.trace_end
        if leaves and leaves[0][0] == root_start:
            text = data  # the root is the text/plain leaf: the full message
        elif leaves:
            text = headers + data[leaves[0][0] : leaves[0][1]]
        else:
            text = headers
        self.views = {
            "full": data,
            "headers": headers,
            "signers": data[: w.trace_end],
            "digest": b"",
            "text": text,
        }

    def announcement(self, signers=None):
        signers = self.signers if signers is None else signers
        a = "size=%d digest=%s" % (self.size, self.digest)
        if signers:  # no parseable signature: no parameter (a word is never empty)
            a += " signers=" + ",".join(signers)
        return a


def chunks(view, size):
    """Section 60.5: the view as chunks of at most `size` octets, the last one LAST."""
    out, i = [], 0
    while True:
        piece = view[i : i + size]
        i += len(piece)
        last = i >= len(view)
        out.append(b"CHUNK %d%s\r\n" % (len(piece), b" LAST" if last else b"") + piece + b"\r\n")
        if last:
            return b"".join(out)


# ---------------------------------------------------------------------------------------
# The session
# ---------------------------------------------------------------------------------------


class Session:
    def __init__(self, host, port, ca, server_name=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        # Section 60.2: "implicit TLS (TLS 1.3 or later, RFC 8446) from the first octet".
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(ca)
        raw = socket.create_connection((host, port), timeout=T_GREETING)
        self.sock = ctx.wrap_socket(raw, server_hostname=server_name or host)
        self.buf = b""
        self.eager = None
        self.server = None
        self.challenge = None

    # -- octets ---------------------------------------------------------------------

    def send(self, octets):
        self.sock.sendall(octets)

    def read_line(self, timeout):
        self.sock.settimeout(timeout)
        while True:
            lf = self.buf.find(b"\n", 0, MAX_LINE)
            if lf >= 0:
                break
            if len(self.buf) >= MAX_LINE:
                raise ProtocolError("reply line over 2048 octets")
            try:
                more = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError) as e:
                raise Closed(str(e))
            if not more:
                raise Closed("connection closed" + (" inside a line" if self.buf else ""))
            self.buf += more
        line, self.buf = self.buf[: lf + 1], self.buf[lf + 1 :]
        # "Lines end in CRLF; a CR or LF anywhere else is an error".
        if len(line) < 2 or line[-2] != 0x0D or b"\r" in line[:-2]:
            raise ProtocolError("bare LF or CR in a reply")
        return line[:-2]

    def reply(self, timeout):
        return parse_reply(self.read_line(timeout))

    def line(self, text):
        data = text.encode("utf-8") + b"\r\n"
        if len(data) > MAX_LINE:
            raise ValueError("command line over 2048 octets")
        return data

    # -- greeting and HELLO (sections 60.8, 60.8.1) -----------------------------------

    def greet(self):
        g = self.reply(T_GREETING)
        p = g["params"]
        if g["code"] != 220:
            raise ProtocolError("greeting: " + g["line"])
        # "A client that does not know the version MUST close."
        if p.get("version") != "NMTP/1" or p.get("service") != "transfer":
            raise ProtocolError("version or service: " + g["line"])
        if "server" not in p or "challenge" not in p:
            raise ProtocolError("greeting without server or challenge: " + g["line"])
        self.server, self.challenge = p["server"], p["challenge"]
        return g

    def hello(self, domain, selector, private_key, tamper=False):
        proof_input = b"\n".join(
            [b"NMTP-AUTH-1", self.challenge.encode(), self.server.encode(), domain.encode()]
        )
        sig = private_key.sign(proof_input)
        if tamper:
            sig = bytes([sig[0] ^ 1]) + sig[1:]
        proof = nmtp_message.b64url(sig)
        self.send(self.line("HELLO %s sel=%s proof=%s" % (domain, selector, proof)))
        # "A client MUST wait for the reply to HELLO before it sends anything else".
        r = self.reply(T_HELLO)
        if r["code"] == 250:
            e = r["params"].get("eager")
            self.eager = int(e) if e is not None and re.fullmatch(r"0|[1-9][0-9]*", e) else None
        return r

    # -- jobs -----------------------------------------------------------------------

    def deliver(self, rcpts, msg, mode="pipelined", eager=False, chunk=65536, signers=None):
        """Section 60.10.2-60.10.5. Returns the RCPT replies, the DATA reply (or None), the
        answers after the data and the view sent."""
        out = {"rcpt": [], "data": None, "view": None, "answers": []}
        data_line = "DATA " + msg.announcement(signers)
        use_eager = eager and self.eager is not None and msg.size <= self.eager
        if use_eager:
            data_line += " send=full"
        if mode == "pipelined":
            # "A client MAY send all RCPT commands of a transaction, and the DATA that follows
            # them, without waiting for their replies."
            flight = b"".join(self.line("RCPT " + a) for a in rcpts) + self.line(data_line)
            if use_eager:
                flight += chunks(msg.data, chunk)
            self.send(flight)
            for _ in rcpts:
                out["rcpt"].append(self.reply(T_RCPT))
        else:
            for a in rcpts:
                self.send(self.line("RCPT " + a))
                out["rcpt"].append(self.reply(T_RCPT))
            if not any(r["code"] == 250 for r in out["rcpt"]):
                return out  # "Lock-step, it sends no DATA when no recipient was accepted"
            self.send(self.line(data_line))
        accepted = [r for r in out["rcpt"] if r["code"] == 250]
        d = self.reply(T_DATA)
        out["data"] = d
        if d["code"] != 354:
            return out  # the transaction is over
        view = d["params"].get("view")
        if view not in msg.views:
            raise ProtocolError("354 without a known view: " + d["line"])
        out["view"] = view
        if use_eager:
            if view != "full":
                raise ProtocolError("354 names another view after send=full")
        else:
            # "A client MUST wait for the 354 reply to DATA before it sends any chunk".
            self.send(chunks(msg.views[view], chunk))
        # "exactly one reply per accepted recipient, in RCPT order" - unless the data as a
        # whole is refused (552, 554): one line, then the transaction is over.
        for i, a in enumerate(accepted):
            r = self.reply(T_ANSWERS)
            out["answers"].append(r)
            if i == 0 and r["code"] in (552, 554) and "rcpt" not in r["params"]:
                break
            if r["params"].get("rcpt") != a["params"].get("rcpt"):
                raise ProtocolError("answer for another recipient: " + r["line"])
        return out

    def cookies(self, verb, cookies):
        """STATUS / GIVEUP: "several ... without waiting"; each is answered by one line."""
        self.send(b"".join(self.line("%s %s" % (verb, c)) for c in cookies))
        return [self.reply(T_COOKIE) for _ in cookies]

    def data_cookie(self, cookie, msg, chunk=65536):
        """Section 60.10.6: a bigger view on a cookie after 352."""
        self.send(self.line("DATA %s cookie=%s" % (msg.announcement(), cookie)))
        d = self.reply(T_DATA)
        out = {"data": d, "view": None, "answers": []}
        if d["code"] != 354:
            return out
        view = d["params"].get("view")
        if view not in msg.views:
            raise ProtocolError("354 without a known view: " + d["line"])
        out["view"] = view
        self.send(chunks(msg.views[view], chunk))
        out["answers"].append(self.reply(T_ANSWERS))
        return out

    def raw(self, text, replies=1):
        self.send(self.line(text))
        return [self.reply(T_DATA) for _ in range(replies)]

    def quit(self):
        self.send(self.line("QUIT"))
        r = self.reply(T_QUIT)
        self.close()
        return r

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def load_key(path):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    with open(path, "rb") as f:
        return load_pem_private_key(f.read(), password=None)


def run(cfg):
    out = {"jobs": []}
    s = Session(cfg["host"], cfg["port"], cfg["ca"], cfg.get("server_name"))
    try:
        out["greeting"] = s.greet()
        out["hello"] = s.hello(
            cfg["domain"], cfg["selector"], load_key(cfg["key_pem"]), cfg.get("proof") == "tamper"
        )
        if out["hello"]["code"] != 250:
            # A refused HELLO closes the session (section 60.8.1): see that it did.
            try:
                s.read_line(T_QUIT)
                out["closed_by_server"] = False
            except Closed:
                out["closed_by_server"] = True
            return out
        for job in cfg["jobs"]:
            op = job["op"]
            if op == "deliver":
                msg = Message(base64.b64decode(job["message_b64"]))
                out["jobs"].append(
                    s.deliver(
                        job["rcpts"], msg, job.get("mode", "pipelined"), job.get("eager", False),
                        min(job.get("chunk", 65536), MAX_CHUNK), job.get("signers"),
                    )
                )
            elif op in ("status", "giveup"):
                out["jobs"].append(s.cookies(op.upper(), job["cookies"]))
            elif op == "data-cookie":
                msg = Message(base64.b64decode(job["message_b64"]))
                out["jobs"].append(s.data_cookie(job["cookie"], msg))
            elif op == "raw":
                out["jobs"].append(s.raw(job["line"], job.get("replies", 1)))
            else:
                raise ValueError("unknown job " + op)
        out["quit"] = s.quit()
    except (ProtocolError, Closed) as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        s.close()
    return out


def main(argv):
    if len(argv) != 2 or argv[1] != "run":
        sys.stderr.write("usage: nmtp_transfer.py run < job.json\n")
        return 2
    json.dump(run(json.load(sys.stdin)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
