package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// Gates a promotion can wait on; "soak" takes a duration ("soak 5m").

// validator checks what the decoder cannot: names, references between
// parts of the file, and values that only make sense together.
type validator struct {
	f    *File
	d    *decoder
	opts Options
	errs *errorSet
}

// at is the position of the value at path, or else of fallback.
func (v *validator) at(path string, fallback Pos) Pos {
	if p, ok := v.d.set[path]; ok {
		return p
	}
	return fallback
}

func (v *validator) isSet(path string) bool {
	_, ok := v.d.set[path]
	return ok
}

func validate(f *File, d *decoder, opts Options, errs *errorSet) {
	v := &validator{f: f, d: d, opts: opts, errs: errs}
	top := Pos{File: d.file, Line: 1, Col: 1}
	if strings.TrimSpace(f.Project) == "" {
		errs.add(v.at("project", top), "project must not be empty")
	}
	if len(f.Services) == 0 {
		errs.add(v.at("services", top), "services must list at least one service")
	}
	if len(f.Environments) == 0 {
		errs.add(v.at("environments", top), "environments must list at least one environment")
	}

	names := func(kind string, n int, name func(int) string, path func(int) string) {
		first := map[string]Pos{}
		for i := range n {
			p := v.at(path(i)+".name", top)
			nm := name(i)
			if strings.TrimSpace(nm) == "" {
				errs.add(p, "%s.name must not be empty", path(i))
				continue
			}
			if prev, dup := first[nm]; dup {
				errs.add(p, "duplicate %s name %q (first at %s)", kind, nm, prev)
				continue
			}
			first[nm] = p
		}
	}
	names("service", len(f.Services), func(i int) string { return f.Services[i].Name }, func(i int) string { return fmt.Sprintf("services[%d]", i) })
	names("environment", len(f.Environments), func(i int) string { return f.Environments[i].Name }, func(i int) string { return fmt.Sprintf("environments[%d]", i) })
	names("plugin", len(f.Plugins), func(i int) string { return f.Plugins[i].Name }, func(i int) string { return fmt.Sprintf("plugins[%d]", i) })

	for i, s := range f.Services {
		p := fmt.Sprintf("services[%d]", i)
		if s.Pipeline != nil {
			v.provider(s.Pipeline, p+".pipeline", KindPipeline)
		}
		if s.Migrations != nil && strings.TrimSpace(s.Migrations.Dir) == "" {
			errs.add(v.at(p+".migrations.dir", s.Pos), "%s.migrations.dir must not be empty", p)
		}
		// The exec pipeline reads the migrations at each run's commit in
		// the tree it builds, the CI sources in the clone the directory is
		// in; no other pipeline provider is handed the directory.
		if s.Migrations != nil && (s.Pipeline == nil || !readsMigrations[s.Pipeline.Name]) {
			errs.add(v.at(p+".migrations", s.Pos), "%s.migrations is read by the exec, github-actions and gitlab-ci pipelines, at each green run's commit in the git clone it is in; this service's pipeline is none of them, so nothing would read it", p)
		}
		for j, b := range s.Branches {
			if strings.TrimSpace(b) == "" {
				errs.add(v.at(fmt.Sprintf("%s.branches[%d]", p, j), s.Pos), "%s.branches[%d] must not be empty", p, j)
			}
		}
	}
	for i, pl := range f.Plugins {
		for j, name := range pl.Env {
			if !validEnvName(name) {
				path := fmt.Sprintf("plugins[%d].env[%d]", i, j)
				errs.add(v.at(path, pl.Pos), "%s: %q is not an environment variable name", path, name)
			}
		}
	}
	for i := range f.Environments {
		v.environment(i)
	}
	v.promotionOrder()
	v.deadlines()
}

