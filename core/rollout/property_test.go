package rollout

import (
	"context"
	"testing"

	"pgregory.net/rapid"

	"github.com/ripcordhq/ripcord/core"
)

// Invariants that must hold whatever people and automation do, in any
// order: weights stay within 0–100, the audit chain verifies, no
// operation is left unfinished after its command returns, and a release
// that was rolled back is never promoted by automation until a person
// clears its hold.
func TestRolloutInvariantsOverRandomCommands(t *testing.T) {
	ctx := context.Background()
	rapid.Check(t, func(rt *rapid.T) {
		w := newWorld(t, Env{Steps: []Step{{Kind: StepWeight, Weight: 25}, {Kind: StepPause}, {Kind: StepWeight, Weight: 100}}})
		if err := w.eng.Store().PutRelease(ctx, core.Release{Service: "api", Version: "v3", Branch: "main", ArtifactDigest: "sha256:v3"}); err != nil {
			rt.Fatal(err)
		}
		kinds := []core.CommandKind{core.CmdPromote, core.CmdFullPromote, core.CmdPause, core.CmdResume, core.CmdAbort, core.CmdRollback, core.CmdClearHold}
		robot := core.Actor{Name: "ripcord", Automation: true}
		steps := rapid.IntRange(1, 12).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			cmd := core.Command{
				Kind:    rapid.SampledFrom(kinds).Draw(rt, "kind"),
				Ref:     prod,
				Version: rapid.SampledFrom([]string{"", "v1", "v2", "v3"}).Draw(rt, "version"),
				Actor:   rapid.SampledFrom([]core.Actor{ana, robot}).Draw(rt, "actor"),
				Reason:  "property",
			}
			if cmd.Kind == core.CmdClearHold && cmd.Actor.Automation {
				cmd.Actor = ana // clearing a hold is a person's decision
			}
			var heldBefore bool
			if cmd.Version != "" {
				if rel, err := w.eng.Store().Release(ctx, "api", cmd.Version); err == nil {
					heldBefore = rel.Held
				}
			}
			before := len(w.target.Calls())
			_, err := w.eng.Do(ctx, cmd)

			if (cmd.Kind == core.CmdPromote || cmd.Kind == core.CmdFullPromote) && cmd.Actor.Automation && heldBefore {
				_ = err // refused, or it advanced a rollout of another release
				for _, c := range w.target.Calls()[before:] {
					if c == "deploy "+cmd.Version+"@25" || c == "deploy "+cmd.Version+"@100" {
						rt.Fatalf("automation deployed held release %s: calls %v", cmd.Version, w.target.Calls())
					}
				}
			}
			st, _ := w.target.Status(ctx, prod)
			if st.Weight < 0 || st.Weight > 100 {
				rt.Fatalf("weight %d out of range after %s", st.Weight, cmd.Kind)
			}
			ops, uerr := w.eng.Store().Unfinished(ctx)
			if uerr != nil {
				rt.Fatal(uerr)
			}
			for _, op := range ops {
				if op.State != core.OpAttention {
					rt.Fatalf("operation left %s after %s returned: %+v", op.State, cmd.Kind, op)
				}
			}
			entries, aerr := w.eng.Store().Audit(ctx, 0, 10000)
			if aerr != nil {
				rt.Fatal(aerr)
			}
			if _, err := core.VerifyAudit(core.GenesisHash, entries); err != nil {
				rt.Fatalf("audit chain broken after %s: %v", cmd.Kind, err)
			}
		}
		w.ctl.Close()
	})
}
