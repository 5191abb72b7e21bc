import { defineErrors } from './define.ts';

/** Codes of the dsn subsystem (legacy boundary). */
export const DSN_ERRORS = defineErrors({});
