/**
 * Homograph verdicts (UTS #39 "Unicode Security Mechanisms"): restriction levels from
 * Script_Extensions (§5.1-§5.2) and confusable skeletons (UTS #39 §4). A verdict is plain data,
 * computed from the address alone, so every receiver can recompute and compare it.
 * Spec: docs/protocol.md §20.7.
 *
 * Script data comes from ECMAScript property escapes (\p{Script=…},
 * \p{Script_Extensions=…}), i.e. from the engine's ICU (Node 20.20: Unicode 17.0);
 * confusable data from ./data/confusables.ts (Unicode 17.0 confusables.txt).
 */
import { CONFUSABLES_DATA } from './data/confusables.ts';

export type RestrictionLevel =
  | 'ascii'
  | 'single-script'
  | 'highly-restrictive'
  | 'moderately-restrictive'
  | 'minimally-restrictive'
  | 'unrestricted';

/** Least to most permissive: a label set's level is the worst (highest index) of its parts. */
export const RESTRICTION_LEVELS: readonly RestrictionLevel[] = [
  'ascii',
  'single-script',
  'highly-restrictive',
  'moderately-restrictive',
  'minimally-restrictive',
  'unrestricted',
];

export type HomographWarning =
  | 'mixed-script'
  | 'non-recommended-script'
  | 'ascii-confusable'
  | 'whole-script-confusable'
  | 'mixed-script-confusable';

export interface HomographVerdict {
  readonly level: RestrictionLevel;
  /** ISO 15924 codes of the Script property of its characters, sorted; Zyyy/Zinh left out. */
  readonly scripts: readonly string[];
  /** True when the resolved script set (UTS #39 §5.1) is empty. */
  readonly mixedScript: boolean;
  /**
   * Set when the string is not ASCII but its skeleton is: the string can be mistaken for
   * any ASCII string with this same skeleton (compare skeletons, not strings).
   */
  readonly confusableWith?: string;
  readonly warnings: readonly HomographWarning[];
}

/** Every Script value of Unicode 17.0 except Common (Zyyy), Inherited (Zinh), Unknown. */
const SCRIPTS = (
  'Adlm Aghb Ahom Arab Armi Armn Avst Bali Bamu Bass Batk Beng Berf Bhks Bopo Brah Brai ' +
  'Bugi Buhd Cakm Cans Cari Cham Cher Chrs Copt Cpmn Cprt Cyrl Deva Diak Dogr Dsrt Dupl ' +
  'Egyp Elba Elym Ethi Gara Geor Glag Gong Gonm Goth Gran Grek Gujr Gukh Guru Hang Hani ' +
  'Hano Hatr Hebr Hira Hluw Hmng Hmnp Hung Ital Java Kali Kana Kawi Khar Khmr Khoj Kits ' +
  'Knda Krai Kthi Lana Laoo Latn Lepc Limb Lina Linb Lisu Lyci Lydi Mahj Maka Mand Mani ' +
  'Marc Medf Mend Merc Mero Mlym Modi Mong Mroo Mtei Mult Mymr Nagm Nand Narb Nbat Newa ' +
  'Nkoo Nshu Ogam Olck Onao Orkh Orya Osge Osma Ougr Palm Pauc Perm Phag Phli Phlp Phnx ' +
  'Plrd Prti Rjng Rohg Runr Samr Sarb Saur Sgnw Shaw Shrd Sidd Sidt Sind Sinh Sogd Sogo ' +
  'Sora Soyo Sund Sunu Sylo Syrc Tagb Takr Tale Talu Taml Tang Tavt Tayo Telu Tfng Tglg ' +
  'Thaa Thai Tibt Tirh Tnsa Todr Tols Toto Tutg Ugar Vaii Vith Wara Wcho Xpeo Xsux Yezi ' +
  'Yiii Zanb'
).split(' ');

/**
 * UAX #31 Table 7 "Recommended Scripts". A character of any other script makes the string
 * "unrestricted" (our stand-in for UTS #39's Identifier_Status=Restricted, see spec §20.7.1).
 */
const RECOMMENDED = new Set(
  (
    'Arab Armn Beng Bopo Cyrl Deva Ethi Geor Grek Gujr Guru Hani Hang Hebr Hira Kana Knda ' +
    'Khmr Laoo Latn Mlym Mymr Orya Sinh Taml Telu Thaa Thai Tibt'
  ).split(' '),
);

const SC = SCRIPTS.map((s) => [s, new RegExp(`^\\p{Script=${s}}$`, 'u')] as const);
const SCX = SCRIPTS.map((s) => [s, new RegExp(`^\\p{Script_Extensions=${s}}$`, 'u')] as const);
const COMMON_OR_INHERITED = /^[\p{Script=Zyyy}\p{Script=Zinh}]$/u;

interface CharScripts {
  /** Script property; '' for Common, Inherited and Unknown. */
  readonly sc: string;
  /** Script_Extensions, or null for "all scripts" (Common/Inherited, UTS #39 §5.1). */
  readonly scx: ReadonlySet<string> | null;
}

