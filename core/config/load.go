package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/ripcordhq/ripcord/core"
)

// MaxFileSize is the largest config file Ripcord reads. Real files are a
// few kilobytes; the limit keeps a wrong path (a database, a log) from
// being parsed at length.
const MaxFileSize = 1 << 20

// maxFlowDepth bounds [ ] and { } nesting before parsing: the YAML parser's
// time grows with the square of that depth.
const maxFlowDepth = 100

// Provider kinds: where a provider may be used.
const (
	KindTarget   = "target"
	KindPipeline = "pipeline"
	KindErrors   = "errors"
	KindBackup   = "backup"
)

// BuiltinProviders are the providers that ship with Ripcord, by kind.
var BuiltinProviders = map[string]string{
	"local":          KindTarget,
	"ssh":            KindTarget,
	"exec":           KindPipeline,
	"github-actions": KindPipeline,
	"gitlab-ci":      KindPipeline,
	"sentry-ingest":  KindErrors,
	"sentry":         KindErrors,
	"dir":            KindBackup,
	"restic":         KindBackup,
	"borg":           KindBackup,
	"pgbackrest":     KindBackup,
}

// Options tune loading.
type Options struct {
	// Providers maps each known provider name to its kind (KindTarget,
	// KindPipeline, KindErrors, KindBackup). Plugins listed in the file
	// count as providers of any kind. A nil map skips provider checks, for
	// tools that read a file without knowing which providers exist.
	Providers map[string]string
	// LookupEnv resolves ${NAME} references; default os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Load reads and checks the config file at path.
func Load(path string, opts Options) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening config: %w", err)
	}
	defer fh.Close()
	if st, err := fh.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxFileSize {
		return nil, tooLarge(path, st.Size())
	}
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, tooLarge(path, -1)
	}
	return Parse(path, data, opts)
}

func tooLarge(name string, size int64) error {
	msg := fmt.Sprintf("file is larger than 1 MiB (%d bytes); is this the right file?", size)
	if size < 0 {
		msg = "file is larger than 1 MiB; is this the right file?"
	}
	return &Error{Pos: Pos{File: name, Line: 1, Col: 1}, Msg: msg}
}

// Parse checks config data read from name (used in messages and to
// resolve relative paths).
func Parse(name string, data []byte, opts Options) (*File, error) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if len(data) > MaxFileSize {
		return nil, tooLarge(name, int64(len(data)))
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if err := checkInput(name, data); err != nil {
		return nil, err
	}
	body, err := parseYAML(name, data)
	if err != nil {
		return nil, err
	}

	f := &File{Path: name, Dir: fileDir(name)}
	errs := &errorSet{file: name}
	x := newExpander(opts.LookupEnv)
	d := newDecoder(name, errs, x)
	d.collectAnchors(body, 0)
	d.decodeStruct(body, reflect.ValueOf(f).Elem(), "")
	secrets := x.secretList()
	redact := func(s string) string { return redactWith(secrets, s) }
	if errs.empty() {
		applyDefaults(f, d)
		validate(f, d, opts, errs)
	}
	if errs.empty() {
		resolvePaths(f, d, opts, errs)
	}
	if errs.empty() {
		// After the paths: the bastion's checks read the files it names.
		(&validator{f: f, d: d, opts: opts, errs: errs}).bastion()
	}
	if err := errs.err(redact); err != nil {
		return nil, err
	}
	f.secrets = secrets
	for _, p := range f.providers() {
		p.secrets = secrets
	}
	return f, nil
}

