"""Independent decoder for the framed → legacy tests: Python's email package (policy=default).

stdin: JSON list of base64 messages. stdout: JSON list of decoded trees:
{"headers": [[name, text]], "addresses": {name: [[display, addr]]}, "type": ..., "filename": ...,
 "body_b64": ... (leaves, transfer-decoded octets) | "children": [...], "defects": [...]}
"""
import base64, json, re, sys
from email import message_from_bytes
from email.policy import default

ADDRESS_FIELDS = {"from", "sender", "reply-to", "to", "cc"}


def utf8(s):
    """RFC 6532 headers: the bytes parser keeps non-ASCII octets as surrogate escapes in
    some structured values (addresses); they are UTF-8 by definition."""
    if s is None:
        return None
    try:
        return s.encode("ascii", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return s


def tree(msg):
    out = {"headers": [], "addresses": {}, "defects": [type(d).__name__ for d in msg.defects]}
    for (name, raw), value in zip(msg.raw_items(), msg.values()):
        # Every field's text as an unstructured field (RFC 2047 decoded, unfolded): the
        # structured parsers would normalise (drop comments, re-quote), hiding what was sent.
        unfolded = re.sub(r"\r?\n(?=[ \t])", "", raw)
        text = str(default.header_factory("X-Oracle-Unstructured", unfolded))
        out["headers"].append([name, utf8(text)])
        if name.lower() == "date" and getattr(value, "datetime", None) is not None:
            out["date"] = value.datetime.isoformat()
        if name.lower() in ADDRESS_FIELDS:
            out["addresses"][name.lower()] = [
                [utf8(a.display_name), utf8(a.addr_spec)] for a in value.addresses
            ]
    out["type"] = msg.get_content_type()
    out["filename"] = msg.get_filename()
    params = dict((k.lower(), v) for k, v in msg.get_params(header="content-type", failobj=[])[1:])
    out["charset"] = params.get("charset")
    out["cte"] = msg.get("content-transfer-encoding")
    if msg.is_multipart():
        out["children"] = [tree(c) for c in msg.get_payload()]
    else:
        payload = msg.get_payload(decode=True)
        out["body_b64"] = base64.b64encode(payload or b"").decode()
    return out


inputs = json.load(sys.stdin)
json.dump([tree(message_from_bytes(base64.b64decode(m), policy=default)) for m in inputs], sys.stdout)
