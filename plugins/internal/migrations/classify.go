package migrations

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	pgq "github.com/pganalyze/pg_query_go/v6"
	pg "github.com/wasilibs/go-pgquery"

	"github.com/ripcordhq/ripcord/core"
)

// annotation is a person's word on a migration, which wins over the
// parser's: `-- ripcord: expand <why>` or `-- ripcord: contract <why>`.
var annotation = regexp.MustCompile(`(?mi)^\s*--\s*ripcord:\s*(expand|contract)\b[ \t:—-]*(.*)$`)

// Classify classes one migration's SQL (PostgreSQL). firstLine is the
// line of sql's start in its file, so reported lines are the file's.
//
// A migration is expand when every statement keeps the previous release
// working on the new schema: it adds (tables, nullable columns or columns
// with a default, indexes, enum values, views, functions), relaxes (drops
// NOT NULL) or only sets storage options. It is contract when any
// statement removes or rewrites (drops or renames a table or column,
// changes a type, sets NOT NULL, adds a constraint existing writes may
// break, deletes or updates rows) or cannot be read. An annotation
// overrides the parser, and its reason is kept.
func Classify(sql string, firstLine int) core.Migration {
	m := core.Migration{Kind: core.MigrationExpand}
	stmts := statements(sql)
	f := &fileFacts{added: map[string][]string{}}
	for _, st := range stmts {
		line := firstLine + strings.Count(sql[:st.offset], "\n") + leadingBlankLines(sql[st.offset:])
		if st.err != "" {
			m.Changes = append(m.Changes, core.SchemaChange{Kind: core.MigrationContract, Action: "unparseable statement", Line: line})
			m.Kind = core.MigrationContract
			if m.Reason == "" {
				m.Reason = fmt.Sprintf("line %d cannot be parsed as PostgreSQL (%s): counted as contract", line, st.err)
			}
			continue
		}
		for _, c := range f.classify(st.node) {
			c.Line = line
			m.Changes = append(m.Changes, c)
			if c.Kind == core.MigrationContract && m.Kind != core.MigrationContract {
				m.Kind = core.MigrationContract
				m.Reason = describe(c) + fmt.Sprintf(" (line %d)", line)
			}
		}
	}
	if m.Reason == "" {
		switch len(m.Changes) {
		case 0:
			m.Reason = "changes no schema"
		default:
			m.Reason = "only adds or relaxes: the previous release keeps working"
		}
	}
	if a := annotation.FindStringSubmatch(sql); a != nil {
		kind, why := core.MigrationKind(strings.ToLower(a[1])), strings.TrimSpace(a[2])
		if why == "" {
			m.Reason += fmt.Sprintf("; the annotation %q was ignored: it must say why", strings.TrimSpace(a[0]))
		} else {
			parsed := m.Kind
			m.Kind = kind
			m.Reason = fmt.Sprintf("annotated %s: %s (the parser said %s)", kind, why, parsed)
			for i := range m.Changes {
				m.Changes[i].Kind = kind
			}
		}
	}
	return m
}

func describe(c core.SchemaChange) string {
	switch {
	case c.Column != "":
		return c.Action + " " + c.Table + "." + c.Column
	case c.Table != "":
		return c.Action + " " + c.Table
	}
	return c.Action
}

func leadingBlankLines(s string) int {
	n := 0
	for {
		t := strings.TrimLeft(s, " \t\r")
		switch {
		case strings.HasPrefix(t, "\n"):
			n++
			s = t[1:]
		case strings.HasPrefix(t, "--"):
			i := strings.IndexByte(t, '\n')
			if i < 0 {
				return n
			}
			n++
			s = t[i+1:]
		default:
			return n
		}
	}
}

type statement struct {
	node   *pgq.Node
	offset int
	err    string
}

// statements parses sql. When the whole does not parse, it is split at
// top-level semicolons by PostgreSQL's own scanner and each piece parsed
// alone, so one unreadable statement does not hide what the others do.
func statements(sql string) []statement {
	tree, err := pg.Parse(sql)
	if err == nil {
		out := make([]statement, 0, len(tree.GetStmts()))
		for _, s := range tree.GetStmts() {
			out = append(out, statement{node: s.GetStmt(), offset: int(s.GetStmtLocation())})
		}
		return out
	}
	scan, serr := pg.Scan(sql)
	if serr != nil {
		return []statement{{offset: 0, err: err.Error()}}
	}
	var out []statement
	start := 0
	piece := func(end int) {
		text := sql[start:end]
		if strings.TrimSpace(stripComments(text)) == "" {
			return
		}
		t, perr := pg.Parse(text)
		if perr != nil {
			out = append(out, statement{offset: start, err: perr.Error()})
			return
		}
		for _, s := range t.GetStmts() {
			out = append(out, statement{node: s.GetStmt(), offset: start + int(s.GetStmtLocation())})
		}
	}
	for _, tok := range scan.GetTokens() {
		if tok.GetToken() == pgq.Token_ASCII_59 {
			piece(int(tok.GetEnd()))
			start = int(tok.GetEnd())
		}
	}
	piece(len(sql))
	return out
}

