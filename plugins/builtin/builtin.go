// Package builtin is the registry of providers compiled into the ripcord
// binary. The host starts each as its own process by re-executing the
// binary (`ripcord plugin serve NAME`), so built-ins get the same isolation
// as third-party plugins.
package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/borg"
	"github.com/ripcordhq/ripcord/plugins/dir"
	"github.com/ripcordhq/ripcord/plugins/pgbackrest"
	"github.com/ripcordhq/ripcord/plugins/restic"
	"github.com/ripcordhq/ripcord/plugins/sdk"
)

// Registry maps each built-in provider served as a plugin to its config.
func Registry(version string) map[string]func() sdk.ServeConfig {
	return map[string]func() sdk.ServeConfig{
		// dir watches files an external job writes: it cannot run one.
		"dir":    func() sdk.ServeConfig { return backup("dir", version, false, dirSettings{}, buildDir) },
		"restic": func() sdk.ServeConfig { return backup("restic", version, true, resticSettings{}, buildRestic) },
		"borg":   func() sdk.ServeConfig { return backup("borg", version, true, borgSettings{}, buildBorg) },
		"pgbackrest": func() sdk.ServeConfig {
			return backup("pgbackrest", version, true, pgbackrestSettings{}, buildPgbackrest)
		},
		"local": func() sdk.ServeConfig { return localConfig(version) },
		"ssh":   func() sdk.ServeConfig { return sshConfig(version) },
		"exec":  func() sdk.ServeConfig { return execConfig(version) },
		"github-actions": func() sdk.ServeConfig {
			return ciConfig("github-actions", version, githubActionsSettings{}, buildGitHubActions)
		},
		"gitlab-ci": func() sdk.ServeConfig {
			return ciConfig("gitlab-ci", version, gitlabCISettings{}, buildGitLabCI)
		},
		"sentry-ingest": func() sdk.ServeConfig { return sentryIngestConfig(version) },
		"sentry":        func() sdk.ServeConfig { return sentryAPIConfig(version) },
	}
}

// Names lists the registry's providers, sorted.
func Names() []string {
	var names []string
	for n := range Registry("") {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Settings of the backup providers, as written in ripcord.yaml. `set` is
// the backup's name, which the console fills in from the backup entry.
type dirSettings struct {
	Set         string  `json:"set"`
	Path        string  `json:"path" required:"true"`
	MinFraction float64 `json:"min_fraction"`
	Poll        string  `json:"poll" format:"duration"`
}

type resticSettings struct {
	Set        string   `json:"set"`
	Repository string   `json:"repository" required:"true"`
	Password   string   `json:"password" required:"true"`
	Host       string   `json:"host"`
	Paths      []string `json:"paths"`
	Tags       []string `json:"tags"`
	Backup     []string `json:"backup"`
	Binary     string   `json:"binary"`
	Poll       string   `json:"poll" format:"duration"`
}

type borgSettings struct {
	Set                      string   `json:"set"`
	Repository               string   `json:"repository" required:"true"`
	Passphrase               string   `json:"passphrase"`
	Glob                     string   `json:"glob"`
	Backup                   []string `json:"backup"`
	ArchivePrefix            string   `json:"archive_prefix"`
	AcceptUnknownUnencrypted bool     `json:"accept_unknown_unencrypted"`
	AcceptRelocated          bool     `json:"accept_relocated"`
	Binary                   string   `json:"binary"`
	Poll                     string   `json:"poll" format:"duration"`
}

type pgbackrestSettings struct {
	Set        string   `json:"set"`
	Stanza     string   `json:"stanza" required:"true"`
	Config     string   `json:"config"`
	CipherPass string   `json:"cipher_pass"`
	Wrapper    []string `json:"wrapper"`
	BackupType string   `json:"backup_type"`
	Binary     string   `json:"binary"`
	Poll       string   `json:"poll" format:"duration"`
}

func buildDir(s dirSettings, poll time.Duration) (core.BackupSource, error) {
	return dir.New(dir.Config{Set: s.Set, Glob: s.Path, MinFraction: s.MinFraction, Poll: poll})
}

func buildRestic(s resticSettings, poll time.Duration) (core.BackupSource, error) {
	return restic.New(restic.Config{Set: s.Set, Repository: s.Repository, Password: s.Password, Host: s.Host,
		Paths: s.Paths, Tags: s.Tags, Backup: s.Backup, Binary: s.Binary, PollInterval: poll})
}

func buildBorg(s borgSettings, poll time.Duration) (core.BackupSource, error) {
	return borg.New(borg.Config{Set: s.Set, Repository: s.Repository, Passphrase: s.Passphrase, Glob: s.Glob,
		Backup: s.Backup, ArchivePrefix: s.ArchivePrefix, AcceptUnknownUnencrypted: s.AcceptUnknownUnencrypted,
		AcceptRelocated: s.AcceptRelocated, Binary: s.Binary, PollInterval: poll})
}

func buildPgbackrest(s pgbackrestSettings, poll time.Duration) (core.BackupSource, error) {
	return pgbackrest.New(pgbackrest.Config{Set: s.Set, Stanza: s.Stanza, ConfigPath: s.Config, CipherPass: s.CipherPass,
		Wrapper: s.Wrapper, BackupType: s.BackupType, Binary: s.Binary, PollInterval: poll})
}

// backupServer adapts a core.BackupSource built from settings to the SDK.
type backupServer[S any] struct {
	name  string
	build func(S, time.Duration) (core.BackupSource, error)

	mu  sync.Mutex
	src core.BackupSource
	set string
}

// runnableBackup is a backup source that can also take a backup now.
type runnableBackup[S any] struct{ *backupServer[S] }

func backup[S any](name, version string, canRun bool, zero S, build func(S, time.Duration) (core.BackupSource, error)) sdk.ServeConfig {
	b := &backupServer[S]{name: name, build: build}
	cfg := sdk.ServeConfig{
		Info:     sdk.Info{Name: name, Version: version, ConfigSchema: schemaFor(zero)},
		Provider: b,
		Backup:   b,
	}
	if canRun {
		cfg.Backup = runnableBackup[S]{b}
	}
	return cfg
}

// Configure decodes the settings strictly; each problem names its path.
func (b *backupServer[S]) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	var s S
	dec := json.NewDecoder(bytes.NewReader(req.Settings))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return settingError(err)
	}
	if errs := missing(s); len(errs) > 0 {
		return errs
	}
	poll := time.Duration(0)
	if p := reflect.ValueOf(s).FieldByName("Poll").String(); p != "" {
		d, err := parseDuration(p)
		if err != nil {
			return sdk.SettingErrors{{Path: "poll", Message: fmt.Sprintf("expected a duration like 1m, got %q", p)}}
		}
		poll = d
	}
	set := reflect.ValueOf(s).FieldByName("Set").String()
	if set == "" {
		set = b.name
		reflect.ValueOf(&s).Elem().FieldByName("Set").SetString(set)
	}
	src, err := b.build(s, poll)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.src, b.set = src, set
	b.mu.Unlock()
	return nil
}

