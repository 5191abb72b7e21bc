#!/usr/bin/python3
"""An independent second implementation of a minimal NMTP/1 transfer receiver, for interop.

Written from docs/protocol.md section 60 (and sections 2, 10, 40.2 through the message
layer's second implementation, test/interop/nmtp_message.py, imported) without reading the
reference implementation, so that a place where the spec does not decide shows up as a
disagreement with the reference client (test/integration/receiver-interop.test.ts).

Scope: implicit TLS 1.3 (60.2), lines and chunks (60.3, 60.5), replies (60.6), framing and
line errors (60.7), the greeting with a challenge and HELLO with its proof verified against
key records given as data (60.8.1), a CSV check against records given as data (60.8.2),
RCPT (60.10.2), DATA taking the full view only (60.10.4; eager data when configured),
per-recipient answers (60.10.5), STATUS / GIVEUP on cookies (60.10.6), RSET, NOOP, QUIT.
Not covered: views other than full (so never 352), redirects (PROVE is answered "no key"),
the address layer of section 20 (an address is taken as sent after a light syntax check),
the Received field of 60.8.4 (a SHOULD: the copy is stored exactly as received).

Dependencies: the standard library, and `cryptography` (Debian python3-cryptography),
which nmtp_message.py uses as a second ed25519 verifier.

Command line:  nmtp_receiver.py CONFIG.json
  CONFIG = {"cert", "key", "server_name", "store": dir,
            "records": {"s1._nmtpkey.example.org": ["v=NMTPKEY1; ..."], ...},
            "decide": {address: "accept"|"defer"|"reject"|"refuse"}  (default accept;
                      refuse = at RCPT, the others after the data),
            "eager"?: octets, "log"?: file}
  Prints {"port": n} on one line once it listens on 127.0.0.1 (ephemeral port), then serves
  until killed. An accepted copy is written to STORE/<id>.nmtp (the octets received); a
  deferred one is held as STORE/held/<cookie>.nmtp. A file STORE/decide/<cookie> holding
  "accept" or "reject" decides a deferred recipient at its next STATUS. With "log", every
  line read ("C: ...", chunk headers included) and sent ("S: ...") is appended to that file.
"""

import ipaddress
import json
import os
import re
import secrets
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nmtp_message  # noqa: E402  (the message layer's second implementation)

MAX_LINE = 2048  # 60.3, including CRLF
MAX_CHUNK = 1048576  # 60.5
MAX_MESSAGE = 67108864  # 60.9
MAX_RCPTS = 100  # 60.9
MAX_REFUSALS = 10  # 60.7
# 60.10.1: per-state timeouts (seconds) of the states in which the server reads.
T_HELLO, T_READY, T_DATA = 60, 300, 120
# 60.10.5: the polling window of a deferred recipient (seconds) and its lifetime.
MIN_POLL, MAX_POLL, LIFETIME = 60, 3600, 86400

# 60.4: arguments by count, then parameters in table order (* = required).
VERBS = {
    "HELLO": (1, [("sel", True), ("proof", True)], 512),
    "RCPT": (1, [("redirect", False)], 1024),
    "DATA": (0, [("size", True), ("digest", True), ("signers", False), ("cookie", False),
                 ("send", False)], 2048),
    "STATUS": (1, [], 256),
    "GIVEUP": (1, [], 256),
    "RSET": (0, [], 16),
    "NOOP": (0, [], 16),
    "QUIT": (0, [], 16),
    "PROVE": (1, [("nonce", True)], 1024),
}
SUBMISSION_VERBS = {"AUTH", "SEND", "SIGN", "CERTIFY"}  # 60.2: the other service
PARAM_NAME = re.compile(r"[a-z][a-z0-9-]*\Z")
DECIMAL = re.compile(r"(0|[1-9][0-9]*)\Z")
COOKIE = re.compile(r"[A-Za-z0-9_-]{1,128}\Z")
CHUNK_SIZE = re.compile(r"(0|[1-9][0-9]{0,14})\Z")


class Fatal(Exception):
    """The session is over (the reply, if any, has been sent)."""


LOG_LOCK = threading.Lock()