var lineComment = regexp.MustCompile(`--[^\n]*`)

func stripComments(s string) string { return lineComment.ReplaceAllString(s, "") }

// fileFacts remembers what earlier statements of the same migration
// added, so a backfill of a column the migration itself adds is an expand.
type fileFacts struct {
	added map[string][]string // table -> columns added in this file
}

func expand(action, table, column string) core.SchemaChange {
	return core.SchemaChange{Kind: core.MigrationExpand, Action: action, Table: table, Column: column}
}

func contract(action, table, column string) core.SchemaChange {
	return core.SchemaChange{Kind: core.MigrationContract, Action: action, Table: table, Column: column}
}

func relName(r *pgq.RangeVar) string {
	if r == nil {
		return ""
	}
	if r.GetSchemaname() != "" && r.GetSchemaname() != "public" {
		return r.GetSchemaname() + "." + r.GetRelname()
	}
	return r.GetRelname()
}

// qualified joins a DROP's name list ("public", "users") into a name.
func qualified(n *pgq.Node) string {
	var parts []string
	items := n.GetList().GetItems()
	if tn := n.GetTypeName(); tn != nil {
		items = tn.GetNames()
	}
	if fn := n.GetObjectWithArgs(); fn != nil {
		items = fn.GetObjname()
	}
	for _, it := range items {
		if s := it.GetString_().GetSval(); s != "" {
			parts = append(parts, s)
		}
	}
	if len(parts) > 1 && parts[0] == "public" {
		parts = parts[1:]
	}
	if s := n.GetString_().GetSval(); s != "" && len(parts) == 0 {
		parts = []string{s}
	}
	return strings.Join(parts, ".")
}

func objectWord(t pgq.ObjectType) string {
	w := strings.ToLower(strings.TrimPrefix(t.String(), "OBJECT_"))
	switch w {
	case "matview":
		return "materialized view"
	case "foreign_table":
		return "foreign table"
	}
	return strings.ReplaceAll(w, "_", " ")
}

