import { defineErrors } from './define.ts';

/** Codes of the transport: wire codec, session state machines, cookies. */
export const TRANSPORT_ERRORS = defineErrors({});
