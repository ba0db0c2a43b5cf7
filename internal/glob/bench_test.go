package glob

import "testing"

// BenchmarkMatch matches names against the shipped rules' credential
// paths, with the dialect (new) and the rules' former matcher (old) as
// its peer.
func BenchmarkMatch(b *testing.B) {
	patterns := []string{"**/.ssh/id_*", "**/.ssh/*_key", "**/.aws/credentials", "**/.config/gcloud/**",
		"**/.docker/config.json", "**/.netrc", "*.pem", "*.p12", "**/.env", "/etc/agentaudit/**", "**/policy*.yaml"}
	names := []string{"/home/u/project/src/main.go", "/home/u/.ssh/id_ed25519", "README.md", "-rf",
		"/workspace/node_modules/a/b/c/index.js", "/etc/agentaudit/policy.yaml"}
	var pats []*Pattern
	var olds []*oldDetectPattern
	for _, p := range patterns {
		g, err := Compile(p)
		if err != nil {
			b.Fatal(err)
		}
		pats = append(pats, g)
		olds = append(olds, oldCompileDetectGlob(p))
	}
	b.Run("new", func(b *testing.B) {
		for b.Loop() {
			for _, n := range names {
				for _, g := range pats {
					g.Match(n)
				}
			}
		}
	})
	b.Run("old", func(b *testing.B) {
		for b.Loop() {
			for _, n := range names {
				for _, g := range olds {
					g.match(n)
				}
			}
		}
	})
}
