// Package migrations reads a service's schema migrations as they stand at
// a release's commit and classes each one expand or contract by parsing
// its SQL with PostgreSQL's own parser (libpg_query, run as WebAssembly in
// pure Go, so the release build needs no cgo).
//
// It recognises the layouts people use: golang-migrate
// (NNN_name.up.sql / .down.sql), goose (-- +goose Up / Down), Flyway
// (V1__name.sql, R__name.sql), dbmate (-- migrate:up / down) and a plain
// directory of ordered .sql files. Pipeline sources report what it finds;
// core's gates judge it.
package migrations

import (
	"cmp"
	"math/big"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/ripcordhq/ripcord/core"
)

// File is one file of the migrations directory: its path in the
// repository and its contents.
type File struct {
	Path string
	Data []byte
}

// Layout names, as reported on each migration.
const (
	LayoutGolangMigrate = "golang-migrate"
	LayoutGoose         = "goose"
	LayoutFlyway        = "flyway"
	LayoutDbmate        = "dbmate"
	LayoutPlain         = "plain"
)

var (
	golangMigrateName = regexp.MustCompile(`^(\d+)_(.+)\.(up|down)\.sql$`)
	flywayVersioned   = regexp.MustCompile(`^V(\d+(?:[._]\d+)*)__(.+)\.sql$`)
	flywayRepeatable  = regexp.MustCompile(`^R__(.+)\.sql$`)
	flywayUndo        = regexp.MustCompile(`^U\d+(?:[._]\d+)*__.+\.sql$`)
	leadingNumber     = regexp.MustCompile(`^(\d+)`)
	gooseUp           = regexp.MustCompile(`(?mi)^\s*--\s*\+goose\s+up\b.*$`)
	gooseDown         = regexp.MustCompile(`(?mi)^\s*--\s*\+goose\s+down\b.*$`)
	dbmateUp          = regexp.MustCompile(`(?mi)^\s*--\s*migrate:up\b.*$`)
	dbmateDown        = regexp.MustCompile(`(?mi)^\s*--\s*migrate:down\b.*$`)
)

// source is one migration found in the directory: the SQL that applies
// it (its "up" part) and where that SQL starts in the file.
type source struct {
	id, file, layout string
	version          []string // version parts, compared as numbers
	name             string   // tie-break after the version
	repeatable       bool
	sql              string
	firstLine        int // line of sql's first line in the file
}

// Read classes every migration among files (the migrations directory's
// files, any order) and returns them in the order their tool applies them.
// Files that apply nothing (down and undo files, non-SQL files) are left
// out.
func Read(files []File) []core.Migration {
	var srcs []source
	for _, f := range files {
		if s, ok := recognise(f); ok {
			srcs = append(srcs, s)
		}
	}
	slices.SortFunc(srcs, func(a, b source) int {
		if a.repeatable != b.repeatable { // Flyway runs repeatables last
			if a.repeatable {
				return 1
			}
			return -1
		}
		for i := 0; i < len(a.version) && i < len(b.version); i++ {
			if c := compareVersionPart(a.version[i], b.version[i]); c != 0 {
				return c
			}
		}
		return cmp.Or(cmp.Compare(len(a.version), len(b.version)), strings.Compare(a.name, b.name))
	})
	out := make([]core.Migration, 0, len(srcs))
	for _, s := range srcs {
		m := Classify(s.sql, s.firstLine)
		m.ID, m.File, m.Layout = s.id, s.file, s.layout
		out = append(out, m)
	}
	return out
}

func recognise(f File) (source, bool) {
	name := path.Base(f.Path)
	text := string(f.Data)
	if !strings.HasSuffix(name, ".sql") {
		return source{}, false
	}
	if m := golangMigrateName.FindStringSubmatch(name); m != nil {
		if m[3] == "down" {
			return source{}, false
		}
		return source{id: m[1] + "_" + m[2], file: f.Path, layout: LayoutGolangMigrate, version: []string{m[1]}, name: m[2], sql: text, firstLine: 1}, true
	}
	if m := flywayVersioned.FindStringSubmatch(name); m != nil {
		parts := strings.FieldsFunc(m[1], func(r rune) bool { return r == '.' || r == '_' })
		return source{id: strings.TrimSuffix(name, ".sql"), file: f.Path, layout: LayoutFlyway, version: parts, name: m[2], sql: text, firstLine: 1}, true
	}
	if m := flywayRepeatable.FindStringSubmatch(name); m != nil {
		return source{id: strings.TrimSuffix(name, ".sql"), file: f.Path, layout: LayoutFlyway, name: m[1], repeatable: true, sql: text, firstLine: 1}, true
	}
	if flywayUndo.MatchString(name) {
		return source{}, false
	}
	id := strings.TrimSuffix(name, ".sql")
	var version []string
	if n := leadingNumber.FindString(id); n != "" {
		version = []string{n}
	}
	if loc := gooseUp.FindStringIndex(text); loc != nil {
		return section(source{id: id, file: f.Path, layout: LayoutGoose, version: version, name: id}, text, loc, gooseDown), true
	}
	if loc := dbmateUp.FindStringIndex(text); loc != nil {
		return section(source{id: id, file: f.Path, layout: LayoutDbmate, version: version, name: id}, text, loc, dbmateDown), true
	}
	return source{id: id, file: f.Path, layout: LayoutPlain, version: version, name: id, sql: text, firstLine: 1}, true
}

// section keeps the "up" part of a file with both directions: from the
// end of the up marker's line to the down marker (or the end).
func section(s source, text string, up []int, down *regexp.Regexp) source {
	start := up[1]
	end := len(text)
	if loc := down.FindStringIndex(text[start:]); loc != nil {
		end = start + loc[0]
	}
	s.sql = text[start:end]
	s.firstLine = strings.Count(text[:start], "\n") + 1
	return s
}

// compareVersionPart orders numeric parts as numbers (so 10 comes after
// 9, whatever the padding) and anything else as text.
func compareVersionPart(a, b string) int {
	x, okA := new(big.Int).SetString(a, 10)
	y, okB := new(big.Int).SetString(b, 10)
	switch {
	case okA && okB:
		return x.Cmp(y)
	case okA:
		return -1
	case okB:
		return 1
	}
	return strings.Compare(a, b)
}
