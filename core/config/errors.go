package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// maxReported is how many errors one load reports; past that, fixing the
// first ones usually changes the rest.
const maxReported = 10

// Error is one problem in a config file, located at file:line:col.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ErrorList is several problems found in one file, sorted by position.
// It holds at most ten; when more were found, a last entry without a line
// says how many were left out.
type ErrorList []*Error

func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find the individual errors too.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// errorSet collects errors while a file is decoded and validated.
type errorSet struct {
	file string
	errs []*Error
}

func (s *errorSet) add(p Pos, format string, args ...any) {
	if p.File == "" {
		p.File = s.file
	}
	s.errs = append(s.errs, &Error{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

func (s *errorSet) empty() bool { return len(s.errs) == 0 }

// err returns nil, a single *Error, or an ErrorList; redact runs over every
// message as a last line of defence so no expanded secret is ever shown.
func (s *errorSet) err(redact func(string) string) error {
	if len(s.errs) == 0 {
		return nil
	}
	errs := slices.Clone(s.errs)
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	errs = slices.CompactFunc(errs, func(a, b *Error) bool { return a.Pos == b.Pos && a.Msg == b.Msg })
	for _, e := range errs {
		e.Msg = redact(e.Msg)
	}
	if len(errs) == 1 {
		return errs[0]
	}
	if len(errs) > maxReported {
		more := len(errs) - maxReported
		errs = append(errs[:maxReported:maxReported], &Error{
			Pos: Pos{File: s.file},
			Msg: fmt.Sprintf("%d more %s not shown", more, plural(more, "error", "errors")),
		})
	}
	return ErrorList(errs)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// suggest returns the candidate closest to got, if it is close enough to be
// a plausible typo.
func suggest(got string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(got), strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := max(1, min(len(got), len(best))/3)
	if bestDist >= 0 && bestDist <= limit {
		return best
	}
	for _, c := range candidates {
		if len(got) >= 3 && (strings.HasPrefix(c, got) || strings.HasPrefix(got, c)) {
			return c
		}
	}
	return ""
}

// editDistance is the optimal string alignment distance between a and b
// over runes: insertions, deletions, substitutions and swaps of adjacent
// letters ("atuo" for "auto") each count one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// DidYouMean is "; did you mean "x"?" naming the candidate closest to got,
// or "" when none is close: for messages about names given elsewhere than
// the file (command-line arguments).
func DidYouMean(got string, candidates []string) string { return didYouMean(got, candidates) }

// didYouMean formats a suggestion as "; did you mean "x"?" or nothing.
func didYouMean(got string, candidates []string) string {
	if s := suggest(got, candidates); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	return ""
}