// classify says what one statement does to the schema.
func (f *fileFacts) classify(n *pgq.Node) []core.SchemaChange {
	switch {
	case n.GetCreateStmt() != nil:
		s := n.GetCreateStmt()
		return []core.SchemaChange{expand("create table", relName(s.GetRelation()), "")}
	case n.GetCreateTableAsStmt() != nil:
		s := n.GetCreateTableAsStmt()
		return []core.SchemaChange{expand("create "+objectWord(s.GetObjtype()), relName(s.GetInto().GetRel()), "")}
	case n.GetViewStmt() != nil:
		return []core.SchemaChange{expand("create view", relName(n.GetViewStmt().GetView()), "")}
	case n.GetIndexStmt() != nil:
		s := n.GetIndexStmt()
		if s.GetUnique() {
			return []core.SchemaChange{contract("create unique index", relName(s.GetRelation()), "")}
		}
		return []core.SchemaChange{expand("create index", relName(s.GetRelation()), "")}
	case n.GetAlterTableStmt() != nil:
		return f.alterTable(n.GetAlterTableStmt())
	case n.GetRenameStmt() != nil:
		s := n.GetRenameStmt()
		switch s.GetRenameType() {
		case pgq.ObjectType_OBJECT_COLUMN:
			return []core.SchemaChange{contract("rename column", relName(s.GetRelation()), s.GetSubname()+" to "+s.GetNewname())}
		case pgq.ObjectType_OBJECT_TABCONSTRAINT, pgq.ObjectType_OBJECT_INDEX:
			return []core.SchemaChange{expand("rename "+objectWord(s.GetRenameType()), relName(s.GetRelation()), "")}
		}
		return []core.SchemaChange{contract("rename "+objectWord(s.GetRenameType()), relName(s.GetRelation())+qualified(orEmpty(s.GetObject())), "")}
	case n.GetDropStmt() != nil:
		s := n.GetDropStmt()
		var out []core.SchemaChange
		for _, o := range s.GetObjects() {
			out = append(out, contract("drop "+objectWord(s.GetRemoveType()), qualified(o), ""))
		}
		return out
	case n.GetTruncateStmt() != nil:
		var out []core.SchemaChange
		for _, r := range n.GetTruncateStmt().GetRelations() {
			out = append(out, contract("truncate", relName(r.GetRangeVar()), ""))
		}
		return out
	case n.GetDeleteStmt() != nil:
		return []core.SchemaChange{contract("delete rows", relName(n.GetDeleteStmt().GetRelation()), "")}
	case n.GetUpdateStmt() != nil:
		s := n.GetUpdateStmt()
		table := relName(s.GetRelation())
		var cols []string
		for _, t := range s.GetTargetList() {
			cols = append(cols, t.GetResTarget().GetName())
		}
		if len(cols) > 0 && !slices.ContainsFunc(cols, func(c string) bool { return !slices.Contains(f.added[table], c) }) {
			return []core.SchemaChange{expand("backfill", table, strings.Join(cols, ", "))}
		}
		return []core.SchemaChange{contract("update rows", table, strings.Join(cols, ", "))}
	case n.GetInsertStmt() != nil:
		return []core.SchemaChange{expand("insert rows", relName(n.GetInsertStmt().GetRelation()), "")}
	case n.GetAlterEnumStmt() != nil:
		s := n.GetAlterEnumStmt()
		name := qualified(&pgq.Node{Node: &pgq.Node_List{List: &pgq.List{Items: s.GetTypeName()}}})
		if s.GetOldVal() != "" {
			return []core.SchemaChange{contract("rename enum value", name, s.GetOldVal()+" to "+s.GetNewVal())}
		}
		return []core.SchemaChange{expand("add enum value", name, s.GetNewVal())}
	case n.GetCreateEnumStmt() != nil, n.GetCompositeTypeStmt() != nil, n.GetCreateDomainStmt() != nil,
		n.GetCreateSeqStmt() != nil, n.GetAlterSeqStmt() != nil, n.GetCreateExtensionStmt() != nil,
		n.GetCreateFunctionStmt() != nil, n.GetCreateTrigStmt() != nil, n.GetCreateSchemaStmt() != nil,
		n.GetCommentStmt() != nil, n.GetRefreshMatViewStmt() != nil, n.GetCreateStatsStmt() != nil,
		n.GetAlterOwnerStmt() != nil, n.GetCreateRoleStmt() != nil:
		return []core.SchemaChange{expand(statementWord(n), "", "")}
	case n.GetGrantStmt() != nil:
		if n.GetGrantStmt().GetIsGrant() {
			return []core.SchemaChange{expand("grant", "", "")}
		}
		return []core.SchemaChange{contract("revoke", "", "")}
	case n.GetAlterObjectSchemaStmt() != nil:
		s := n.GetAlterObjectSchemaStmt()
		return []core.SchemaChange{contract("move "+objectWord(s.GetObjectType())+" to schema "+s.GetNewschema(), relName(s.GetRelation()), "")}
	case n.GetTransactionStmt() != nil, n.GetVariableSetStmt() != nil, n.GetSelectStmt() != nil,
		n.GetVacuumStmt() != nil, n.GetReindexStmt() != nil, n.GetClusterStmt() != nil, n.GetLockStmt() != nil:
		return nil // changes no schema
	case n.GetDoStmt() != nil:
		return []core.SchemaChange{contract("DO block (what it runs cannot be read)", "", "")}
	}
	return []core.SchemaChange{contract(statementWord(n)+" (not a statement Ripcord classifies)", "", "")}
}

func orEmpty(n *pgq.Node) *pgq.Node {
	if n == nil {
		return &pgq.Node{}
	}
	return n
}

// statementWord names a statement's kind from its parse node: "create
// enum", "create function".
func statementWord(n *pgq.Node) string {
	name := fmt.Sprintf("%T", n.GetNode()) // *pg_query.Node_CreateEnumStmt
	name = strings.TrimSuffix(strings.TrimPrefix(name[strings.LastIndex(name, ".")+1:], "Node_"), "Stmt")
	var words []string
	start := 0
	for i := 1; i <= len(name); i++ {
		if i == len(name) || (name[i] >= 'A' && name[i] <= 'Z') {
			words = append(words, strings.ToLower(name[start:i]))
			start = i
		}
	}
	for i, w := range words {
		if full, ok := abbreviations[w]; ok {
			words[i] = full
		}
	}
	return strings.Join(words, " ")
}

var abbreviations = map[string]string{"trig": "trigger", "seq": "sequence", "stats": "statistics", "func": "function", "mat": "materialized", "refresh": "refresh"}

