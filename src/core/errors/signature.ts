import { defineErrors } from './define.ts';

/** Codes of the signature subsystem. */
export const SIGNATURE_ERRORS = defineErrors({});
