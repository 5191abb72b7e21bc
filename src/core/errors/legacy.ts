import { defineErrors } from './define.ts';

/** Codes of the legacy boundary: MIME conversion and delivery status notifications. */
export const LEGACY_ERRORS = defineErrors({});
