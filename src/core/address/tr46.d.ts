/**
 * Types for tr46@6.0.0 (pinned exactly in package.json), which ships none. Only what
 * src/core/address uses is declared. `tr46/lib/regexes.js` is an internal file of that
 * exact version (no "exports" map restricts it): its generated regexes carry Unicode data
 * that ECMAScript property escapes cannot express (Bidi_Class, Joining_Type,
 * Canonical_Combining_Class=Virama). If tr46 is upgraded, re-check that file still exists.
 */
declare module 'tr46' {
  export interface Tr46Options {
    checkHyphens?: boolean;
    checkBidi?: boolean;
    checkJoiners?: boolean;
    useSTD3ASCIIRules?: boolean;
    verifyDNSLength?: boolean;
    transitionalProcessing?: boolean;
    ignoreInvalidPunycode?: boolean;
  }
  export function toASCII(domainName: string, options?: Tr46Options): string | null;
  export function toUnicode(
    domainName: string,
    options?: Tr46Options,
  ): { domain: string; error: boolean };
}

declare module 'tr46/lib/regexes.js' {
  const regexes: {
    combiningClassVirama: RegExp;
    validZWNJ: RegExp;
    bidiDomain: RegExp;
    bidiS1LTR: RegExp;
    bidiS1RTL: RegExp;
    bidiS2: RegExp;
    bidiS3: RegExp;
    bidiS4EN: RegExp;
    bidiS4AN: RegExp;
    bidiS5: RegExp;
    bidiS6: RegExp;
  };
  export default regexes;
}
