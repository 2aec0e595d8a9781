package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/remote"
	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/server"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// currentActor names the person at this terminal: the OS user and host.
// RIPCORD_ACTOR names the person where a shared account is used; the
// account is then kept beside the name ("ana via deploy@bastion"). Through
// the server only the account is taken on trust: the server asks the
// kernel, and the name is what the person says.
func currentActor() core.Actor {
	a := core.Actor{}
	if u, err := user.Current(); err == nil {
		a.Name = u.Username
	}
	if named := os.Getenv("RIPCORD_ACTOR"); named != "" && named != a.Name {
		a.Name, a.Via = named, a.Name
	}
	if a.Name == "" {
		a.Name = "unknown"
	}
	a.Host, _ = os.Hostname()
	return a
}

// stateReader is what status, history and audit read: the server's
// answers when one runs (its account may read the store where the caller
// may not), else the store itself. None starts a server or creates state.
type stateReader interface {
	Status(ctx context.Context) (server.Status, error)
	Deployments(ctx context.Context, ref core.Ref, limit int) ([]core.Deployment, error)
	// Audit reads a page of the audit log (see auditReader).
	Audit(ctx context.Context, after int64, limit int) ([]core.AuditEntry, error)
}

// storeReader reads the store of a project whose server is not running.
type storeReader struct {
	f  *config.File
	st core.Store
}

func (r storeReader) Status(ctx context.Context) (server.Status, error) {
	var services, envs []string
	for _, s := range r.f.Services {
		services = append(services, s.Name)
	}
	for _, e := range r.f.Environments {
		envs = append(envs, e.Name)
	}
	return server.ReadStatus(ctx, r.st, r.f.Project, services, envs, time.Now())
}

func (r storeReader) Deployments(ctx context.Context, ref core.Ref, limit int) ([]core.Deployment, error) {
	return r.st.Deployments(ctx, ref, limit)
}

func (r storeReader) Audit(ctx context.Context, after int64, limit int) ([]core.AuditEntry, error) {
	return r.st.Audit(ctx, after, limit)
}

// serverReader asks the running server.
type serverReader struct{ c *connection }

func (r serverReader) Status(ctx context.Context) (server.Status, error) {
	var st server.Status
	b, err := r.c.Status(ctx)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("reading the server's status: %w", err)
	}
	return st, nil
}

func (r serverReader) Deployments(ctx context.Context, ref core.Ref, limit int) ([]core.Deployment, error) {
	return r.c.Deployments(ctx, ref, limit)
}

func (r serverReader) Audit(ctx context.Context, after int64, limit int) ([]core.AuditEntry, error) {
	return r.c.Audit(ctx, after, limit)
}

// withReader runs status, history or audit on what to read: the server when one
// answers, else the store, which must exist: a read never creates state.
//
// check, when set, vets the command's arguments against the config first:
// a misspelled name is a usage error whether or not a server or the state
// exists.
func (g *globals) withReader(check func(cmd *cobra.Command, f *config.File, args []string) error, fn func(cmd *cobra.Command, args []string, f *config.File, r stateReader) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		f, err := g.loadConfig()
		if err != nil {
			return &exitError{code: exitFailed, err: err}
		}
		if check != nil {
			if err := check(cmd, f, args); err != nil {
				return err
			}
		}
		c, err := connect(cmd.Context(), f, neverStart)
		if err == nil {
			defer c.Close()
			return fn(cmd, args, f, serverReader{c})
		}
		if !errors.Is(err, remote.ErrNoServer) {
			return err
		}
		_, eng, done, err := g.openState(cmd.Context())
		if err != nil {
			return err
		}
		defer done()
		return fn(cmd, args, f, storeReader{f: f, st: eng.Store()})
	}
}

