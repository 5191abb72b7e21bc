import { defineErrors } from './define.ts';

/** Codes of the mime subsystem (legacy boundary). */
export const MIME_ERRORS = defineErrors({});