func fileDir(name string) string {
	dir := filepath.Dir(name)
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// checkInput refuses, before parsing, input the parser would report
// poorly: nothing at all, bytes that are not UTF-8, tabs used to indent,
// and brackets nested deep enough to make parsing slow.
func checkInput(name string, data []byte) error {
	at := func(line, col int, format string, args ...any) error {
		return &Error{Pos: Pos{File: name, Line: line, Col: col}, Msg: fmt.Sprintf(format, args...)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return at(1, 1, "file is empty; expected a mapping with project, services and environments")
	}
	if !utf8.Valid(data) {
		line, col := 1, 1
		for i := 0; i < len(data); {
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				return at(line, col, "invalid UTF-8 (byte 0x%02x); save the file as UTF-8", data[i])
			}
			if r == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
			i += size
		}
	}
	if line, col, ok := findIndentTab(data); ok {
		return at(line, col, "tab used for indentation; YAML indents with spaces only, so replace the tab with spaces")
	}
	if line, col, ok := findDeepFlow(data); ok {
		return at(line, col, "[ ] and { } nested more than %d deep", maxFlowDepth)
	}
	return nil
}

var blockScalarStart = regexp.MustCompile(`(^|[\s:-])[|>][-+0-9]*$`)

// findIndentTab finds a tab in a line's indentation, leaving alone the
// content of block scalars (run: |), where a tab is just text.
func findIndentTab(data []byte) (line, col int, found bool) {
	blockIndent := -1
	for i, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSuffix(l, "\r")
		trimmed := strings.TrimLeft(l, " \t")
		spaces := len(l) - len(strings.TrimLeft(l, " "))
		if blockIndent >= 0 {
			if trimmed == "" || spaces > blockIndent {
				continue
			}
			blockIndent = -1
		}
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if lead := l[:len(l)-len(trimmed)]; strings.Contains(lead, "\t") {
			return i + 1, strings.IndexByte(lead, '\t') + 1, true
		}
		content := trimmed
		if j := strings.Index(content, " #"); j >= 0 {
			content = content[:j]
		}
		if blockScalarStart.MatchString(strings.TrimRight(content, " \t")) {
			// Content must be indented past the key that opened the
			// block; "- " entries move the key to the right.
			indent := spaces
			for strings.HasPrefix(trimmed, "- ") {
				rest := strings.TrimLeft(trimmed[2:], " ")
				indent += len(trimmed) - len(rest)
				trimmed = rest
			}
			blockIndent = indent
		}
	}
	return 0, 0, false
}

// findDeepFlow finds the first [ or { that opens more than maxFlowDepth
// levels. It skips comments and quoted strings roughly; it only has to be
// right about files nested absurdly deep.
func findDeepFlow(data []byte) (line, col int, found bool) {
	depth := 0
	line, col = 1, 0
	var quote rune
	prev := rune('\n')
	inComment := false
	for _, r := range string(data) {
		col++
		if r == '\n' {
			line, col = line+1, 0
			inComment = false
			prev = r
			continue
		}
		switch {
		case inComment:
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '#' && (prev == ' ' || prev == '\t' || prev == '\n'):
			inComment = true
		case (r == '"' || r == '\'') && strings.ContainsRune(" \t\n:[{,-", prev):
			quote = r
		case r == '[' || r == '{':
			depth++
			if depth > maxFlowDepth {
				return line, col, true
			}
		case r == ']' || r == '}':
			if depth > 0 {
				depth--
			}
		}
		prev = r
	}
	return 0, 0, false
}

var parserPos = regexp.MustCompile(`(?:at )?\[(\d+):(\d+)\]`)

// parseYAML parses data to a syntax tree and returns the single document's
// body. A panic in the parser becomes an error: no input may crash the
// console.
func parseYAML(name string, data []byte) (body ast.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			body, err = nil, &Error{Pos: Pos{File: name, Line: 1, Col: 1}, Msg: "the YAML parser failed on this file; check its syntax"}
		}
	}()
	file, perr := parser.ParseBytes(data, 0)
	if perr != nil {
		var syn *yaml.SyntaxError
		if errors.As(perr, &syn) {
			p := Pos{File: name, Line: 1, Col: 1}
			if syn.Token != nil && syn.Token.Position != nil {
				p.Line, p.Col = syn.Token.Position.Line, syn.Token.Position.Column
			}
			msg := parserPos.ReplaceAllString(syn.Message, "at line $1, column $2")
			return nil, &Error{Pos: p, Msg: "invalid YAML: " + msg}
		}
		first, _, _ := strings.Cut(perr.Error(), "\n")
		return nil, &Error{Pos: Pos{File: name, Line: 1, Col: 1}, Msg: "invalid YAML: " + first}
	}
	var docs []*ast.DocumentNode
	for _, doc := range file.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		return nil, &Error{Pos: Pos{File: name, Line: 1, Col: 1}, Msg: "file is empty; expected a mapping with project, services and environments"}
	}
	d := newDecoder(name, &errorSet{file: name}, nil)
	if len(docs) > 1 {
		return nil, &Error{Pos: d.nodePos(docs[1].Body), Msg: "only one YAML document is allowed; remove the second ---"}
	}
	body = docs[0].Body
	if _, ok := body.(*ast.MappingValueNode); ok {
		body = ast.Mapping(body.GetToken(), false, body.(*ast.MappingValueNode))
	}
	if _, ok := body.(*ast.MappingNode); !ok {
		return nil, &Error{Pos: d.nodePos(body), Msg: "expected a mapping with project, services and environments at top level, got " + describe(body)}
	}
	return body, nil
}

