package demo

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// ConfigName is the name of the workspace's config file.
const ConfigName = "ripcord.yaml"

// BuildScript is the pipeline's build script, relative to the workspace.
const BuildScript = "scripts/build.sh"

// Backup cadence of the orders database in each environment: fast, so the
// backups panel moves while someone watches.
const (
	ordersBackupEvery = time.Minute
	ordersBackupKeep  = 10
)

// uploadsAge is the age of the only uploads backup: past its warn
// threshold (1.2 × 24h) and short of critical (2 × 24h), so the backups
// gate has a warning to show without blocking promotion.
const uploadsAge = 30 * time.Hour

// WorkspaceOptions configure a demo workspace.
type WorkspaceOptions struct {
	// Self is the absolute path of the ripcord binary the built artifacts
	// launch.
	Self string
}

// World is a demo world written to disk: what the console opens and what
// the jobs beside it need.
type World struct {
	Dir        string
	ConfigPath string
	// Staging and Production are where api runs, with the environment's
	// orders database and its backup job.
	Staging    Env
	Production Env
	// WebStaging and WebProduction are where the storefront web runs: its
	// own ports, the environment's orders database.
	WebStaging    Env
	WebProduction Env
}

// Env is one environment of the demo world.
type Env struct {
	Name string
	// URL is the public address of the environment's proxy; traffic goes
	// here so canary weights apply.
	URL        string
	Port       int
	IngestPort int
	// DataDir holds the environment's orders database, shared by its
	// releases.
	DataDir string
	// BackupDB, BackupDir, BackupEvery and BackupKeep are the arguments of
	// the environment's backup job.
	BackupDB    string
	BackupDir   string
	BackupEvery time.Duration
	BackupKeep  int
}

// Envs lists the environments in promotion order, as api sees them.
func (w World) Envs() []Env { return []Env{w.Staging, w.Production} }

// WebEnvs lists the environments in promotion order, as web sees them.
func (w World) WebEnvs() []Env { return []Env{w.WebStaging, w.WebProduction} }

// Workspace writes a demo world into dir: ripcord.yaml, the build
// script, the schema migrations, data and backup directories and an old
// uploads backup, and makes it a git repository on main with the stable
// release committed. The
// ports in the file were free when it was written, so two demos can run
// side by side. dir must not hold a ripcord.yaml already.
func Workspace(dir string, o WorkspaceOptions) (World, error) {
	if !filepath.IsAbs(o.Self) || strings.ContainsAny(o.Self, "\n\r") {
		return World{}, fmt.Errorf("creating the demo workspace: the ripcord binary must be an absolute path, got %q", o.Self)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return World{}, fmt.Errorf("creating the demo workspace: %w", err)
	}
	w := World{Dir: abs, ConfigPath: filepath.Join(abs, ConfigName)}
	if _, err := os.Stat(w.ConfigPath); err == nil {
		return World{}, fmt.Errorf("creating the demo workspace: %s: %w", w.ConfigPath, fs.ErrExist)
	}
	ports, err := freePorts(8)
	if err != nil {
		return World{}, fmt.Errorf("creating the demo workspace: %w", err)
	}
	w.Staging = newEnv(abs, "staging", ports[0], ports[1])
	w.Production = newEnv(abs, "production", ports[2], ports[3])
	w.WebStaging = newEnv(abs, "staging", ports[4], ports[5])
	w.WebProduction = newEnv(abs, "production", ports[6], ports[7])
	for _, step := range []func() error{
		func() error { return w.makeDirs() },
		func() error { return writeBuildScript(filepath.Join(abs, BuildScript), o.Self) },
		func() error { return writeUploadsBackup(w.uploadsBackup(), time.Now().Add(-uploadsAge)) },
		func() error { return w.writeConfig() },
		func() error { return w.initRepo() },
	} {
		if err := step(); err != nil {
			return World{}, fmt.Errorf("creating the demo workspace in %s: %w", abs, err)
		}
	}
	return w, nil
}

func newEnv(root, name string, port, ingestPort int) Env {
	data := filepath.Join(root, "data", name)
	return Env{
		Name: name, URL: fmt.Sprintf("http://127.0.0.1:%d", port), Port: port, IngestPort: ingestPort,
		DataDir: data, BackupDB: filepath.Join(data, OrdersFile),
		BackupDir:   filepath.Join(root, "backups", name, "orders"),
		BackupEvery: ordersBackupEvery, BackupKeep: ordersBackupKeep,
	}
}

