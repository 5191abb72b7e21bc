import { defineErrors } from './define.ts';

/** Codes of the address subsystem. */
export const ADDRESS_ERRORS = defineErrors({});