/** Bounded memo: script lookups loop over ~170 regexes, and the same letters recur. */
const memo = new Map<number, CharScripts>();
const MEMO_MAX = 8192;

/**
 * UTS #39 §5.1 augmented script set: "Hani → add Hanb, Jpan, Kore; Hira, Kana → add Jpan;
 * Hang → add Kore; Bopo → add Hanb".
 */
function augment(scx: Set<string>): Set<string> {
  if (scx.has('Hani')) ['Hanb', 'Jpan', 'Kore'].forEach((s) => scx.add(s));
  if (scx.has('Hira') || scx.has('Kana')) scx.add('Jpan');
  if (scx.has('Hang')) scx.add('Kore');
  if (scx.has('Bopo')) scx.add('Hanb');
  return scx;
}

function scriptsOf(cp: number): CharScripts {
  const hit = memo.get(cp);
  if (hit !== undefined) return hit;
  let result: CharScripts;
  if (cp < 0x80) {
    // ASCII fast path: letters are Latin, everything else Common.
    const letter = (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a);
    result = letter ? { sc: 'Latn', scx: new Set(['Latn']) } : { sc: '', scx: null };
  } else {
    const ch = String.fromCodePoint(cp);
    const sc = SC.find(([, re]) => re.test(ch))?.[0] ?? '';
    const scx = new Set(SCX.filter(([, re]) => re.test(ch)).map(([s]) => s));
    // Common/Inherited with no extensions = every script; Unknown (unassigned, private
    // use) has no script at all (empty set), which makes any string containing it mixed.
    const all = scx.size === 0 && COMMON_OR_INHERITED.test(ch);
    result = { sc, scx: all ? null : augment(scx) };
  }
  if (memo.size >= MEMO_MAX) memo.clear();
  memo.set(cp, result);
  return result;
}

/**
 * UTS #39 §5.1 resolved script set: the intersection of the augmented script sets of all
 * characters; null means "all scripts" (only Common/Inherited characters). `without`
 * skips characters whose set contains that script (ICU's getResolvedScriptSetWithout).
 */
function resolvedScriptSet(cps: readonly number[], without?: string): Set<string> | null {
  let acc = null as Set<string> | null;
  for (const cp of cps) {
    const { scx } = scriptsOf(cp);
    if (scx === null) continue;
    if (without !== undefined && scx.has(without)) continue;
    acc = acc === null ? new Set(scx) : new Set([...acc].filter((s) => scx.has(s)));
  }
  return acc;
}

const isAsciiPrintable = (s: string): boolean => /^[\x20-\x7e]*$/.test(s);

/**
 * The UTS #39 §5.2 restriction level, in the order ICU's uspoof_getRestrictionLevel tests:
 * 1 non-Recommended script → unrestricted; 2 ASCII; 3 single script; 4-5 highly
 * restrictive (Latin + Japanese, Latin + Han/Bopomofo, Latin + Korean); 6 moderately
 * restrictive (Latin + one other script that is not Cyrillic, Greek or Cherokee);
 * otherwise minimally restrictive.
 */
export function restrictionLevel(s: string): RestrictionLevel {
  const cps = Array.from(s, (c) => c.codePointAt(0)!);
  for (const cp of cps) {
    // A character limited to scripts none of which is Recommended (this includes the
    // Unknown script, whose set is empty).
    const { scx } = scriptsOf(cp);
    if (scx !== null && ![...scx].some((x) => RECOMMENDED.has(x))) return 'unrestricted';
  }
  if (isAsciiPrintable(s)) return 'ascii';
  const resolved = resolvedScriptSet(cps);
  if (resolved === null || resolved.size > 0) return 'single-script';
  const noLatin = resolvedScriptSet(cps, 'Latn');
  if (noLatin === null) return 'single-script'; // unreachable: resolved would be non-empty
  if (noLatin.has('Hanb') || noLatin.has('Jpan') || noLatin.has('Kore')) {
    return 'highly-restrictive';
  }
  if (noLatin.size > 0 && !noLatin.has('Cyrl') && !noLatin.has('Grek') && !noLatin.has('Cher')) {
    return 'moderately-restrictive';
  }
  return 'minimally-restrictive';
}

let confusableMap: Map<number, string> | undefined;

/** Parses the generated table once, on first use ("cp:proto proto;…" in hex). */
function confusables(): Map<number, string> {
  if (confusableMap !== undefined) return confusableMap;
  const map = new Map<number, string>();
  for (const line of CONFUSABLES_DATA) {
    for (const entry of line.split(';')) {
      const [source, proto] = entry.split(':') as [string, string];
      map.set(
        parseInt(source, 16),
        String.fromCodePoint(...proto.split(' ').map((h) => parseInt(h, 16))),
      );
    }
  }
  confusableMap = map;
  return map;
}

/**
 * UTS #39 §4 skeleton(X): "1. Convert X to NFD format. 2. Concatenate the prototypes for
 * each character in X according to the specified data, producing a string of exemplar
 * characters. 3. Reapply NFD." Two strings are confusable iff their skeletons are equal.
 */
