import { defineErrors } from './define.ts';

/** Codes of the frame subsystem. */
export const FRAME_ERRORS = defineErrors({});
