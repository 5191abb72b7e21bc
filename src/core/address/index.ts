/**
 * NMTP addresses (docs/protocol.md section 20): parsing and canonical form, PRECIS
 * local parts, IDNA domains, UTS #39 homograph verdicts, display names, legacy mapping.
 */
export {
  parseAddress,
  tryParseAddress,
  sameAddress,
  enforceHomographPolicy,
  ADDRESS_MAX_INPUT,
} from './address.ts';
export type { Address, ParseOptions, ParseResult } from './address.ts';
export {
  enforceLocalPart,
  prepareLocalPart,
  identifierClassOf,
  LOCAL_MAX_CODE_POINTS,
  LOCAL_MAX_OCTETS,
  NMTP_RESERVED_ASCII,
} from './local-part.ts';
export type { PrecisClass } from './local-part.ts';
export { processDomain, DOMAIN_MAX_OCTETS, LABEL_MAX_OCTETS } from './domain.ts';
export type { ProcessedDomain } from './domain.ts';
export {
  skeleton,
  restrictionLevel,
  homographVerdict,
  domainVerdict,
  addressVerdict,
  formatAddressVerdict,
  RESTRICTION_LEVELS,
} from './homograph.ts';
export type {
  RestrictionLevel,
  HomographWarning,
  HomographVerdict,
  DomainVerdict,
  AddressVerdict,
  HomographAction,
} from './homograph.ts';
export {
  validateDisplayName,
  prepareDisplayName,
  formatMailbox,
  formatMailboxList,
  parseMailboxList,
  DISPLAY_NAME_MAX_CODE_POINTS,
} from './display-name.ts';
export type { Mailbox } from './display-name.ts';
export { fromLegacyAddress, toLegacyAddress, splitLegacy } from './legacy.ts';
export type { FromLegacyOptions, ToLegacyOptions } from './legacy.ts';
export { CONFUSABLES_UNICODE_VERSION, CONFUSABLES_SOURCE } from './data/confusables.ts';
