#!/usr/bin/env python3
"""Vectors for docs/protocol.md §52.12.4 (the reverse direction's names), computed with
Python's hmac/hashlib only — independently of the TypeScript implementation that
test/gateway/reverse/tokens.test.ts checks against them. Run: python3 generate.py > tokens.json"""
import hashlib, hmac, json

B32 = "abcdefghijklmnopqrstuvwxyz234567"

def entry_id(rand: bytes) -> str:
    return "r" + "".join(B32[b & 31] for b in rand[:26])

def k(seed: bytes) -> bytes:
    return hmac.new(b"nmtp-gateway reverse tokens v1", seed, hashlib.sha256).digest()

def mac(key: bytes, *parts: str) -> str:
    return hmac.new(key, "\0".join(parts).encode(), hashlib.sha256).hexdigest()[:32]

out = []
for seed_byte, rand_start, index, domain in [
    (0x07, 0, 0, "sender.example"),
    (0x07, 100, 3, "Sender.EXAMPLE"),
    (0x2A, 200, 12, "xn--bcher-kva.example"),
]:
    seed = bytes([seed_byte]) * 32
    rand = bytes((rand_start + i) % 256 for i in range(26))
    eid = entry_id(rand)
    key = k(seed)
    out.append({
        "seed_hex": seed.hex(),
        "random_hex": rand.hex(),
        "entry_id": eid,
        "index": index,
        "client_domain": domain,
        "cookie": f"gw-{mac(key, 'cookie', eid, str(index), domain.lower())}-{index}-{eid}",
        "tag": f"{eid}.{mac(key, 'tag', eid)}",
        "return_path": f"nmtp-return+{eid}.{mac(key, 'tag', eid)}@gw.example",
    })
print(json.dumps({"description": "docs/protocol.md §52.12.4: cookie, tag and return path from the gateway's domain key seed", "vectors": out}, indent=2))
