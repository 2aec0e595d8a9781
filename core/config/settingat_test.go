package config

import "testing"

// A provider's complaint about a setting is placed where the setting is
// written; one about a missing setting at the block that lacks it, and
// one about the block as a whole at the provider.
func TestSettingAtPlacesASettingOrTheBlockLackingIt(t *testing.T) {
	yaml := "project: shop\nservices:\n  - name: api\n    pipeline:\n      provider: gitlab-ci\n      project: shop/api\n      artifact: {job: build}\nenvironments:\n  - name: staging\n    target: {provider: local}\n"
	f, err := Parse("ripcord.yaml", []byte(yaml), opts())
	if err != nil {
		t.Fatal(err)
	}
	p := f.Services[0].Pipeline
	for path, want := range map[string]string{
		"project":        "ripcord.yaml:6:16",
		"artifact.job":   "ripcord.yaml:7:23",
		"artifact.path":  "ripcord.yaml:7:17",
		"webhook.secret": p.Pos.String(),
		"":               p.Pos.String(),
	} {
		if got := p.SettingAt(path).String(); got != want {
			t.Errorf("SettingAt(%q) = %s, want %s", path, got, want)
		}
	}
}