// provider checks that a provider exists and can serve as kind.
func (v *validator) provider(p *Provider, path, kind string) {
	if v.opts.Providers == nil || p.Name == "" {
		return
	}
	pos := v.at(path+".provider", p.Pos)
	for _, pl := range v.f.Plugins {
		if pl.Name == p.Name {
			return
		}
	}
	got, ok := v.opts.Providers[p.Name]
	if ok && got == kind {
		return
	}
	if ok {
		v.errs.add(pos, "%s: provider %q is %s provider, not %s provider", path, p.Name, withArticle(got), withArticle(kind))
		return
	}
	var known []string
	for name, k := range v.opts.Providers {
		if k == kind {
			known = append(known, name)
		}
	}
	for _, pl := range v.f.Plugins {
		known = append(known, pl.Name)
	}
	slices.Sort(known)
	known = slices.Compact(known)
	v.errs.add(pos, "%s: unknown %s provider %q%s known %s providers: %s", path, kind, p.Name, didYouMeanSep(p.Name, known), kind, strings.Join(known, ", "))
}

func (v *validator) environment(i int) {
	e := &v.f.Environments[i]
	p := fmt.Sprintf("environments[%d]", i)
	v.placements(i)
	v.backups(&Placement{Path: p, Backups: e.SharedBackups()})
	for k := range e.Services {
		pl := &e.Services[k]
		if pl.Target != nil {
			v.provider(pl.Target, pl.Path+".target", KindTarget)
		}
		if pl.Errors != nil {
			v.provider(pl.Errors, pl.Path+".errors", KindErrors)
		}
		v.backups(pl)
	}
	if e.Spike.Alpha <= 0 || e.Spike.Alpha > 0.5 {
		v.errs.add(v.at(p+".spike.alpha", e.Pos), "%s.spike.alpha must be more than 0 and at most 0.5, got %g", p, e.Spike.Alpha)
	}
	if e.Spike.Tolerance <= 1 || e.Spike.Tolerance > 100 {
		v.errs.add(v.at(p+".spike.tolerance", e.Pos), "%s.spike.tolerance must be more than 1 and at most 100 (a rate ratio: 1.5 means HEALTHY rules out 1.5× the baseline's errors), got %g", p, e.Spike.Tolerance)
	}
	if e.Spike.MinEvents < 1 {
		v.errs.add(v.at(p+".spike.min_events", e.Pos), "%s.spike.min_events must be at least 1, got %d", p, e.Spike.MinEvents)
	}
	if e.Spike.Window <= 0 {
		v.errs.add(v.at(p+".spike.window", e.Pos), "%s.spike.window must be longer than zero", p)
	}
	v.gates(i)
	v.rollout(i)
}

// placements checks that every service has exactly one block in
// environment i, with a target, and that the environment-level shorthand
// is used only by a project with one service.
func (v *validator) placements(i int) {
	e := &v.f.Environments[i]
	p := fmt.Sprintf("environments[%d]", i)
	var services []string
	for _, s := range v.f.Services {
		services = append(services, s.Name)
	}
	shorthand := false
	for _, key := range []string{"target", "errors"} {
		at := p + "." + key
		if !v.isSet(at) {
			continue
		}
		shorthand = true
		switch {
		case v.isSet(p + ".services"):
			v.errs.add(v.at(at, e.Pos), "%s: %s is written both here and under %s.services; with services blocks, each service's %s goes in its block", at, key, p, key)
		case len(services) > 1:
			v.errs.add(v.at(at, e.Pos), "%s: the project has %d services (%s), so each needs its own %s: write it under %s.services, one block per service", at, len(services), strings.Join(services, ", "), key, p)
		}
	}
	first := map[string]Pos{}
	for k := range e.Services {
		pl := &e.Services[k]
		if pl.Path == p {
			continue // the shorthand, checked above
		}
		at := v.at(pl.Path+".name", pl.Pos)
		switch prev, dup := first[pl.Name]; {
		case strings.TrimSpace(pl.Name) == "":
			v.errs.add(at, "%s.name must not be empty", pl.Path)
			continue
		case dup:
			v.errs.add(at, "%s: service %q is placed twice in %s (first at %s)", pl.Path, pl.Name, p, prev)
			continue
		case !slices.Contains(services, pl.Name):
			v.errs.add(at, "%s: no service is named %q%s services are %s", pl.Path, pl.Name, didYouMeanSep(pl.Name, services), strings.Join(services, ", "))
			continue
		}
		first[pl.Name] = at
		if pl.Target == nil {
			v.errs.add(pl.Pos, "%s: service %q needs a target in %s", pl.Path, pl.Name, p)
		}
	}
	if len(services) == 1 && !v.isSet(p+".services") {
		if e.Target == nil {
			msg := "%s needs a target: where the service runs"
			if shorthand {
				msg = "%s needs a target next to its errors and backups"
			}
			v.errs.add(e.Pos, msg, p)
		}
		return
	}
	for _, svc := range services {
		if _, ok := first[svc]; !ok && !shorthand {
			v.errs.add(v.at(p+".services", e.Pos), "%s: service %q has no block here; every service runs in every environment, so add - name: %s with its target under %s.services", p, svc, svc, p)
		}
	}
}

