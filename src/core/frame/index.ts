/**
 * The framed message codec (NMTP/1), docs/protocol/10-format.md. Pure: bytes in, values
 * and bytes out.
 */
export * from './fields.ts';
export * from './limits.ts';
export * from './decoder.ts';
export * from './encoder.ts';
export * from './message.ts';