// CheckHealth is degraded until the provider has been configured.
func (b *backupServer[S]) CheckHealth(context.Context) error {
	if b.source() == nil {
		return sdk.Degraded("%s: waiting for its settings", b.name)
	}
	return nil
}

func (b *backupServer[S]) source() core.BackupSource {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.src
}

var errNotConfigured = errors.New("not configured yet")

func (b *backupServer[S]) WatchFreshness(ctx context.Context, _ sdk.WatchFreshnessRequest, send func(sdk.BackupFacts) error) error {
	src := b.source()
	if src == nil {
		return fmt.Errorf("%s: %w", b.name, errNotConfigured)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	err := src.WatchFreshness(ctx, func(f core.BackupFacts) {
		if err := send(sdkFacts(f)); err != nil {
			cancel(err)
		}
	})
	if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
		return cause
	}
	return err
}

func (b *backupServer[S]) Verify(ctx context.Context, op *sdk.Op, req sdk.VerifyRequest) (sdk.BackupFacts, error) {
	src := b.source()
	if src == nil {
		return sdk.BackupFacts{}, fmt.Errorf("%s: %w", b.name, errNotConfigured)
	}
	_ = op.Progress(0, "verifying "+req.Set)
	f, err := src.Verify(ctx, req.Set)
	return sdkFacts(f), err
}

func (b runnableBackup[S]) RunBackup(ctx context.Context, op *sdk.Op, req sdk.RunBackupRequest) error {
	src := b.source()
	if src == nil {
		return fmt.Errorf("%s: %w", b.name, errNotConfigured)
	}
	_ = op.Progress(0, "backing up "+req.Set)
	return src.RunNow(ctx, req.Set)
}

// settingError turns a JSON decoding error into one naming the setting.
func settingError(err error) error {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return sdk.SettingErrors{{Path: ute.Field, Message: fmt.Sprintf("expected %s, got %s", ute.Type, ute.Value)}}
	}
	const unknown = "json: unknown field "
	if msg := err.Error(); strings.HasPrefix(msg, unknown) {
		return sdk.SettingErrors{{Path: strings.Trim(strings.TrimPrefix(msg, unknown), `"`), Message: "unknown setting"}}
	}
	return sdk.SettingErrors{{Path: "", Message: err.Error()}}
}

// missing reports required settings left empty.
func missing(s any) sdk.SettingErrors {
	var errs sdk.SettingErrors
	v, t := reflect.ValueOf(s), reflect.TypeOf(s)
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Tag.Get("required") == "true" && v.Field(i).IsZero() {
			errs = append(errs, sdk.SettingError{Path: jsonName(f), Message: "is required"})
		}
	}
	return errs
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}
