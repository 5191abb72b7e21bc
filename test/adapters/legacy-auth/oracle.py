#!/usr/bin/python3
"""Independent DKIM/ARC verifier for the legacy-auth tests: Debian's python3-dkim (dkimpy).

stdin: JSON {"records": {"<selector>._domainkey.<domain>": "<TXT value>"},
             "messages": ["<base64 message>", ...]}
stdout: JSON [{"dkim": [true|false per DKIM-Signature, top first],
               "arc": {"cv": "pass|fail|none|terminated", "reason": "..."},
               "sets": [{"instance", "ams_valid", "as_valid", "cv"}, ...]}, ...]
Keys come from the records given (dnsfunc), never from DNS.
"""
import base64
import json
import re
import sys

import dkim

req = json.load(sys.stdin)
records = {k.lower().rstrip("."): v for k, v in req["records"].items()}


def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode("ascii")
    value = records.get(name.lower().rstrip("."))
    return None if value is None else value.encode("ascii")


out = []
for b64 in req["messages"]:
    message = base64.b64decode(b64)
    head = message.split(b"\r\n\r\n", 1)[0]
    count = len(re.findall(rb"(?im)^DKIM-Signature\s*:", head))
    results = []
    for idx in range(count):
        d = dkim.DKIM(message, minkey=1024)
        try:
            results.append(bool(d.verify(idx=idx, dnsfunc=dnsfunc)))
        except dkim.DKIMException:
            results.append(False)
    cv, sets, reason = dkim.arc_verify(message, dnsfunc=dnsfunc)
    out.append({
        "dkim": results,
        # None: "ARC-Seal[n] reported failure, the chain is terminated"
        "arc": {"cv": "terminated" if cv is None else cv.decode("ascii"), "reason": reason},
        "sets": [{"instance": s["instance"], "ams_valid": bool(s["ams-valid"]),
                  "as_valid": bool(s["as-valid"]), "cv": s["cv"].decode("ascii")} for s in sets],
    })
json.dump(out, sys.stdout)