// openState loads the config, opens its store (which must exist) and
// builds an engine on it, without providers. The audit commands read the
// store this way whether or not a server runs: a check of the log's chain
// and signatures takes no server's word for it.
func (g *globals) openState(ctx context.Context) (*config.File, *core.Engine, func(), error) {
	f, err := g.loadConfig()
	if err != nil {
		return nil, nil, nil, &exitError{code: exitFailed, err: err}
	}
	if f.Store.Driver != "" && f.Store.Driver != "sqlite" {
		return nil, nil, nil, fmt.Errorf("store driver %q is not available in this build", f.Store.Driver)
	}
	st, err := openStore(ctx, f, false)
	if err != nil {
		return nil, nil, nil, err
	}
	var services, envs []string
	for _, s := range f.Services {
		services = append(services, s.Name)
	}
	for _, e := range f.Environments {
		envs = append(envs, e.Name)
	}
	eng := core.NewEngine(core.EngineOptions{Project: f.Project, Services: services, Envs: envs, Store: st})
	return f, eng, func() { st.Close() }, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newAuditCmd(g *globals) *cobra.Command {
	var asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List the audit log, oldest first (who did what, with gates and outcome)",
		Long: `List the audit log, oldest first.

--json prints {"head": {"count", "hash"}, "entries": [...]}: keep the head
somewhere else and "ripcord audit verify --head COUNT:HASH" later proves
nothing was removed from or rewritten in the log up to it.`,
		Args: cobra.NoArgs,
		// `audit verify` always reads the store itself: a check of the
		// chain takes no server's word for it.
		RunE: g.withReader(nil, func(cmd *cobra.Command, _ []string, _ *config.File, r stateReader) error {
			read := auditReader(r.Audit)
			entries, err := auditEntries(cmd.Context(), read, limit)
			if err != nil {
				return err
			}
			if asJSON {
				head := core.AuditHead{Hash: core.GenesisHash}
				if limit > 0 {
					// A partial export still says where the whole log ends.
					all, err := auditHead(cmd.Context(), read)
					if err != nil {
						return err
					}
					head = all
				} else if n := len(entries); n > 0 {
					head = core.AuditHead{Count: entries[n-1].Seq, Hash: entries[n-1].Hash}
				}
				return writeJSON(cmd.OutOrStdout(), struct {
					Head    core.AuditHead `json:"head"`
					Entries []auditJSON    `json:"entries"`
				}{head, auditOut(entries)})
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "SEQ\tTIME\tACTOR\tACTION\tWHERE\tFROM → TO\tOUTCOME\tWHY")
			for _, e := range entries {
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s → %s\t%s\t%s\n", e.Seq, e.At.UTC().Format(time.RFC3339), p(e.Actor.String()), p(e.Action), p(e.Ref.String()), p(dash(e.From)), p(dash(e.To)), p(e.Outcome), p(auditWhy(e)))
			}
			return w.Flush()
		}),
	}
	jsonFlags(cmd, &asJSON)
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many entries (0: all)")
	cmd.AddCommand(newAuditVerifyCmd(g), &cobra.Command{
		Use:   "pubkey",
		Short: "Print the public key the audit log is signed with (keep it elsewhere; audit verify --pubkey checks against it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := g.loadConfig()
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			pub, err := sqlitestore.AuditPublicKey(f.Store.Path)
			if errors.Is(err, fs.ErrNotExist) {
				return &exitError{code: exitFailed, err: fmt.Errorf("no audit key beside %s yet: it is made with the log's first entry", f.Store.Path)}
			}
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ed25519:%s (key id %s)\n", base64.StdEncoding.EncodeToString(pub), core.AuditKeyID(pub))
			return nil
		},
	})
	return cmd
}

// auditReader reads a page of the audit log: entries after a sequence
// number, oldest first, at most limit (a server answers at most 1000).
type auditReader func(ctx context.Context, after int64, limit int) ([]core.AuditEntry, error)

// auditEntries reads the log from its start, page by page: all of it, or
// its first limit entries.
func auditEntries(ctx context.Context, read auditReader, limit int) ([]core.AuditEntry, error) {
	var out []core.AuditEntry
	for after := int64(0); limit <= 0 || len(out) < limit; {
		n := 1000
		if limit > 0 {
			n = min(n, limit-len(out))
		}
		page, err := read(ctx, after, n)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			break
		}
		out = append(out, page...)
		after = page[len(page)-1].Seq
	}
	return out, nil
}

