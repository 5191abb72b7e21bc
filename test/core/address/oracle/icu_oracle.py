#!/usr/bin/python3
"""Independent UTS #39 oracle for test/core/address/uts39-oracle.test.ts: ICU's spoof
checker through PyICU (Debian: python3-icu, ICU 72.1 / Unicode 15.0).

stdin: JSON {"skeletons": [[hex code point, our skeleton], ...],
             "levels": [[string, our level], ...]}
stdout: JSON {"skeleton_same": n, "skeleton_diff": [[hex, icu, ours], ...],
              "level_same": n, "level_diff": [[string, icu, ours], ...]}

Skeletons are compared only for code points assigned in this Python's unicodedata
(Unicode 14.0), since ICU 72 knows nothing newer. Levels use ICU's algorithm with the
allowed set = recommended + inclusion (the UTS #39 General Security Profile); ICU's
default allows everything, which would never yield "unrestricted".
"""
import json
import sys
import unicodedata

import icu

LEVELS = [
    (icu.URestrictionLevel.ASCII, 'ascii'),
    (icu.URestrictionLevel.SINGLE_SCRIPT_RESTRICTIVE, 'single-script'),
    (icu.URestrictionLevel.HIGHLY_RESTRICTIVE, 'highly-restrictive'),
    (icu.URestrictionLevel.MODERATELY_RESTRICTIVE, 'moderately-restrictive'),
    (icu.URestrictionLevel.MINIMALLY_RESTRICTIVE, 'minimally-restrictive'),
]

base = icu.SpoofChecker()
allowed = icu.UnicodeSet(base.getRecommendedUnicodeSet())
allowed.addAll(base.getInclusionUnicodeSet())
checkers = []
for level, name in LEVELS:
    sc = icu.SpoofChecker()
    sc.setChecks(icu.USpoofChecks.RESTRICTION_LEVEL)
    sc.setRestrictionLevel(level)
    sc.setAllowedUnicodeSet(allowed)
    checkers.append((sc, name))


def icu_level(s):
    for sc, name in checkers:
        if sc.check(s) == 0:
            return name
    return 'unrestricted'


def main():
    data = json.load(sys.stdin)
    out = {'skeleton_same': 0, 'skeleton_diff': [], 'level_same': 0, 'level_diff': []}
    for hexcp, ours in data['skeletons']:
        ch = chr(int(hexcp, 16))
        if unicodedata.category(ch) in ('Cn', 'Cs', 'Co'):
            continue
        theirs = base.getSkeleton(0, ch)
        if theirs == ours:
            out['skeleton_same'] += 1
        else:
            out['skeleton_diff'].append([hexcp, theirs, ours])
    for s, ours in data['levels']:
        theirs = icu_level(s)
        if theirs == ours:
            out['level_same'] += 1
        else:
            out['level_diff'].append([s, theirs, ours])
    json.dump(out, sys.stdout, ensure_ascii=False)


main()