func (w World) uploadsBackup() string {
	return filepath.Join(w.Dir, "backups", "uploads", "uploads-"+time.Now().Add(-uploadsAge).UTC().Format("20060102")+".tar")
}

func (w World) makeDirs() error {
	for _, d := range []string{
		w.Staging.DataDir, w.Staging.BackupDir, w.Production.DataDir, w.Production.BackupDir,
		filepath.Join(w.Dir, "backups", "uploads"), filepath.Join(w.Dir, "scripts"),
	} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	return nil
}

// freePorts asks the kernel for n distinct free ports on 127.0.0.1. All
// are held open until every one is picked, so none is handed out twice.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// writeUploadsBackup writes a small real tar archive dated at mtime.
func writeUploadsBackup(path string, mtime time.Time) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := []byte("customer uploads of the shop demo\n")
	hdr := &tar.Header{Name: "uploads/README.txt", Mode: 0o644, Size: int64(len(body)), ModTime: mtime}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing the uploads backup: %w", err)
	}
	if _, err := tw.Write(body); err != nil {
		return fmt.Errorf("writing the uploads backup: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing the uploads backup: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing the uploads backup: %w", err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		return fmt.Errorf("dating the uploads backup: %w", err)
	}
	return nil
}

// shellQuote makes s one word for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// yamlQuote makes s a double-quoted YAML scalar that Ripcord reads back
// as written: JSON strings are valid YAML, and "${" is doubled so a path
// is never taken for an environment reference.
func yamlQuote(s string) string {
	b, _ := json.Marshal(s) // marshaling a string cannot fail
	return strings.ReplaceAll(string(b), "${", "$${")
}

// writeBuildScript writes the pipeline's build script, with the ripcord
// binary's path baked in.
func writeBuildScript(path, self string) error {
	var buf bytes.Buffer
	if err := buildScriptTemplate.Execute(&buf, map[string]string{"Self": shellQuote(self)}); err != nil {
		return fmt.Errorf("rendering %s: %w", BuildScript, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", BuildScript, err)
	}
	return nil
}

func (w World) writeConfig() error {
	var buf bytes.Buffer
	data := map[string]any{
		"Root": w.Dir, "Staging": w.Staging, "Production": w.Production, "WebStaging": w.WebStaging, "WebProduction": w.WebProduction,
		"Generated": time.Now().UTC().Format(time.RFC3339),
		"Uploads":   filepath.ToSlash(mustRel(w.Dir, filepath.Join(filepath.Dir(w.uploadsBackup()), "*.tar"))),
	}
	if err := configTemplate.Execute(&buf, data); err != nil {
		return fmt.Errorf("rendering %s: %w", ConfigName, err)
	}
	if err := os.WriteFile(w.ConfigPath, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", ConfigName, err)
	}
	return nil
}

// mustRel is target relative to base; both are built from the same
// absolute root, so Rel cannot fail.
func mustRel(base, target string) string {
	rel, err := filepath.Rel(base, target)
	if err != nil {
		panic(errors.New("demo workspace paths do not share a root"))
	}
	return rel
}

var templateFuncs = template.FuncMap{
	"q": yamlQuote,
	"rel": func(root, p string) string {
		return filepath.ToSlash(mustRel(root, p))
	},
	"dur":     durationText,
	"envArgs": envArgs,
}

var buildScriptTemplate = template.Must(template.New("build").Parse(buildScriptText))

var configTemplate = template.Must(template.Must(template.Must(
	template.New("config").Funcs(templateFuncs).Parse(configText)).
	Parse(targetText)).
	Parse(ordersText))

// envArgs is what the target and orders blocks of the config see for one
// service in one environment. api keeps the directory and key names it
// had when it was the demo's only service.
func envArgs(root, service string, e Env) map[string]any {
	dir, keyVar, key := e.Name, "SHOP_"+strings.ToUpper(e.Name)+"_SENTRY_KEY", "shop-"+e.Name+"-key"
	if service != "api" {
		dir = service + "-" + e.Name
		keyVar = "SHOP_" + strings.ToUpper(service) + "_" + strings.ToUpper(e.Name) + "_SENTRY_KEY"
		key = "shop-" + service + "-" + e.Name + "-key"
	}
	return map[string]any{"Root": root, "Env": e, "Dir": dir, "KeyVar": keyVar, "Key": key}
}

// durationText writes d the way ripcord.yaml does: 1m, 24h, 1h30m.
func durationText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