export function skeleton(s: string): string {
  const map = confusables();
  let out = '';
  for (const ch of s.normalize('NFD')) out += map.get(ch.codePointAt(0)!) ?? ch;
  return out.normalize('NFD');
}

/** The verdict for one string (a local part, or one U-label). */
export function homographVerdict(s: string): HomographVerdict {
  const cps = Array.from(s, (c) => c.codePointAt(0)!);
  const level = restrictionLevel(s);
  const scripts = [...new Set(cps.map((cp) => scriptsOf(cp).sc).filter((x) => x !== ''))];
  scripts.sort();
  const resolved = resolvedScriptSet(cps);
  const mixedScript = resolved !== null && resolved.size === 0;
  const warnings: HomographWarning[] = [];
  if (mixedScript) warnings.push('mixed-script');
  if (level === 'unrestricted') warnings.push('non-recommended-script');
  let confusableWith: string | undefined;
  if (!isAsciiPrintable(s)) {
    const sk = skeleton(s);
    if (isAsciiPrintable(sk)) {
      confusableWith = sk;
      warnings.push('ascii-confusable');
      // UTS #39 §4 whole-script confusable: the string is in one script other than Latin and
      // every character of it has a Latin/ASCII look-alike.
      if (mixedScript) warnings.push('mixed-script-confusable');
      else if (resolved !== null && !resolved.has('Latn')) warnings.push('whole-script-confusable');
    }
  }
  return confusableWith === undefined
    ? { level, scripts, mixedScript, warnings }
    : { level, scripts, mixedScript, confusableWith, warnings };
}

export interface DomainVerdict extends HomographVerdict {
  /** One verdict per U-label, in order. */
  readonly labels: readonly HomographVerdict[];
}

/**
 * Domain verdict: "evaluated per label; the domain's level is the least restrictive of
 * its labels, and its skeleton is the skeleton of the whole U-label domain" (§20.7.2).
 */
export function domainVerdict(unicodeDomain: string): DomainVerdict {
  const labels = unicodeDomain.split('.').map(homographVerdict);
  let worst = 0;
  for (const l of labels) worst = Math.max(worst, RESTRICTION_LEVELS.indexOf(l.level));
  const scripts = [...new Set(labels.flatMap((l) => l.scripts))].sort();
  const warnings = [...new Set(labels.flatMap((l) => l.warnings))];
  const mixedScript = labels.some((l) => l.mixedScript);
  const base = { level: RESTRICTION_LEVELS[worst]!, scripts, mixedScript, labels };
  if (isAsciiPrintable(unicodeDomain)) return { ...base, warnings };
  const sk = skeleton(unicodeDomain);
  if (!isAsciiPrintable(sk)) return { ...base, warnings };
  if (!warnings.includes('ascii-confusable')) warnings.push('ascii-confusable');
  return { ...base, confusableWith: sk, warnings };
}

export type HomographAction = 'accept' | 'flag' | 'refuse';

export interface AddressVerdict {
  readonly local: HomographVerdict;
  readonly domain: DomainVerdict;
  /** The policy's decision (§20.7.3), and the reasons, in a fixed order. */
  readonly action: HomographAction;
  readonly reasons: readonly string[];
}

/**
 * §20.7.3 policy: "A gateway MUST refuse an address whose domain is minimally restrictive or
 * unrestricted. It MUST flag an address whose domain is moderately restrictive or
 * ASCII-confusable, or whose local part is minimally restrictive, unrestricted or
 * ASCII-confusable. Everything else is accepted." Local parts are never refused: the
 * receiving domain chose its mailbox names; the risk is to the reader, hence the flag.
 */
export function addressVerdict(local: HomographVerdict, domain: DomainVerdict): AddressVerdict {
  const refuse: string[] = [];
  const flag: string[] = [];
  if (domain.level === 'minimally-restrictive' || domain.level === 'unrestricted') {
    refuse.push(`domain-${domain.level}`);
  }
  if (domain.level === 'moderately-restrictive') flag.push('domain-moderately-restrictive');
  if (domain.confusableWith !== undefined) flag.push('domain-ascii-confusable');
  if (local.level === 'minimally-restrictive' || local.level === 'unrestricted') {
    flag.push(`local-${local.level}`);
  }
  if (local.confusableWith !== undefined) flag.push('local-ascii-confusable');
  const action: HomographAction =
    refuse.length > 0 ? 'refuse' : flag.length > 0 ? 'flag' : 'accept';
  return { local, domain, action, reasons: [...refuse, ...flag] };
}

/**
 * One-line, deterministic rendering for a trace field or a log, e.g.
 * `action=flag; local=ascii; domain=single-script; reasons=domain-ascii-confusable;
 * skeleton=apple.corn`.
 */
export function formatAddressVerdict(v: AddressVerdict): string {
  const parts = [`action=${v.action}`, `local=${v.local.level}`, `domain=${v.domain.level}`];
  if (v.reasons.length > 0) parts.push(`reasons=${v.reasons.join(',')}`);
  if (v.domain.confusableWith !== undefined) parts.push(`skeleton=${v.domain.confusableWith}`);
  return parts.join('; ');
}
