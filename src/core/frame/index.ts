/**
 * The framed message codec (NMTP/1), docs/protocol.md section 10. Pure: bytes in, values
 * and bytes out.
 */
export * from './fields.ts';
export * from './limits.ts';
export * from './decoder.ts';
export * from './encoder.ts';
export * from './message.ts';
