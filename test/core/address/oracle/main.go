// Independent PRECIS oracle for test/core/address/precis-oracle.test.ts.
//
// golang.org/x/text/secure/precis is a separate implementation of RFC 8264/8265 (Debian:
// golang-go + golang-golang-x-text-dev). Run with GOPATH=/usr/share/gocode GO111MODULE=off.
//
//	go run main.go table    one line per code point assigned in Go's Unicode tables (not
//	                        private use): "<hex> -" or "<hex> + <hex>…" for IdentifierClass
//	                        + width mapping + NFC, without the Bidi Rule
//	go run main.go strings  reads Go-quoted strings, one per line, and prints "+" or "-"
//	                        for the full UsernameCasePreserved profile
//
// x/text applies the Bidi Rule to every string, RFC 8265 only to strings with R, AL or
// AN characters; the test compares only where the two agree on when it applies.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"unicode"

	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

var noBidi = precis.NewIdentifier(precis.FoldWidth, precis.Norm(norm.NFC))

func main() {
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	if len(os.Args) > 1 && os.Args[1] == "strings" {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s, err := strconv.Unquote(sc.Text())
			if err == nil {
				_, err = precis.UsernameCasePreserved.String(s)
			}
			if err != nil {
				fmt.Fprintln(w, "-")
			} else {
				fmt.Fprintln(w, "+")
			}
		}
		return
	}
	fmt.Fprintf(w, "# unicode %s\n", norm.Version)
	for cp := rune(0); cp <= 0x10FFFF; cp++ {
		if cp >= 0xD800 && cp <= 0xDFFF {
			continue
		}
		if !unicode.In(cp, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z,
			unicode.Cc, unicode.Cf) {
			continue
		}
		out, err := noBidi.String(string(cp))
		if err != nil {
			fmt.Fprintf(w, "%x -\n", cp)
			continue
		}
		fmt.Fprintf(w, "%x +", cp)
		for _, r := range out {
			fmt.Fprintf(w, " %x", r)
		}
		fmt.Fprintln(w)
	}
}