// auditHead reads the whole log's head.
func auditHead(ctx context.Context, read auditReader) (core.AuditHead, error) {
	head := core.AuditHead{Hash: core.GenesisHash}
	for after := int64(0); ; {
		page, err := read(ctx, after, 1000)
		if err != nil {
			return head, err
		}
		if len(page) == 0 {
			return head, nil
		}
		last := page[len(page)-1]
		head, after = core.AuditHead{Count: last.Seq, Hash: last.Hash}, last.Seq
	}
}

// newAuditVerifyCmd checks the log: its hash chain, each entry's
// signature, its index columns, and its head against the head file beside
// the state and any head a person kept (--head).
func newAuditVerifyCmd(g *globals) *cobra.Command {
	var headArg, pubArg string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log: hash chain, signatures, index columns and head; exits 1 naming the first broken entry",
		Args:  cobra.NoArgs,
		RunE: g.withState(func(cmd *cobra.Command, _ []string, f *config.File, eng *core.Engine) error {
			ctx := cmd.Context()
			fail := func(err error) error { return &exitError{code: exitFailed, err: err} }
			keyFile := sqlitestore.AuditKeyPath(f.Store.Path)
			pub, err := sqlitestore.AuditPublicKey(f.Store.Path)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				pub = nil
			case err != nil:
				return fail(err)
			}
			if pubArg != "" {
				given, err := parsePubkey(pubArg)
				if err != nil {
					return &exitError{code: exitUsage, err: err}
				}
				if pub != nil && !given.Equal(pub) {
					return fail(fmt.Errorf("the audit key beside the state (%s, key id %s) is not the one given (key id %s): it was replaced", keyFile, core.AuditKeyID(pub), core.AuditKeyID(given)))
				}
				pub = given
			}
			check := core.NewAuditCheck(pub)
			headFile := sqlitestore.AuditHeadPath(f.Store.Path)
			fileHead, found, err := sqlitestore.ReadAuditHead(f.Store.Path)
			if err != nil {
				return fail(err)
			}
			if found {
				check.Expect(fileHead, "the head file "+headFile)
			}
			if headArg != "" {
				h, err := core.ParseAuditHead(headArg)
				if err != nil {
					return &exitError{code: exitUsage, err: err}
				}
				check.Expect(h, "the head given ("+h.String()+")")
			}
			signed := false
			for after := int64(0); ; {
				page, err := eng.Store().Audit(ctx, after, 1000)
				if err != nil {
					return fail(err)
				}
				if len(page) == 0 {
					break
				}
				for _, e := range page {
					signed = signed || e.Sig != ""
				}
				if signed && pub == nil {
					return fail(fmt.Errorf("the log is signed but its audit key %s is missing: signatures cannot be checked (give the key you kept with --pubkey)", keyFile))
				}
				if err := check.Add(page); err != nil {
					return fail(err)
				}
				after = page[len(page)-1].Seq
			}
			if ic, ok := eng.Store().(interface{ CheckAuditIndex(context.Context) error }); ok {
				if err := ic.CheckAuditIndex(ctx); err != nil {
					return fail(err)
				}
			}
			head, err := check.Finish()
			if err != nil {
				return fail(err)
			}
			if signed && !found {
				return fail(fmt.Errorf("the head file %s is missing, though it is written with every entry of a signed log: it was removed, so removed entries at the end could not be seen", headFile))
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "audit log intact: %d entries\n", head.Count)
			if pub != nil && head.Count > check.Unsigned {
				fmt.Fprintf(out, "signed by audit key %s", core.AuditKeyID(pub))
				if check.Unsigned > 0 {
					fmt.Fprintf(out, " (the first %d entries are from before signing)", check.Unsigned)
				}
				fmt.Fprintln(out)
			}
			if found && fileHead.Count < head.Count {
				fmt.Fprintf(out, "the head file is %d entries behind (a process stopped between an entry and its head)\n", head.Count-fileHead.Count)
			}
			fmt.Fprintf(out, "head %s\n", head)
			return nil
		}),
	}
	cmd.Flags().StringVar(&headArg, "head", "", "a head (COUNT:HASH) kept elsewhere: the log must reach it, unchanged")
	cmd.Flags().StringVar(&pubArg, "pubkey", "", "the audit public key kept elsewhere (as `ripcord audit pubkey` prints it)")
	return cmd
}

