"""Independent decoder for the legacy -> framed oracle test (test/adapters/mime/oracle.test.ts).

Reads a JSON list of .eml paths on stdin; prints, per file, what Python's email package
(policy=default) decodes: Subject, From display names, and every leaf part in walk order
with its decoded octets (base64) and, for text/*, its decoded text.
"""
import base64
import email
import email.policy
import json
import sys


def fix(s):
    """message_from_bytes keeps raw 8-bit header octets as surrogate escapes; turn them
    back into the UTF-8 text they are (RFC 6532), as the gateway reads them."""
    return s.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace')


def walk(part):
    # message/delivery-status is parsed by Python into header blocks (sub-messages); the
    # gateway keeps it one leaf (RFC 3464 body). Reported as one leaf without octets.
    yield part
    if part.get_content_type() == 'message/delivery-status':
        return
    if part.is_multipart():
        for sub in part.iter_parts():
            yield from walk(sub)


def leaves(msg):
    out = []
    for part in walk(msg):
        if part.get_content_type() == 'message/delivery-status':
            out.append({'type': 'message/delivery-status', 'octets_b64': None, 'skip': True})
            continue
        if part.is_multipart():
            continue
        item = {'type': part.get_content_type()}
        try:
            raw = part.get_payload(decode=True)
        except Exception as e:  # noqa: BLE001 - recorded, the test decides
            raw = None
            item['error'] = repr(e)
        item['octets_b64'] = None if raw is None else base64.b64encode(raw).decode('ascii')
        try:
            name = part.get_filename()
            item['filename'] = None if name is None else fix(str(name))
        except Exception as e:  # noqa: BLE001
            item['filename_error'] = repr(e)
        if part.get_content_maintype() == 'text':
            try:
                item['text'] = part.get_content()
            except Exception as e:  # noqa: BLE001
                item['text_error'] = repr(e)
        out.append(item)
    return out


def main():
    files = json.load(sys.stdin)
    result = {}
    for path in files:
        with open(path, 'rb') as f:
            msg = email.message_from_bytes(f.read(), policy=email.policy.default)
        entry = {}
        try:
            s = msg['subject']
            entry['subject'] = None if s is None else fix(str(s))
        except Exception as e:  # noqa: BLE001
            entry['subject_error'] = repr(e)
        try:
            fr = msg['from']
            entry['from_names'] = None if fr is None else [fix(a.display_name) for a in fr.addresses]
        except Exception as e:  # noqa: BLE001
            entry['from_error'] = repr(e)
        try:
            entry['leaves'] = leaves(msg)
        except Exception as e:  # noqa: BLE001
            entry['leaves_error'] = repr(e)
        result[path] = entry
    json.dump(result, sys.stdout)


main()