// backups checks a placement's backup sets; their names must differ from
// the sets the environment shares with every service.
func (v *validator) backups(pl *Placement) {
	firstBackup := map[string]Pos{}
	if pl.Path != v.envPath(pl.Path) {
		for _, b := range v.envOf(pl.Path).SharedBackups() {
			firstBackup[b.Name] = b.Pos
		}
	}
	for j := range pl.Backups {
		b := &pl.Backups[j]
		bp := fmt.Sprintf("%s.backups[%d]", pl.Path, j)
		namePos := v.at(bp+".name", b.Pos)
		switch prev, dup := firstBackup[b.Name]; {
		case strings.TrimSpace(b.Name) == "":
			v.errs.add(namePos, "%s.name must not be empty", bp)
		case dup:
			v.errs.add(namePos, "duplicate backup name %q in %s (first at %s)", b.Name, pl.Path, prev)
		default:
			firstBackup[b.Name] = namePos
		}
		v.provider(&b.Provider, bp, KindBackup)
		if b.Every <= 0 {
			v.errs.add(v.at(bp+".every", b.Pos), "%s.every must be longer than zero", bp)
		}
		if v.isSet(bp+".verify_every") && b.VerifyEvery <= 0 {
			v.errs.add(v.at(bp+".verify_every", b.Pos), "%s.verify_every must be longer than zero", bp)
		}
		if b.Warn <= 0 {
			v.errs.add(v.at(bp+".warn", b.Pos), "%s.warn must be more than zero (it is a multiple of every)", bp)
		} else if b.Warn >= b.Critical {
			at := bp + ".warn"
			if !v.isSet(at) {
				at = bp + ".critical"
			}
			v.errs.add(v.at(at, b.Pos), "%s: warn (%g) must be less than critical (%g)", bp, b.Warn, b.Critical)
		}
	}
}

