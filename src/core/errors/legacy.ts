import { defineErrors } from './define.ts';

/** Codes of the legacy boundary: building RFC 5322/MIME messages from framed ones. */
export const LEGACY_ERRORS = defineErrors({});