class Cookies:
    """Deferred recipients, shared by all sessions: cookie -> record."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_cookie = {}


def has_control(text):
    # 60.3: C0, DEL and C1 alike.
    return any(ord(c) < 0x20 or ord(c) == 0x7F or 0x80 <= ord(c) <= 0x9F for c in text)


def csv_result(records, domain, ip):
    """60.8.2 against records given as data (no record: none)."""
    recs = [r for r in records.get("_nmtpclient." + domain, []) if r.startswith("v=NMTPCSV1")]
    if not recs:
        return "none"
    if len(recs) > 1:
        return "permerror"
    m = re.fullmatch(r"v=NMTPCSV1; ip=(.+)", recs[0])
    if not m:
        return "permerror"
    addr = ipaddress.ip_address(ip)
    if addr.version == 6 and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    for p in m.group(1).split(","):
        try:
            if re.search(r"(^|[./])0[0-9]", p.split("/")[0]) and ":" not in p:
                return "permerror"  # IPv4 octets with leading zeros are malformed
            if addr in ipaddress.ip_network(p, strict=False):
                return "pass"
        except ValueError:
            return "permerror"
    return "fail"


class Session:
    def __init__(self, sock, peer_ip, cfg, cookies):
        self.sock = sock
        self.ip = peer_ip
        self.cfg = cfg
        self.cookies = cookies
        self.buf = b""
        self.offset = 0  # octets of the client's stream consumed so far
        self.refusals = 0
        self.state = "hello"
        self.domain = None
        self.rcpts = []  # accepted recipients of the transaction, in RCPT order
        self.challenge = nmtp_message.b64url(secrets.token_bytes(18))

    # -- output -------------------------------------------------------------------

    def log(self, text):
        if self.cfg.get("log"):
            with LOG_LOCK, open(self.cfg["log"], "a", encoding="utf-8") as f:
                f.write(text + "\n")

    def reply(self, code, enhanced, params=(), text=None, refused=False):
        line = "%d %s" % (code, enhanced)
        for k, v in params:
            line += " %s=%s" % (k, v)
        if text:
            line += " # " + text
        self.log("S: " + line)
        self.sock.sendall(line.encode("utf-8") + b"\r\n")
        if refused:
            # 60.7: "After 10 refused commands the server closes".
            self.refusals += 1
            if self.refusals >= MAX_REFUSALS:
                self.reply(421, "4.7.0", [("err", "NMTP_ERR_TRANSPORT_OUT_OF_ORDER")])
                raise Fatal()

    def framing(self, offset, code):
        # 60.7: "After a framing error the server MUST send one reply and close".
        self.reply(500, "5.5.0", [("offset", offset), ("err", code)])
        raise Fatal()

    # -- input --------------------------------------------------------------------

    def fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            more = self.sock.recv(65536)
        except socket.timeout:
            # 60.9: "On expiry the server sends 421 4.4.2 ... and closes".
            self.reply(421, "4.4.2", [("err", "NMTP_ERR_TRANSPORT_TIMEOUT")])
            raise Fatal()
        except (OSError, ssl.SSLError):
            raise Fatal()
        if not more:
            raise Fatal()  # the client closed (inside a line or chunk: truncated)
        self.buf += more

    def read_line(self, timeout):
        """Returns (raw line without CRLF, offset where it began)."""
        start = self.offset
        while True:
            # "A receiver looks for the LF only within the first 2048 octets".
            lf = self.buf.find(b"\n", 0, MAX_LINE)
            if lf >= 0:
                break
            if len(self.buf) >= MAX_LINE:
                self.framing(start, "NMTP_ERR_WIRE_LINE_TOO_LONG")
            self.fill(timeout)
        line, self.buf = self.buf[: lf + 1], self.buf[lf + 1 :]
        self.offset += len(line)
        # "Lines end in CRLF; a CR or LF anywhere else is an error".
        if len(line) < 2 or line[-2] != 0x0D or b"\r" in line[:-2]:
            self.framing(start, "NMTP_ERR_WIRE_BARE_LF")
        self.log("C: " + line[:-2].decode("utf-8", "replace"))
        return line[:-2], start

    def read_octets(self, n, timeout):
        while len(self.buf) < n:
            self.fill(timeout)
        out, self.buf = self.buf[:n], self.buf[n:]
        self.offset += n
        return out

    def read_chunk(self, header, start, timeout):
        """60.5: `header` is the CHUNK line's text. Returns (octets, last)."""
        words = header.split(" ")
        if len(words) not in (2, 3) or (len(words) == 3 and words[2] != "LAST"):
            self.framing(start, "NMTP_ERR_WIRE_CHUNK_SIZE")
        if not CHUNK_SIZE.fullmatch(words[1]):
            self.framing(start, "NMTP_ERR_WIRE_CHUNK_SIZE")
        n = int(words[1])
        if n > MAX_CHUNK:  # "refused at the header before any body octet is read"
            self.framing(start, "NMTP_ERR_WIRE_CHUNK_TOO_LARGE")
        data = self.read_octets(n, timeout)
        at = self.offset
        if self.read_octets(2, timeout) != b"\r\n":
            self.framing(at, "NMTP_ERR_WIRE_CHUNK_LENGTH_MISMATCH")
        return data, len(words) == 3

    # -- the session --------------------------------------------------------------

    def run(self):
        self.reply(220, "2.0.0", [("version", "NMTP/1"), ("service", "transfer"),
                                  ("server", self.cfg["server_name"]),
                                  ("challenge", self.challenge)])
        while True:
            raw, start = self.read_line(T_HELLO if self.state == "hello" else T_READY)
            self.command(raw, start)

    def command(self, raw, start):
        try:
            line = raw.decode("utf-8", "strict")
        except UnicodeDecodeError:
            return self.reply(501, "5.5.2", [("offset", start),
                                             ("err", "NMTP_ERR_WIRE_INVALID_UTF8")], refused=True)
        words = line.split(" ")
        if line == "CHUNK" or line.startswith("CHUNK "):
            # 60.5: "answered once, at its header ...; its body is still framed by its
            # size and discarded".
            self.reply(503, "5.5.1", [("err", "NMTP_ERR_WIRE_UNEXPECTED_CHUNK")], refused=True)
            self.read_chunk(line, start, T_READY)
            return
        syntax = lambda: self.reply(  # noqa: E731
            501, "5.5.2", [("offset", start), ("err", "NMTP_ERR_WIRE_SYNTAX")], refused=True)
        # "checked before the verb is looked up".
        if has_control(line) or "" in words:
            return syntax()
        verb = words[0]
        if verb in SUBMISSION_VERBS:
            return self.reply(502, "5.5.1", [("err", "NMTP_ERR_TRANSPORT_WRONG_SERVICE")],
                              refused=True)
        if verb not in VERBS:
            return self.reply(500, "5.5.1", [("offset", start),
                                             ("err", "NMTP_ERR_WIRE_UNKNOWN_COMMAND")],
                              refused=True)
        if self.state == "data":
            # 60.10.1: in `data` only chunks are allowed; "Any other known command is 503".
            return self.out_of_order()
        nargs, table, limit = VERBS[verb]
        if len(raw) + 2 > limit:
            return self.reply(501, "5.5.2", [("offset", start),
                                             ("err", "NMTP_ERR_WIRE_COMMAND_TOO_LONG")],
                              refused=True)
        args, rest = words[1 : 1 + nargs], words[1 + nargs :]
        if len(args) != nargs:
            return syntax()
        params, pos = {}, 0
        names = [n for n, _ in table]
        for w in rest:
            name, eq, value = w.partition("=")
            if not eq or not PARAM_NAME.match(name) or not value or name not in names:
                return syntax()
            i = names.index(name)
            if i < pos or name in params:  # "in the order of the table, each at most once"
                return syntax()
            params[name], pos = value, i
        if any(req and n not in params for n, req in table):
            return syntax()
        getattr(self, "cmd_" + verb.lower())(args, params)

    def out_of_order(self):
        self.reply(503, "5.5.1", [("err", "NMTP_ERR_TRANSPORT_OUT_OF_ORDER")], refused=True)

    def bad_argument(self, params=()):
        self.reply(501, "5.5.4", list(params) + [("err", "NMTP_ERR_TRANSPORT_BAD_ARGUMENT")],
                   refused=True)

    # -- HELLO (60.8.1, 60.8.3) -----------------------------------------------------

    def cmd_hello(self, args, params):
        if self.state != "hello":
            return self.out_of_order()
        domain = args[0]
        proof = nmtp_message.b64url_strict(params["proof"], 64)
        # 60.8.1: malformed arguments are refused as such; no challenge is used up.
        if (proof is None or not re.fullmatch(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*", params["sel"])
                or not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", domain)):
            return self.bad_argument()
        ok = False
        try:
            rec = nmtp_message.lookup_key(self.cfg["records"],
                                          "%s._nmtpkey.%s" % (params["sel"], domain),
                                          int(time.time()))
            proof_input = b"\n".join([b"NMTP-AUTH-1", self.challenge.encode(),
                                      self.cfg["server_name"].encode(), domain.encode()])
            ok = nmtp_message.ed25519_verify(proof, rec["p"], proof_input)
        except nmtp_message.SigError as e:
            if e.temporary:
                self.reply(454, "4.7.0", [("domain", domain),
                                          ("err", "NMTP_ERR_TRANSPORT_PROOF_KEY_UNAVAILABLE")])
                raise Fatal()
        if not ok:
            # "A failed proof ends the session: the challenge is used up."
            self.reply(535, "5.7.8", [("domain", domain),
                                      ("err", "NMTP_ERR_TRANSPORT_PROOF_INVALID")])
            raise Fatal()
        self.domain = domain
        self.state = "ready"
        p = [("domain", domain), ("proof", "pass"),
             ("csv", csv_result(self.cfg["records"], domain, self.ip))]
        if self.cfg.get("eager") is not None:
            p.append(("eager", str(self.cfg["eager"])))
        self.reply(250, "2.0.0", p)

    # -- transaction (60.10.2-60.10.5) ------------------------------------------------

    def cmd_rcpt(self, args, params):
        if self.state not in ("ready", "recipients"):
            return self.out_of_order()
        a = args[0]
        if "redirect" in params and params["redirect"] != "failed":
            return self.bad_argument()
        local, at, dom = a.rpartition("@")
        if not at or not local or not dom:
            return self.reply(501, "5.1.3", [("rcpt", a),
                                             ("err", "NMTP_ERR_TRANSPORT_BAD_ARGUMENT")],
                              "NMTP_ERR_ADDR_SYNTAX", refused=True)
        a = local + "@" + dom.lower()
        if a in self.rcpts:
            return self.reply(501, "5.5.4", [("rcpt", a),
                                             ("err", "NMTP_ERR_TRANSPORT_DUPLICATE_RECIPIENT")],
                              refused=True)
        if len(self.rcpts) >= MAX_RCPTS:
            return self.reply(452, "4.5.3", [("rcpt", a),
                                             ("err", "NMTP_ERR_TRANSPORT_TOO_MANY_RECIPIENTS")],
                              refused=True)
        if self.cfg["decide"].get(a) == "refuse":
            return self.reply(550, "5.1.1", [("rcpt", a),
                                             ("err", "NMTP_ERR_TRANSPORT_RECIPIENT_REJECTED")])
        self.rcpts.append(a)
        self.state = "recipients"
        self.reply(250, "2.1.5", [("rcpt", a)])

    def cmd_rset(self, args, params):
        if self.state == "hello":
            return self.out_of_order()
        self.rcpts, self.state = [], "ready"
        self.reply(250, "2.0.0")

    def cmd_noop(self, args, params):
        self.reply(250, "2.0.0")

    def cmd_quit(self, args, params):
        self.reply(221, "2.0.0")
        raise Fatal()

    def cmd_prove(self, args, params):
        if self.state != "ready":
            return self.out_of_order()
        # This receiver holds no user keys: "No key here" is an answer, not a refusal.
        self.reply(550, "5.7.1", [("rcpt", args[0]), ("err", "NMTP_ERR_TRANSPORT_PROVE_NO_KEY")])

    def discard_eager(self):
        """60.10.4: "The server reads and discards the chunks of an eager DATA it refused,
        up to the LAST one, and answers none of them"; a command line ends it."""
        while True:
            while self.buf.find(b"\n", 0, MAX_LINE) < 0 and len(self.buf) < 6:
                self.fill(T_READY)
            if not (self.buf.startswith(b"CHUNK ") or self.buf.startswith(b"CHUNK\r")):
                return
            raw, start = self.read_line(T_READY)
            _, last = self.read_chunk(raw.decode("ascii", "replace"), start, T_READY)
            if last:
                return

    def cmd_data(self, args, params):
        eager = params.get("send")
        try:
            self.data(params)
        except _Refused:
            if eager == "full":
                self.discard_eager()

    def data(self, params):
        def refuse(code, enh, p, fatal=False, refused=True):
            self.reply(code, enh, p, refused=refused)
            if fatal:
                raise Fatal()
            raise _Refused()

        cookie = params.get("cookie")
        if self.state == "hello":  # 60.10.1: not an allowed command in `hello`
            refuse(503, "5.5.1", [("err", "NMTP_ERR_TRANSPORT_OUT_OF_ORDER")])
        # 60.10.4: the arguments are checked first, then where the DATA stands.
        bad = [("err", "NMTP_ERR_TRANSPORT_BAD_ARGUMENT")]
        if not DECIMAL.match(params["size"]):
            refuse(501, "5.5.4", bad)
        size = int(params["size"])
        digest = nmtp_message.b64url_strict(params["digest"], 32)
        if digest is None:
            refuse(501, "5.5.4", bad)
        signers = params.get("signers")
        signer_set = set(signers.split(",")) if signers is not None else set()
        if "" in signer_set:
            refuse(501, "5.5.4", bad)
        send = params.get("send")
        if send is not None and send != "full":
            refuse(501, "5.5.4", bad)
        if send == "full" and (self.cfg.get("eager") is None or size > self.cfg["eager"]):
            # "the server closes the session after that reply".
            refuse(501, "5.5.4", bad, fatal=True)
        if cookie is not None and self.state != "ready":
            # "DATA with cookie= is allowed only outside a transaction".
            refuse(503, "5.5.1", [("err", "NMTP_ERR_TRANSPORT_OUT_OF_ORDER")])
        if cookie is None and not self.rcpts:
            refuse(503, "5.5.1", [("err", "NMTP_ERR_TRANSPORT_NO_RECIPIENTS")])
        if size > MAX_MESSAGE:
            refuse(552, "5.3.4", [("size", size), ("err", "NMTP_ERR_TRANSPORT_MESSAGE_TOO_LARGE")])
        if cookie is not None:
            rec = self.cookie_of(cookie)
            if rec is None:
                self.unknown_cookie(cookie)
                raise _Refused()
            # This receiver takes the full view at once: it never wants a bigger one.
            refuse(503, "5.5.1", [("cookie", cookie),
                                  ("err", "NMTP_ERR_TRANSPORT_VIEW_NOT_WANTED")])

        self.reply(354, "2.0.0", [("view", "full")])
        self.state = "data"
        data, got = [], 0
        while True:
            raw, start = self.read_line(T_DATA)
            text = raw.decode("ascii", "replace")
            if not (text == "CHUNK" or text.startswith("CHUNK ")):
                self.command(raw, start)  # a command where a chunk is due: 503
                continue
            piece, last = self.read_chunk(text, start, T_DATA)
            got += len(piece)
            if got <= size:  # beyond size is counted, not kept
                data.append(piece)
            if last:
                break
        rcpts, self.rcpts, self.state = self.rcpts, [], "ready"
        if got != size:
            # "The full view MUST carry exactly size octets".
            return self.reply(554, "5.6.0", [("size", size), ("received", got),
                                             ("err", "NMTP_ERR_TRANSPORT_SIZE_MISMATCH")],
                              refused=True)
        message = b"".join(data)
        why = None
        try:
            decoded = nmtp_message.decode_frame(message)
            if bytes.fromhex(decoded["content_digest_hex"]) != digest:
                why = "content digest mismatch"
        except nmtp_message.FrameError as e:
            why = e.code
        if why is None:
            ids = set()
            for name, value in decoded["trace"]:
                if name.lower() == "signature":
                    try:
                        s = nmtp_message.parse_signature(value)
                    except nmtp_message.SigError:
                        continue  # "an unparseable field names no signer"
                    ids.add(s["u"] if s["u"] is not None else s["d"])
            if ids != signer_set:
                return self.reply(554, "5.6.0", [("view", "full"),
                                                 ("err", "NMTP_ERR_TRANSPORT_VIEW_INVALID")],
                                  "signers", refused=True)
        # "exactly one reply per accepted recipient, in RCPT order, each naming its
        # recipient"; a digest mismatch or an undecodable message rejects every one.
        for a in rcpts:
            decision = "reject" if why else self.cfg["decide"].get(a, "accept")
            if decision == "reject":
                self.reply(550, "5.6.0" if why else "5.7.1",
                           [("rcpt", a), ("err", "NMTP_ERR_TRANSPORT_RECIPIENT_REJECTED")],
                           why)
            elif decision == "defer":
                c = self.new_cookie(a, message, params)
                self.reply(350, "2.0.0", [("rcpt", a), ("cookie", c)] + self.window(c))
            else:
                self.reply(250, "2.0.0", [("rcpt", a), ("id", self.store(message))])

    def store(self, message):
        rid = secrets.token_hex(8)
        path = os.path.join(self.cfg["store"], rid + ".nmtp")
        with open(path + ".tmp", "wb") as f:
            f.write(message)
        os.rename(path + ".tmp", path)
        return rid

    # -- cookies (60.10.6) -----------------------------------------------------------

    def new_cookie(self, rcpt, message, params):
        c = nmtp_message.b64url(secrets.token_bytes(18))  # "at least 128 bits"
        held = os.path.join(self.cfg["store"], "held", c + ".nmtp")
        os.makedirs(os.path.dirname(held), exist_ok=True)
        with open(held, "wb") as f:
            f.write(message)
        with self.cookies.lock:
            self.cookies.by_cookie[c] = {
                "domain": self.domain, "rcpt": rcpt, "state": "deferred", "held": held,
                "issued": int(time.time()), "id": None,
            }
        return c

    def window(self, c):
        rec = self.cookies.by_cookie[c]
        return [("min", MIN_POLL), ("max", MAX_POLL), ("expires", rec["issued"] + LIFETIME)]

    def cookie_of(self, c):
        """A cookie of another client domain is answered exactly like an unknown one."""
        with self.cookies.lock:
            rec = self.cookies.by_cookie.get(c)
        return rec if rec is not None and rec["domain"] == self.domain else None

    def unknown_cookie(self, c):
        # "A cookie that does not match the cookie syntax is answered like an unknown one,
        # without echoing it."
        p = [("cookie", c)] if COOKIE.match(c) else []
        self.reply(550, "5.5.4", p + [("err", "NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN")],
                   refused=True)

    def cmd_status(self, args, params):
        if self.state != "ready":
            return self.out_of_order()
        c = args[0]
        rec = self.cookie_of(c)
        if rec is None:
            return self.unknown_cookie(c)
        if rec["state"] == "deferred":
            decided = os.path.join(self.cfg["store"], "decide", c)
            if os.path.exists(decided):
                with open(decided) as f:
                    verdict = f.read().strip()
                if verdict == "accept":
                    with open(rec["held"], "rb") as f:
                        rec["id"] = self.store(f.read())
                    rec["state"] = "accepted"
                elif verdict == "reject":
                    rec["state"] = "rejected"
        base = [("cookie", c), ("rcpt", rec["rcpt"])]
        if rec["state"] == "deferred":
            self.reply(350, "2.0.0", base + self.window(c))
        elif rec["state"] == "accepted":
            self.reply(250, "2.0.0", base + [("state", "accepted"), ("id", rec["id"])])
        elif rec["state"] == "rejected":
            self.reply(550, "5.7.1", base + [("state", "rejected"),
                                             ("err", "NMTP_ERR_TRANSPORT_RECIPIENT_REJECTED")])
        else:
            self.reply(250, "2.0.0", base + [("state", "given-up")])

    def cmd_giveup(self, args, params):
        if self.state != "ready":
            return self.out_of_order()
        c = args[0]
        rec = self.cookie_of(c)
        if rec is None:
            return self.unknown_cookie(c)
        if rec["state"] == "deferred":
            rec["state"] = "given-up"
        self.reply(250, "2.0.0", [("cookie", c), ("rcpt", rec["rcpt"]), ("state", "given-up")])


class _Refused(Exception):
    """A DATA was refused (its reply sent)."""


def serve_one(conn, addr, ctx, cfg, cookies):
    try:
        conn.settimeout(10)  # the TLS handshake
        tls = ctx.wrap_socket(conn, server_side=True)
    except (OSError, ssl.SSLError):
        conn.close()
        return
    try:
        Session(tls, addr[0], cfg, cookies).run()
    except (Fatal, OSError, ssl.SSLError):
        pass
    finally:
        try:
            tls.close()
        except OSError:
            pass


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: nmtp_receiver.py CONFIG.json\n")
        return 2
    with open(argv[1]) as f:
        cfg = json.load(f)
    cfg.setdefault("decide", {})
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # 60.2: "implicit TLS (TLS 1.3 or later, RFC 8446) from the first octet".
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cfg["cert"], cfg["key"])
    lsock = socket.create_server(("127.0.0.1", 0))
    print(json.dumps({"port": lsock.getsockname()[1]}), flush=True)
    cookies = Cookies()
    while True:
        conn, addr = lsock.accept()
        threading.Thread(target=serve_one, args=(conn, addr, ctx, cfg, cookies),
                         daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