func (v *validator) gates(i int) {
	e := &v.f.Environments[i]
	p := fmt.Sprintf("environments[%d]", i)
	seen := map[string]bool{}
	for j, g := range e.Gates {
		gp := fmt.Sprintf("%s.gates[%d]", p, j)
		pos := v.at(gp, e.Pos)
		fields := strings.Fields(g)
		if len(fields) == 0 {
			v.errs.add(pos, "%s must not be empty", gp)
			continue
		}
		name, args := fields[0], fields[1:]
		if !slices.Contains(core.GateNames, name) {
			v.errs.add(pos, "%s: unknown gate %q%s gates are pipeline, soak DURATION, errors, backups, migrations, branch, lock", gp, g, didYouMeanSep(name, core.GateNames))
			continue
		}
		if seen[name] {
			v.errs.add(pos, "%s: gate %q is listed twice", gp, name)
			continue
		}
		seen[name] = true
		if name == core.GateSoak {
			if len(args) != 1 {
				v.errs.add(pos, "%s: soak needs one duration, like \"soak 5m\"", gp)
				continue
			}
			d, err := ParseDuration(args[0])
			if err != nil || d <= 0 {
				v.errs.add(pos, "%s: expected a duration like 24h or 5m after soak, got %q", gp, args[0])
				continue
			}
			e.GateSpecs = append(e.GateSpecs, core.GateSpec{Name: name, Soak: d.D()})
			continue
		}
		if len(args) > 0 {
			v.errs.add(pos, "%s: gate %q takes no argument", gp, name)
			continue
		}
		missing := false
		for _, pl := range e.Services {
			switch {
			case name == core.GateErrors && pl.Errors == nil:
				v.errs.add(pos, "%s: gate \"errors\" needs an errors provider in %s%s", gp, pl.Path, forService(pl))
				missing = true
			case name == core.GateBackups && len(pl.Backups) == 0 && len(e.SharedBackups()) == 0:
				v.errs.add(pos, "%s: gate \"backups\" needs at least one backup in %s%s", gp, pl.Path, forService(pl))
				missing = true
			}
		}
		if !missing {
			e.GateSpecs = append(e.GateSpecs, core.GateSpec{Name: name})
		}
	}
}

func (v *validator) rollout(i int) {
	e := &v.f.Environments[i]
	p := fmt.Sprintf("environments[%d]", i)
	lastWeight, lastPath := -1, ""
	for j := range e.Rollout {
		s := &e.Rollout[j]
		sp := fmt.Sprintf("%s.rollout[%d]", p, j)
		var kinds []string
		for _, k := range []string{"weight", "analysis", "pause"} {
			if v.isSet(sp + "." + k) {
				kinds = append(kinds, k)
			}
		}
		switch len(kinds) {
		case 0:
			v.errs.add(s.Pos, "%s sets none of weight, analysis or pause; a step is exactly one of them", sp)
			continue
		case 1:
		default:
			v.errs.add(s.Pos, "%s sets %s; a step is exactly one of weight, analysis or pause", sp, strings.Join(kinds, " and "))
			continue
		}
		forSet := v.isSet(sp + ".for")
		switch kinds[0] {
		case "weight":
			w := *s.Weight
			wpos := v.at(sp+".weight", s.Pos)
			if w < 0 || w > 100 {
				v.errs.add(wpos, "%s.weight must be between 0 and 100, got %d", sp, w)
			} else if w < lastWeight {
				v.errs.add(wpos, "%s.weight %d is less than %d at %s; weights never decrease", sp, w, lastWeight, lastPath)
			} else {
				lastWeight, lastPath = w, sp
			}
			if forSet {
				v.errs.add(v.at(sp+".for", s.Pos), "%s.for applies only to analysis steps", sp)
			}
		case "analysis":
			if !forSet {
				v.errs.add(s.Pos, "%s: analysis needs for: DURATION, how long to watch", sp)
			} else if s.For <= 0 {
				v.errs.add(v.at(sp+".for", s.Pos), "%s.for must be longer than zero", sp)
			}
			for _, pl := range e.Services {
				if s.Analysis == "errors" && pl.Errors == nil {
					v.errs.add(v.at(sp+".analysis", s.Pos), "%s: analysis \"errors\" needs an errors provider in %s%s", sp, pl.Path, forService(pl))
				}
			}
		case "pause":
			ppos := v.at(sp+".pause", s.Pos)
			if s.Pause != "judgment" {
				if d, err := ParseDuration(s.Pause); err != nil || d <= 0 {
					v.errs.add(ppos, "%s.pause: expected judgment or a duration like 10m, got %q", sp, s.Pause)
				}
			}
			if forSet {
				v.errs.add(v.at(sp+".for", s.Pos), "%s.for applies only to analysis steps; write pause: 10m for a timed pause", sp)
			}
		}
	}
}

