package fsguard

import "strings"

// builtinGlobs is the built-in protected set, in the policy's glob
// dialect anchored at the workspace root. builtinMatch is its matcher;
// a fuzz test holds the two to each other.
var builtinGlobs = []string{
	".git/hooks/**", ".git/config", "**/.git/hooks/**", "**/.git/config",
	".github/workflows/**", ".gitlab-ci.yml",
	".env", ".env.*", "**/.env", "**/.env.*",
}

// Builtin returns the patterns of the built-in protected set, which every
// Guard protects whatever its Matcher says. They are anchored at the
// workspace root; "**" stands for any number of directories, and at the
// end of a pattern for at least one path component.
func Builtin() []string { return append([]string(nil), builtinGlobs...) }

// builtinMatch reports whether the clean relative path rel is in the
// built-in set, without splitting or allocating: it runs for every entry
// of the workspace.
func builtinMatch(rel string) bool {
	name := rel[strings.LastIndexByte(rel, '/')+1:]
	if name == ".env" || strings.HasPrefix(name, ".env.") {
		return true
	}
	if rel == ".gitlab-ci.yml" {
		return true
	}
	if rest, ok := strings.CutPrefix(rel, ".github/workflows/"); ok && rest != "" {
		return true
	}
	// .git/config and .git/hooks/<something>, below any directory.
	for i := 0; ; {
		j := strings.Index(rel[i:], ".git/")
		if j < 0 {
			return false
		}
		j += i
		if j == 0 || rel[j-1] == '/' {
			rest := rel[j+len(".git/"):]
			if rest == "config" || len(rest) > len("hooks/") && strings.HasPrefix(rest, "hooks/") {
				return true
			}
		}
		i = j + 1
	}
}

// builtinHolds reports whether the directory rel may hold a path of the
// built-in set that a symlink at rel would redirect: a .git directory,
// its hooks, .github and .github/workflows. (Every directory may hold a
// .env; one behind a symlink is found where the link points, when that is
// inside the workspace.)
func builtinHolds(rel string) bool {
	switch rel[strings.LastIndexByte(rel, '/')+1:] {
	case ".git":
		return true
	case "hooks":
		return rel == ".git/hooks" || strings.HasSuffix(rel, "/.git/hooks")
	}
	return rel == ".github" || rel == ".github/workflows"
}

// skipped reports whether the walk stays out of the directory rel (named
// name): node_modules anywhere, and a repository's objects and lfs store.
// The walk still enters one where the entry is protected or the caller's
// Holder says a match may lie beneath.
func skipped(rel, name string) bool {
	switch name {
	case "node_modules":
		return true
	case "objects", "lfs":
		parent := strings.TrimSuffix(rel, "/"+name)
		if parent == rel {
			return false
		}
		return parent == ".git" || strings.HasSuffix(parent, "/.git")
	}
	return false
}

// cleanRel reports whether p is a clean workspace-relative path naming
// something beneath the root: not empty, not ".", not absolute, no empty,
// "." or ".." component, no NUL, at most 4096 bytes.
func cleanRel(p string) bool {
	if p == "" || len(p) > 4096 || strings.IndexByte(p, 0) >= 0 {
		return false
	}
	for p != "" {
		c, rest, _ := strings.Cut(p, "/")
		if c == "" || c == "." || c == ".." {
			return false
		}
		if rest == "" && len(c) < len(p) { // a trailing slash
			return false
		}
		p = rest
	}
	return true
}

// join makes the path of name in the directory rel ("" for the root).
func join(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// splitRel splits a clean relative path into its directory ("" for the
// root) and its last component.
func splitRel(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}