// parsePubkey reads a public key as `audit pubkey` prints it
// ("ed25519:BASE64 …") or as bare base64.
func parsePubkey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimPrefix(strings.Fields(s + " ")[0], "ed25519:")
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("--pubkey %q: want the key as `ripcord audit pubkey` prints it", s)
	}
	return ed25519.PublicKey(b), nil
}

// p shows text that came from outside — names, reasons, versions,
// outcomes — with its control characters escaped.
func p(s string) string { return core.Printable(s) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newHistoryCmd(g *globals) *cobra.Command {
	var env string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history SERVICE --env ENV",
		Short: "List a service's deployments in an environment, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: g.withReader(func(cmd *cobra.Command, f *config.File, args []string) error {
			return checkArgs(cmd.Context(), f, nil, cmdArgs{Service: args[0], Env: env})
		}, func(cmd *cobra.Command, args []string, f *config.File, r stateReader) error {
			ref := core.Ref{Service: args[0], Env: env}
			deps, err := r.Deployments(cmd.Context(), ref, 50)
			if err != nil {
				return err
			}
			if asJSON {
				if deps == nil {
					deps = []core.Deployment{}
				}
				return writeJSON(cmd.OutOrStdout(), deps)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VERSION\tSTATE\tWEIGHT\tFROM\tSTARTED\tBY")
			for i, d := range deps {
				fmt.Fprintf(w, "%s\t%s\t%d%%\t%s\t%s\t%s\n", p(d.Version), d.State, d.Weight, p(historyFrom(deps, i)), d.StartedAt.UTC().Format(time.RFC3339), p(d.Actor.String()))
			}
			return w.Flush()
		}),
	}
	cmd.Flags().StringVar(&env, "env", "", "environment (required)")
	_ = cmd.MarkFlagRequired("env")
	jsonFlags(cmd, &asJSON)
	return cmd
}