// promotionOrder checks that every from names an environment and that
// following from never comes back round.
func (v *validator) promotionOrder() {
	envs := v.f.Environments
	index := map[string]int{}
	for i, e := range envs {
		if _, dup := index[e.Name]; !dup {
			index[e.Name] = i
		}
	}
	names := slices.Sorted(maps.Keys(index))
	broken := map[int]bool{}
	for i, e := range envs {
		if e.From == "" {
			continue
		}
		if _, ok := index[e.From]; !ok {
			p := fmt.Sprintf("environments[%d].from", i)
			v.errs.add(v.at(p, e.Pos), "%s: no environment is named %q%s", p, e.From, didYouMean(e.From, names))
			broken[i] = true
		}
	}
	done := map[int]bool{}
	for start := range envs {
		if done[start] {
			continue
		}
		onPath := map[int]int{}
		var path []int
		cur := start
		for {
			if done[cur] || broken[cur] || envs[cur].From == "" {
				break
			}
			if at, ok := onPath[cur]; ok {
				v.reportCycle(path[at:])
				break
			}
			onPath[cur] = len(path)
			path = append(path, cur)
			cur = index[envs[cur].From]
		}
		for _, i := range path {
			done[i] = true
		}
	}
}

func (v *validator) reportCycle(cycle []int) {
	first := 0
	for k, i := range cycle {
		if i < cycle[first] {
			first = k
		}
	}
	cycle = append(cycle[first:len(cycle):len(cycle)], cycle[:first]...)
	var names []string
	for _, i := range cycle {
		names = append(names, v.f.Environments[i].Name)
	}
	names = append(names, names[0])
	p := fmt.Sprintf("environments[%d].from", cycle[0])
	v.errs.add(v.at(p, v.f.Environments[cycle[0]].Pos), "%s: promotion order has a cycle: %s", p, strings.Join(names, " -> "))
}

// envPath is the environment part of a placement's path.
func (v *validator) envPath(path string) string {
	env, _, _ := strings.Cut(path, ".")
	return env
}

// envOf is the environment a placement's path is in.
func (v *validator) envOf(path string) *Environment {
	for i := range v.f.Environments {
		if fmt.Sprintf("environments[%d]", i) == v.envPath(path) {
			return &v.f.Environments[i]
		}
	}
	return &Environment{}
}

// forService names the service of a placement written under services,
// where the path alone does not say which.
func forService(pl Placement) string {
	if !strings.Contains(pl.Path, ".services[") {
		return ""
	}
	return fmt.Sprintf(" (service %s)", pl.Name)
}

// withArticle puts "a" or "an" before a provider kind.
func withArticle(kind string) string {
	if kind != "" && strings.ContainsRune("aeiou", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
}

// deadlines checks each deadline is a time a call can take: longer than
// zero, and the stall check no shorter than a second.
func (v *validator) deadlines() {
	d := v.f.Deadlines
	top := Pos{File: v.d.file, Line: 1, Col: 1}
	for _, k := range []struct {
		key string
		val Duration
	}{{"deploy", d.Deploy}, {"rollback", d.Rollback}, {"health", d.Health}, {"status", d.Status}, {"backup", d.Backup}, {"stall", d.Stall}} {
		path := "deadlines." + k.key
		switch {
		case k.val <= 0:
			v.errs.add(v.at(path, v.at("deadlines", top)), "%s must be longer than zero", path)
		case k.key == "stall" && k.val.D() < time.Second:
			v.errs.add(v.at(path, v.at("deadlines", top)), "%s must be at least 1s: a quiet stream is normal for a moment", path)
		}
	}
}

// readsMigrations are the built-in pipelines handed migrations.dir.
var readsMigrations = map[string]bool{"exec": true, "github-actions": true, "gitlab-ci": true}