// applyDefaults fills what the file left out. Numbers written as zero are
// kept so validation can reject them rather than quietly replace them.
func applyDefaults(f *File, d *decoder) {
	isSet := func(path string) bool { _, ok := d.set[path]; return ok }
	t := true
	if f.Store.Driver == "" {
		f.Store.Driver = "sqlite"
	}
	if f.Store.Driver == "sqlite" && f.Store.Path == "" {
		f.Store.Path = filepath.Join(".ripcord", "state.db")
	}
	def := core.DefaultDeadlines()
	for _, d := range []struct {
		key string
		v   *Duration
		def time.Duration
	}{{"deploy", &f.Deadlines.Deploy, def.Deploy}, {"rollback", &f.Deadlines.Rollback, def.Rollback}, {"health", &f.Deadlines.Health, def.Health},
		{"status", &f.Deadlines.Status, def.Status}, {"backup", &f.Deadlines.Backup, def.Backup}, {"stall", &f.Deadlines.Stall, def.Stall}} {
		if !isSet("deadlines." + d.key) {
			*d.v = Duration(d.def)
		}
	}
	bastionDefaults(f, d)
	if f.Notify.Bell == nil {
		f.Notify.Bell = &t
	}
	if f.Notify.Desktop == nil {
		f.Notify.Desktop = &t
	}
	for i := range f.Services {
		if len(f.Services[i].Branches) == 0 {
			f.Services[i].Branches = []string{"main"}
		}
	}
	for i := range f.Environments {
		e := &f.Environments[i]
		p := fmt.Sprintf("environments[%d]", i)
		if e.Confirm == "" {
			e.Confirm = "y"
			if e.Production {
				e.Confirm = "type-name"
			}
		}
		if !isSet(p + ".spike.alpha") {
			e.Spike.Alpha = 0.01
		}
		if !isSet(p + ".spike.min_events") {
			e.Spike.MinEvents = 5
		}
		if !isSet(p + ".spike.tolerance") {
			e.Spike.Tolerance = 1.5
		}
		if e.Spike.OnInconclusive == "" {
			e.Spike.OnInconclusive = "wait"
		}
		if !isSet(p + ".spike.window") {
			e.Spike.Window = Duration(30 * time.Minute)
		}
		if e.Rollback.Auto == "" {
			e.Rollback.Auto = "off"
		}
		if e.Rollback.Action == "" {
			e.Rollback.Action = "rollback"
		}
		placeServices(f, i)
		blocks := append([]Placement{{Path: p, Backups: e.SharedBackups()}}, e.Services...)
		for k := range blocks {
			pl := &blocks[k]
			for j := range pl.Backups {
				b := &pl.Backups[j]
				bp := fmt.Sprintf("%s.backups[%d]", pl.Path, j)
				if !isSet(bp + ".every") {
					b.Every = Duration(24 * time.Hour)
				}
				if !isSet(bp + ".warn") {
					b.Warn = 1.5
				}
				if !isSet(bp + ".critical") {
					b.Critical = 2
				}
			}
		}
	}
}