// newLockCmd builds `lock` and `unlock`: the same engine commands the
// console sends, run by the project's server and audited with the
// person's name.
func newLockCmd(g *globals, kind core.CommandKind) *cobra.Command {
	var env, reason string
	var force bool
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   string(kind) + " SERVICE --env ENV",
		Short: map[core.CommandKind]string{core.CmdLock: "Lock a service's environment against promote and rollback", core.CmdUnlock: "Release a lock (--force breaks someone else's, audited)"}[kind],
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := g.loadConfig()
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			if err := checkArgs(cmd.Context(), f, nil, cmdArgs{Service: args[0], Env: env}); err != nil {
				return err
			}
			c, err := connect(cmd.Context(), f, startOnState)
			if err != nil {
				return opExit(err)
			}
			defer c.Close()
			res, err := c.Do(cmd.Context(), core.Command{Kind: kind, Ref: core.Ref{Service: args[0], Env: env}, Actor: currentActor(), Reason: reason, Force: force, TTL: ttl})
			if err != nil {
				return opExit(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), core.Printable(res.Message))
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment (required)")
	_ = cmd.MarkFlagRequired("env")
	cmd.Flags().StringVar(&reason, "reason", "", "why (shown to whoever meets the lock)")
	cmd.Flags().BoolVar(&force, "force", false, "take over or break a lock someone else holds, or a command's (audited)")
	if kind == core.CmdLock {
		cmd.Flags().DurationVar(&ttl, "ttl", 0, "release the lock by itself after this long (audited); default: held until you unlock it")
	}
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Each service and environment: what runs, locks, unfinished operations",
		Args:  cobra.NoArgs,
		RunE: g.withReader(nil, func(cmd *cobra.Command, _ []string, f *config.File, r stateReader) error {
			out, err := r.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if out.Unfinished == nil {
					out.Unfinished = []core.Operation{}
				}
				if out.Watching == nil {
					out.Watching = []core.Watcher{}
				}
				return writeJSON(cmd.OutOrStdout(), out)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintf(w, "project %s\n", f.Project)
			fmt.Fprintln(w, "SERVICE\tENV\tVERSION\tSTATE\tLOCK")
			for _, es := range out.Envs {
				version, state, lock := "-", "-", "free"
				if d := es.Deployment; d != nil {
					version, state = d.Version, string(d.State)
					if d.Weight < 100 && !d.State.Terminal() {
						version = fmt.Sprintf("%s ▸ %s %d%%", d.From, d.Version, d.Weight)
					}
				}
				if l := es.Lock; l != nil {
					lock = fmt.Sprintf("%s since %s", p(l.Holder.String()), l.Since.UTC().Format("15:04 UTC"))
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", es.Service, es.Env, p(version), state, lock)
				for _, h := range es.Hosts {
					fmt.Fprintf(w, "  host %s\t%s\t%s\t%s\t%s\n", p(h.Name), p(dash(h.Address)), p(dash(h.Release)), p(h.State), p(h.Message))
				}
			}
			for _, es := range out.Envs {
				ref := core.Ref{Service: es.Service, Env: es.Env}
				if line := errorsLine(ref, es.Errors); line != "" {
					fmt.Fprintln(w, p(line))
				}
				for _, r := range es.Errors {
					if r.Warning != "" {
						fmt.Fprintln(w, p(fmt.Sprintf("! errors %s %s: %s", ref, r.Release, r.Warning)))
					}
				}
				if v := es.Verdict; v != nil {
					fmt.Fprintln(w, p(fmt.Sprintf("verdict %s %s: %s vs %s · %d vs %d errors at %.0f%% share · %s", ref,
						strings.ToUpper(string(v.Kind)), v.Candidate, v.Baseline, v.Evidence.CandidateCount, v.Evidence.BaselineCount,
						100*v.Evidence.Share, boundText(*v))))
				}
			}
			if !out.ErrorsAsOf.IsZero() {
				fmt.Fprintf(w, "errors as of %s\n", out.ErrorsAsOf.Local().Format("15:04:05"))
			}
			for _, op := range out.Unfinished {
				fmt.Fprintf(w, "! unfinished %s of %s (%s → %s) by %s, %s\n", op.Kind, op.Ref, p(dash(op.From)), p(dash(op.To)), p(op.Actor.String()), strings.ToLower(string(op.State)))
			}
			for _, wt := range out.Watching {
				fmt.Fprintf(w, "watching: %s since %s\n", p(wt.Actor.String()), wt.Since.UTC().Format("15:04 UTC"))
			}
			if sv := out.Server; sv != nil {
				fmt.Fprintf(w, "server: %s\n", sv)
			} else {
				fmt.Fprintln(w, "server: not running (read from the store)")
			}
			return w.Flush()
		}),
	}
	jsonFlags(cmd, &asJSON)
	return cmd
}

// withState runs a command with the config, an engine on its store, and
// the store closed afterwards.
func (g *globals) withState(fn func(cmd *cobra.Command, args []string, f *config.File, eng *core.Engine) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		f, eng, done, err := g.openState(cmd.Context())
		if err != nil {
			return err
		}
		defer done()
		return fn(cmd, args, f, eng)
	}
}

// newStateCmd builds `state check`: SQLite's full integrity check of the
// state file, read-only (every command runs the quick check when it opens
// the file, and refuses to write to one that fails it).
func newStateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "state", Short: "Look after the state file"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Run SQLite's full integrity check on the state file (read-only); exits 1 listing any damage",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := g.loadConfig()
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			if err := unopenableState(f); err != nil {
				return err
			}
			problems, err := sqlitestore.Check(cmd.Context(), f.Store.Path)
			if err != nil {
				return &exitError{code: exitFailed, err: fmt.Errorf("%w (store.path in %s)", err, f.Path)}
			}
			if len(problems) > 0 {
				for _, p := range problems {
					fmt.Fprintln(cmd.OutOrStdout(), p)
				}
				return &exitError{code: exitFailed, err: fmt.Errorf("state file %s is damaged: %d problems found; restore it from a backup", f.Store.Path, len(problems))}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "state file %s: intact\n", f.Store.Path)
			return nil
		},
	})
	return cmd
}
