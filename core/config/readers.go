package config

// Readers names, for every key of ripcord.yaml, the function that acts on
// it, so that no key is accepted, defaulted and documented while nothing
// uses it. TestEverySchemaKeyHasAReader walks the JSON Schema and fails for
// a key without an entry here, and for an entry whose function does not
// touch the key's field (in its body or a closure in it).
//
// A key is the schema path with [] for list items
// ("environments[].spike.alpha"); a reader is the package directory from
// the module root and the function: "cmd/ripcord.rolloutSteps",
// "core/config.(*validator).gates", "cmd/ripcord.(*world).start".
//
// Adding a key: add the field to types.go, then an entry here naming the
// function that reads it. Provider settings are not listed: each provider
// checks its own against the schema it publishes.
var Readers = map[string]string{
	"project":                      "cmd/ripcord.openEngine",
	"services[].name":              "cmd/ripcord.openEngine",
	"services[].pipeline.provider": "cmd/ripcord.usedProviders",
	"services[].branches":          "cmd/ripcord.(*world).start",
	"services[].migrations.dir":    "cmd/ripcord.usedProviders",

	"environments[].name":       "cmd/ripcord.openEngine",
	"environments[].from":       "cmd/ripcord.(*world).start",
	"environments[].gates":      "core/config.(*validator).gates",
	"environments[].confirm":    "cmd/ripcord.consoleOptions",
	"environments[].production": "cmd/ripcord.consoleOptions",
	"environments[].auto":       "cmd/ripcord.(*world).start",

	// The single-service shorthand becomes that service's placement.
	"environments[].target.provider":                   "cmd/ripcord.usedProviders",
	"environments[].errors.provider":                   "cmd/ripcord.usedProviders",
	"environments[].backups[].name":                    "cmd/ripcord.usedProviders",
	"environments[].backups[].provider":                "cmd/ripcord.usedProviders",
	"environments[].backups[].every":                   "cmd/ripcord.backupPolicy",
	"environments[].backups[].warn":                    "cmd/ripcord.backupPolicy",
	"environments[].backups[].critical":                "cmd/ripcord.backupPolicy",
	"environments[].backups[].verify_every":            "cmd/ripcord.backupPolicy",
	"environments[].backups[].criticality":             "cmd/ripcord.backupPolicy",
	"environments[].services[].name":                   "cmd/ripcord.usedProviders",
	"environments[].services[].target.provider":        "cmd/ripcord.usedProviders",
	"environments[].services[].errors.provider":        "cmd/ripcord.usedProviders",
	"environments[].services[].backups[].name":         "cmd/ripcord.usedProviders",
	"environments[].services[].backups[].provider":     "cmd/ripcord.usedProviders",
	"environments[].services[].backups[].every":        "cmd/ripcord.backupPolicy",
	"environments[].services[].backups[].warn":         "cmd/ripcord.backupPolicy",
	"environments[].services[].backups[].critical":     "cmd/ripcord.backupPolicy",
	"environments[].services[].backups[].verify_every": "cmd/ripcord.backupPolicy",
	"environments[].services[].backups[].criticality":  "cmd/ripcord.backupPolicy",

	"environments[].rollout[].weight":      "cmd/ripcord.rolloutSteps",
	"environments[].rollout[].analysis":    "cmd/ripcord.rolloutSteps",
	"environments[].rollout[].for":         "cmd/ripcord.rolloutSteps",
	"environments[].rollout[].pause":       "cmd/ripcord.rolloutSteps",
	"environments[].rollback.auto":         "cmd/ripcord.(*world).start",
	"environments[].rollback.action":       "cmd/ripcord.(*world).start",
	"environments[].spike.alpha":           "cmd/ripcord.(*world).start",
	"environments[].spike.min_events":      "cmd/ripcord.(*world).start",
	"environments[].spike.tolerance":       "cmd/ripcord.(*world).start",
	"environments[].spike.on_inconclusive": "cmd/ripcord.(*world).start",
	"environments[].spike.window":          "cmd/ripcord.(*world).start",

	"plugins[].name": "cmd/ripcord.pluginSpecs",
	"plugins[].path": "cmd/ripcord.pluginSpecs",
	"plugins[].env":  "cmd/ripcord.pluginSpecs",

	"store.driver": "cmd/ripcord.openEngine",
	"store.path":   "cmd/ripcord.openEngine",

	"deadlines.deploy":   "core/config.(Deadlines).Core",
	"deadlines.rollback": "core/config.(Deadlines).Core",
	"deadlines.health":   "core/config.(Deadlines).Core",
	"deadlines.status":   "core/config.(Deadlines).Core",
	"deadlines.backup":   "core/config.(Deadlines).Core",
	"deadlines.stall":    "core/config.(Deadlines).Core",

	"notify.bell":    "cmd/ripcord.consoleOptions",
	"notify.desktop": "cmd/ripcord.consoleOptions",

	"bastion.listen":                      "cmd/ripcord/internal/bastion.Start",
	"bastion.host_key":                    "cmd/ripcord/internal/bastion.Start",
	"bastion.idle_timeout":                "cmd/ripcord/internal/bastion.Start",
	"bastion.max_sessions":                "cmd/ripcord/internal/bastion.(*Bastion).Apply",
	"bastion.max_sessions_per_key":        "cmd/ripcord/internal/bastion.(*Bastion).Apply",
	"bastion.operators[].name":            "cmd/ripcord/internal/bastion.NewOperators",
	"bastion.operators[].keys":            "core/config.(Operator).ReadKeys",
	"bastion.operators[].authorized_keys": "core/config.(Operator).ReadKeys",
	"bastion.operators[].role":            "core/config.(Operator).RoleFor",
	"bastion.operators[].roles":           "core/config.(Operator).RoleFor",
}

// Pending lists keys another part of the work is wiring right now, with
// who reads them once it lands. The schema test accepts them but reports
// them; an entry moves to Readers when its reader lands.
var Pending = map[string]string{}