// placeServices gives environment i its placements: the blocks written
// under services, or, for a project with one service, the
// environment-level target, errors and backups as that service's block.
// The backups are shared, not copied, so defaults and positions apply to
// what the file says.
func placeServices(f *File, i int) {
	e := &f.Environments[i]
	p := fmt.Sprintf("environments[%d]", i)
	for k := range e.Services {
		e.Services[k].Path = fmt.Sprintf("%s.services[%d]", p, k)
	}
	if len(e.Services) > 0 || len(f.Services) != 1 {
		e.shared = true
		return
	}
	e.Services = []Placement{{Name: f.Services[0].Name, Target: e.Target, Errors: e.Errors, Backups: e.Backups, Pos: e.Pos, Path: p}}
}

// resolvePaths makes Ripcord's own paths absolute: ~/ is the home
// directory and relative paths start at the config file's directory.
// Provider settings are the provider's business and are left as written.
func resolvePaths(f *File, d *decoder, opts Options, errs *errorSet) {
	resolve := func(p *string, path string) {
		if *p == "" || filepath.IsAbs(*p) {
			return
		}
		if *p == "~" || strings.HasPrefix(*p, "~/") {
			home, ok := opts.LookupEnv("HOME")
			if !ok || home == "" {
				var err error
				if home, err = os.UserHomeDir(); err != nil {
					errs.add(d.set[path], "%s: cannot expand ~: the home directory is unknown", path)
					return
				}
			}
			*p = filepath.Join(home, strings.TrimPrefix(strings.TrimPrefix(*p, "~"), "/"))
			return
		}
		*p = filepath.Join(f.Dir, *p)
	}
	if f.Store.Driver == "sqlite" {
		resolve(&f.Store.Path, "store.path")
	}
	for i := range f.Services {
		if m := f.Services[i].Migrations; m != nil {
			resolve(&m.Dir, fmt.Sprintf("services[%d].migrations.dir", i))
		}
	}
	for i := range f.Plugins {
		resolve(&f.Plugins[i].Path, fmt.Sprintf("plugins[%d].path", i))
	}
	if b := f.Bastion; b != nil {
		if b.HostKey == "" && f.Store.Path != "" {
			b.HostKey = filepath.Join(filepath.Dir(f.Store.Path), BastionHostKeyName)
		}
		resolve(&b.HostKey, "bastion.host_key")
		for i := range b.Operators {
			resolve(&b.Operators[i].AuthorizedKeys, fmt.Sprintf("bastion.operators[%d].authorized_keys", i))
		}
	}
}

// providers lists every provider the file names.
func (f *File) providers() []*Provider {
	var out []*Provider
	for i := range f.Services {
		if p := f.Services[i].Pipeline; p != nil {
			out = append(out, p)
		}
	}
	for i := range f.Environments {
		shared := f.Environments[i].SharedBackups()
		for j := range shared {
			out = append(out, &shared[j].Provider)
		}
		for k := range f.Environments[i].Services {
			pl := &f.Environments[i].Services[k]
			if pl.Target != nil {
				out = append(out, pl.Target)
			}
			if pl.Errors != nil {
				out = append(out, pl.Errors)
			}
			for j := range pl.Backups {
				out = append(out, &pl.Backups[j].Provider)
			}
		}
	}
	return out
}

// Secrets returns the values ${ENV} references expanded to, longest first,
// so that output can be redacted before anyone sees it.
func (f *File) Secrets() []string {
	return append([]string(nil), f.secrets...)
}

// Redact replaces every expanded ${ENV} value in s with [redacted].
func (f *File) Redact(s string) string {
	return redactWith(f.secrets, s)
}

// Format prints the file as fmt would, with expanded secrets redacted, so
// %v and %+v are safe to log.
func (f File) Format(s fmt.State, verb rune) {
	type plain File
	p := plain(f)
	p.secrets = nil
	_, _ = io.WriteString(s, redactWith(f.secrets, fmt.Sprintf(fmt.FormatString(s, verb), p)))
}

// String is the redacted %v form.
func (f File) String() string { return fmt.Sprintf("%v", f) }

// Format prints the provider with expanded secrets redacted.
func (p Provider) Format(s fmt.State, verb rune) {
	type plain Provider
	q := plain(p)
	q.secrets = nil
	_, _ = io.WriteString(s, redactWith(p.secrets, fmt.Sprintf(fmt.FormatString(s, verb), q)))
}