func (f *fileFacts) alterTable(s *pgq.AlterTableStmt) []core.SchemaChange {
	table := relName(s.GetRelation())
	var out []core.SchemaChange
	for _, cn := range s.GetCmds() {
		c := cn.GetAlterTableCmd()
		col := c.GetName()
		switch c.GetSubtype() {
		case pgq.AlterTableType_AT_AddColumn:
			def := c.GetDef().GetColumnDef()
			col = def.GetColname()
			f.added[table] = append(f.added[table], col)
			notNull, hasDefault := def.GetIsNotNull(), def.GetRawDefault() != nil || def.GetIdentity() != "" || def.GetGenerated() != ""
			for _, k := range def.GetConstraints() {
				switch k.GetConstraint().GetContype() {
				case pgq.ConstrType_CONSTR_NOTNULL, pgq.ConstrType_CONSTR_PRIMARY:
					notNull = true
				case pgq.ConstrType_CONSTR_DEFAULT, pgq.ConstrType_CONSTR_IDENTITY, pgq.ConstrType_CONSTR_GENERATED:
					hasDefault = true
				}
			}
			if isSerial(def.GetTypeName()) {
				hasDefault = true
			}
			if notNull && !hasDefault {
				out = append(out, contract("add NOT NULL column without a default", table, col))
			} else {
				out = append(out, expand("add column", table, col))
			}
		case pgq.AlterTableType_AT_DropColumn:
			out = append(out, contract("drop column", table, col))
		case pgq.AlterTableType_AT_AlterColumnType:
			out = append(out, contract("change the type of column", table, col))
		case pgq.AlterTableType_AT_SetNotNull:
			out = append(out, contract("set NOT NULL on column", table, col))
		case pgq.AlterTableType_AT_DropNotNull:
			out = append(out, expand("drop NOT NULL on column", table, col))
		case pgq.AlterTableType_AT_ColumnDefault:
			if c.GetDef() == nil {
				out = append(out, contract("drop the default of column", table, col))
			} else {
				out = append(out, expand("set the default of column", table, col))
			}
		case pgq.AlterTableType_AT_AddConstraint, pgq.AlterTableType_AT_AddIndexConstraint, pgq.AlterTableType_AT_AddIndex:
			kind := strings.ToLower(strings.TrimPrefix(c.GetDef().GetConstraint().GetContype().String(), "CONSTR_"))
			out = append(out, contract("add "+kind+" constraint (existing writes may break it)", table, ""))
		case pgq.AlterTableType_AT_DropConstraint:
			out = append(out, contract("drop constraint "+col+" (the previous release may rely on it)", table, ""))
		case pgq.AlterTableType_AT_ValidateConstraint:
			out = append(out, expand("validate constraint "+col, table, ""))
		case pgq.AlterTableType_AT_DropIdentity, pgq.AlterTableType_AT_DropExpression:
			out = append(out, contract("drop the generated value of column", table, col))
		case pgq.AlterTableType_AT_SetStatistics, pgq.AlterTableType_AT_SetOptions, pgq.AlterTableType_AT_ResetOptions,
			pgq.AlterTableType_AT_SetStorage, pgq.AlterTableType_AT_SetCompression, pgq.AlterTableType_AT_ClusterOn,
			pgq.AlterTableType_AT_DropCluster, pgq.AlterTableType_AT_SetLogged, pgq.AlterTableType_AT_SetUnLogged,
			pgq.AlterTableType_AT_SetTableSpace, pgq.AlterTableType_AT_SetRelOptions, pgq.AlterTableType_AT_ResetRelOptions,
			pgq.AlterTableType_AT_ReplaceRelOptions, pgq.AlterTableType_AT_ChangeOwner, pgq.AlterTableType_AT_AddIdentity,
			pgq.AlterTableType_AT_SetIdentity, pgq.AlterTableType_AT_ReplicaIdentity, pgq.AlterTableType_AT_GenericOptions,
			pgq.AlterTableType_AT_AlterColumnGenericOptions, pgq.AlterTableType_AT_AttachPartition:
			out = append(out, expand("set storage or options", table, col))
		case pgq.AlterTableType_AT_EnableTrig, pgq.AlterTableType_AT_EnableAlwaysTrig, pgq.AlterTableType_AT_EnableReplicaTrig,
			pgq.AlterTableType_AT_EnableTrigAll, pgq.AlterTableType_AT_EnableTrigUser:
			out = append(out, expand("enable trigger", table, ""))
		default:
			word := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(c.GetSubtype().String(), "AT_"), "_", " "))
			out = append(out, contract("alter table "+word+" (not a change Ripcord classifies)", table, col))
		}
	}
	return out
}

func isSerial(t *pgq.TypeName) bool {
	for _, n := range t.GetNames() {
		switch strings.ToLower(n.GetString_().GetSval()) {
		case "serial", "bigserial", "smallserial", "serial4", "serial8", "serial2":
			return true
		}
	}
	return false
}
