/**
 * A converted legacy message that carries its original octets (multipart/x-nmtp-legacy:
 * the converted content, then application/x-nmtp-legacy-original; see
 * docs/protocol.md §50.7.4, legacy → NMTP) is unwrapped: "the legacy copy is built from the
 * first child, with the root's message fields; the carried original is not sent"
 * (docs/protocol.md §51.2). A legacy reader would otherwise see a
 * multipart/x-nmtp-legacy it does not know, and a second copy of the message.
 */
import {
  type Part,
  getField,
  isContainerPart,
  parseContentType,
} from '../../src/core/frame/index.ts';

export const WRAPPER_TYPE = 'multipart/x-nmtp-legacy';

export function unwrapCarriedOriginal(root: Part): Part {
  if (!isContainerPart(root)) return root;
  const ct = parseContentType(getField(root.fields, 'Content-Type') ?? 'text/plain');
  if (`${ct.type}/${ct.subtype}`.toLowerCase() !== WRAPPER_TYPE) return root;
  const content = root.children[0];
  if (content === undefined) return root;
  const message = root.fields.filter((f) => !/^content-/i.test(f.name));
  return isContainerPart(content)
    ? { fields: [...message, ...content.fields], children: content.children }
    : { fields: [...message, ...content.fields], body: content.body };
}
