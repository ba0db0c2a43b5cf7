package policy

import (
	"path"
	"strings"
)

// Programs that write files named in their arguments, so that protected
// paths also hold against "cp x .env", "sort -o .git/hooks/pre-commit" and
// "tar -x -C .git/hooks". A write whose files are known only at run time
// (an archive's members) is a glob under its directory, which asks when
// the directory holds a protected path.

// withInferredWrites adds the files that common file-changing commands
// write.
func withInferredWrites(u unit) unit {
	u, _ = inferWrites(u)
	return u
}

// inferWrites adds the files u writes and returns the options that make it
// run a program of its own.
func inferWrites(u unit) (unit, []error) {
	args := u.argv[1:]
	var add []word
	var risks []error
	switch name := u.name(); name {
	case "tee", "touch", "rm", "rmdir", "truncate", "shred", "mkdir", "unlink", "mkfifo", "mknod":
		add = operands(args)
	case "chmod", "chown", "chgrp":
		if ops := operands(args); len(ops) > 1 {
			add = ops[1:]
		}
	case "cp", "ln", "install", "link", "mv":
		add = copyTargets(name, args)
	case "dd":
		for _, a := range args {
			if strings.HasPrefix(a.text, "of=") {
				add = append(add, suffixWord(a, "of="))
			}
		}
	case "sort":
		add = optionValues(args, "kotST", []string{"--key", "--field-separator", "--buffer-size", "--temporary-directory", "--batch-size", "--parallel", "--compress-program", "--files0-from", "--random-source"}, "o", "--output")
		if hasLongOpt(args, "--compress-program") {
			risks = append(risks, shellErrorf("sort --compress-program runs a program"))
		}
	case "curl":
		add = curlWrites(args)
	case "wget":
		add = wgetWrites(args)
	case "tar":
		add, risks = tarWrites(args)
	case "unzip":
		add = unzipWrites(args)
	case "rsync":
		if ops := operands(args); len(ops) > 1 {
			add = ops[len(ops)-1:]
		}
		for _, o := range []string{"-e", "--rsh", "--rsync-path"} {
			if hasLongOpt(args, o) || (len(o) == 2 && hasShortOpt(args, o[1])) {
				risks = append(risks, shellErrorf("rsync %s runs a program", o))
			}
		}
	case "gzip", "gunzip", "bzip2", "bunzip2", "xz", "unxz", "lzma", "unlzma", "zstd", "unzstd", "lz4", "compress", "uncompress":
		if !hasShortOpt(args, 'c') && !hasShortOpt(args, 't') && !hasShortOpt(args, 'l') &&
			!hasLongOpt(args, "--stdout") && !hasLongOpt(args, "--to-stdout") && !hasLongOpt(args, "--test") && !hasLongOpt(args, "--list") {
			add = operands(args)
		}
	case "find":
		add = findWrites(args)
	case "zip":
		if hasLongOpt(args, "-TT") || hasLongOpt(args, "--unzip-command") {
			risks = append(risks, shellErrorf("zip -TT runs a program"))
		}
	case "make", "gmake":
		for _, a := range args {
			opt, _, _ := strings.Cut(a.text, "=")
			if opt == "--eval" || a.text == "-E" {
				risks = append(risks, shellErrorf("make %s evaluates inline makefile code", opt))
			} else if !strings.HasPrefix(a.text, "-") && isAssignment(a) {
				if err := assignmentRisk(a); err != nil {
					risks = append(risks, err)
				}
			}
		}
	}
	if len(add) > 0 {
		u.writes = append(append([]word(nil), u.writes...), add...)
	}
	return u, risks
}

// operands are the arguments that are not options.
func operands(args []word) []word {
	var ops []word
	end := false
	for _, a := range args {
		if !end && a.text == "--" && !a.dynamic {
			end = true
			continue
		}
		if !end && strings.HasPrefix(a.text, "-") && !a.dynamic {
			continue
		}
		ops = append(ops, a)
	}
	return ops
}

func suffixWord(a word, prefix string) word {
	t := a
	t.text = strings.TrimPrefix(a.text, prefix)
	t.pat = escapeGlob(t.text)
	if a.dynamic {
		t.pat = "*"
	}
	return t
}

// unknownUnder is a file known only at run time in dir: a glob word that
// asks when dir holds a protected path.
func unknownUnder(dir word) word {
	if dir.dynamic {
		return word{text: dir.text + "/*", pat: "*", dynamic: true}
	}
	d := strings.TrimSuffix(dir.text, "/")
	if d == "" && strings.HasPrefix(dir.text, "/") {
		d = "/"
	}
	t := path.Join(d, "*")
	return word{text: t, pat: path.Join(escapeGlob(d), "*"), glob: true}
}

func hasLongOpt(args []word, opt string) bool {
	for _, a := range args {
		if a.text == opt || strings.HasPrefix(a.text, opt+"=") {
			return true
		}
	}
	return false
}

// optionValues returns the values of the wanted short option letter and
// long option, reading clusters (-uo FILE) with valued listing the short
// options that take a value and longValued the long ones.
func optionValues(args []word, valued string, longValued []string, short, long string) []word {
	var out []word
	for i := 0; i < len(args); i++ {
		a := args[i]
		t := a.text
		if a.dynamic || t == "--" {
			if t == "--" {
				break
			}
			continue
		}
		if strings.HasPrefix(t, "--") {
			name, val, hasVal := strings.Cut(t, "=")
			isWanted := name == long
			if !isWanted && !contains(longValued, name) {
				continue
			}
			var v word
			if hasVal {
				v = literalWordFrom(a, val)
			} else if i+1 < len(args) {
				i++
				v = args[i]
			}
			if isWanted {
				out = append(out, v)
			}
			continue
		}
		if len(t) < 2 || t[0] != '-' {
			continue
		}
		for k := 1; k < len(t); k++ {
			if strings.IndexByte(valued, t[k]) < 0 {
				continue
			}
			var v word
			if k < len(t)-1 {
				v = literalWordFrom(a, t[k+1:])
			} else if i+1 < len(args) {
				i++
				v = args[i]
			}
			if strings.IndexByte(short, t[k]) >= 0 {
				out = append(out, v)
			}
			break
		}
	}
	return out
}

// copyTargets is where cp, mv, ln, install and link write: the -t
// directory, or the last operand; mv also empties its sources, and
// install -d creates every operand.
func copyTargets(name string, args []word) []word {
	dirs := optionValues(args, "tSgmo", []string{"--suffix", "--group", "--mode", "--owner", "--target-directory", "--context"}, "t", "--target-directory")
	ops := dropWords(operands(args), dirs)
	var out []word
	for _, d := range dirs {
		// cp -t DIR SRC…: DIR/base(SRC), or anything under DIR
		for _, src := range ops {
			if d.dynamic || src.dynamic || src.glob || d.glob {
				out = append(out, unknownUnder(d))
				continue
			}
			out = append(out, literalWordFrom(d, path.Join(d.text, path.Base(src.text))))
		}
		if len(ops) == 0 {
			out = append(out, unknownUnder(d))
		}
	}
	switch {
	case name == "mv":
		out = append(out, ops...)
	case name == "install" && (hasShortOpt(args, 'd') || hasLongOpt(args, "--directory")):
		out = append(out, ops...)
	case len(dirs) > 0:
	case len(ops) > 1:
		out = append(out, ops[len(ops)-1])
	case len(ops) == 1 && name == "ln":
		// ln -s TARGET makes a link named after TARGET here
		l := ops[0]
		if !l.dynamic {
			l = literalWordFrom(l, path.Base(l.text))
		}
		out = append(out, l)
	}
	return out
}

// dropWords removes the option values that operands counted as operands.
func dropWords(ops, drop []word) []word {
	var out []word
	for _, o := range ops {
		skip := false
		for i, d := range drop {
			if d.text == o.text {
				drop = append(drop[:i:i], drop[i+1:]...)
				skip = true
				break
			}
		}
		if !skip {
			out = append(out, o)
		}
	}
	return out
}

// curlWrites is where curl saves: -o FILE, -O (the URL's file name),
// header and cookie files, and unknown names for -J and -K.
func curlWrites(args []word) []word {
	const valued = "AbcCdDeEFHKmoPQrtTuUwxXyYz"
	long := []string{"--output", "--dump-header", "--cookie-jar", "--trace", "--trace-ascii", "--stderr", "--libcurl",
		"--etag-save", "--hsts", "--alt-svc", "--output-dir", "--config"}
	longValued := append([]string{"--user-agent", "--data", "--data-raw", "--data-binary", "--data-urlencode", "--header",
		"--request", "--user", "--form", "--cookie", "--referer", "--upload-file", "--max-time", "--connect-timeout",
		"--retry", "--proxy", "--range", "--write-out", "--cacert", "--cert", "--key", "--url", "--resolve", "--connect-to"}, long...)
	var files []word
	for _, o := range []struct{ short, long string }{{"o", "--output"}, {"D", "--dump-header"}, {"c", "--cookie-jar"}, {"", "--trace"},
		{"", "--trace-ascii"}, {"", "--stderr"}, {"", "--libcurl"}, {"", "--etag-save"}, {"", "--hsts"}, {"", "--alt-svc"}} {
		for _, v := range optionValues(args, valued, longValued, o.short, o.long) {
			if v.text != "-" || v.dynamic {
				files = append(files, v)
			}
		}
	}
	dirs := optionValues(args, valued, longValued, "", "--output-dir")
	remote := hasShortOpt(args, 'O') || hasLongOpt(args, "--remote-name") || hasLongOpt(args, "--remote-name-all")
	unknown := hasShortOpt(args, 'J') || hasLongOpt(args, "--remote-header-name") ||
		hasShortOpt(args, 'K') || hasLongOpt(args, "--config")
	if remote {
		for _, u := range curlURLs(args, valued, longValued) {
			if u.dynamic {
				files = append(files, word{text: u.text, pat: "*", dynamic: true})
				continue
			}
			rest := u.text
			if _, after, ok := strings.Cut(rest, "://"); ok {
				rest = after
				if i := strings.IndexByte(rest, '/'); i >= 0 {
					rest = rest[i:]
				} else {
					rest = ""
				}
			}
			rest, _, _ = strings.Cut(rest, "?")
			if b := path.Base(rest); b != "." && b != "/" && b != "" {
				files = append(files, literalWord(b))
			}
		}
	}
	if unknown {
		files = append(files, unknownUnder(literalWord(".")))
	}
	if len(dirs) > 0 {
		d := dirs[len(dirs)-1]
		for i, f := range files {
			if d.dynamic {
				files[i] = word{text: d.text + "/" + f.text, pat: "*", dynamic: true}
			} else if !path.IsAbs(f.text) && !f.dynamic {
				j := literalWord(path.Join(d.text, f.text))
				j.glob, j.pat = f.glob, path.Join(escapeGlob(d.text), f.pat)
				files[i] = j
			}
		}
	}
	return files
}

// curlURLs are curl's operands.
func curlURLs(args []word, valued string, longValued []string) []word {
	var out []word
	for i := 0; i < len(args); i++ {
		a := args[i]
		t := a.text
		switch {
		case a.dynamic:
			out = append(out, a)
		case strings.HasPrefix(t, "--"):
			if !strings.Contains(t, "=") && contains(longValued, t) {
				i++
			}
		case len(t) > 1 && t[0] == '-':
			for k := 1; k < len(t); k++ {
				if strings.IndexByte(valued, t[k]) >= 0 {
					if k == len(t)-1 {
						i++
					}
					break
				}
			}
		default:
			out = append(out, a)
		}
	}
	return out
}

// wgetWrites is where wget saves: -O FILE, its log files, and otherwise
// files named by the server under -P DIR or here.
func wgetWrites(args []word) []word {
	const valued = "aBeiIoOPtTwQUlARDX"
	longValued := []string{"--output-document", "--output-file", "--append-output", "--directory-prefix", "--execute",
		"--input-file", "--tries", "--timeout", "--wait", "--user-agent", "--level", "--accept", "--reject", "--domains"}
	var files []word
	doc := optionValues(args, valued, longValued, "O", "--output-document")
	for _, v := range doc {
		if v.text != "-" || v.dynamic {
			files = append(files, v)
		}
	}
	files = append(files, optionValues(args, valued, longValued, "o", "--output-file")...)
	files = append(files, optionValues(args, valued, longValued, "a", "--append-output")...)
	if len(doc) == 0 {
		dir := literalWord(".")
		if ds := optionValues(args, valued, longValued, "P", "--directory-prefix"); len(ds) > 0 {
			dir = ds[len(ds)-1]
		}
		files = append(files, unknownUnder(dir))
	}
	if len(optionValues(args, valued, longValued, "e", "--execute")) > 0 {
		files = append(files, unknownUnder(literalWord(".")))
	}
	return files
}

// tarWrites is what tar writes: the archive it creates or changes, or the
// members it extracts under -C DIR.
func tarWrites(args []word) ([]word, []error) {
	var risks []error
	var archive, dir []word
	mode := byte(0)
	toStdout := false
	setMode := func(c byte) {
		if strings.IndexByte("cxtruA", c) >= 0 {
			mode = c
		}
	}
	const valued = "fCTXbLNgKVIFH"
	take := func(c byte, v word) {
		switch c {
		case 'f':
			archive = append(archive, v)
		case 'C':
			dir = append(dir, v)
		case 'I', 'F':
			risks = append(risks, shellErrorf("tar -%c runs a program", c))
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		t := a.text
		if a.dynamic {
			continue
		}
		switch {
		case strings.HasPrefix(t, "--"):
			name, val, hasVal := strings.Cut(t, "=")
			switch name {
			case "--extract", "--get":
				mode = 'x'
			case "--create":
				mode = 'c'
			case "--append":
				mode = 'r'
			case "--update":
				mode = 'u'
			case "--list":
				mode = 't'
			case "--delete", "--concatenate", "--catenate":
				mode = 'r'
			case "--to-stdout":
				toStdout = true
			case "--to-command", "--use-compress-program", "--info-script", "--new-volume-script", "--rsh-command":
				risks = append(risks, shellErrorf("tar %s runs a program", name))
			case "--checkpoint-action":
				if strings.Contains(val, "exec") {
					risks = append(risks, shellErrorf("tar --checkpoint-action=exec runs a program"))
				}
			case "--file", "--directory":
				v := literalWordFrom(a, val)
				if !hasVal && i+1 < len(args) {
					i++
					v = args[i]
				}
				if name == "--file" {
					archive = append(archive, v)
				} else {
					dir = append(dir, v)
				}
			}
		case len(t) > 1 && t[0] == '-':
			for k := 1; k < len(t); k++ {
				c := t[k]
				setMode(c)
				if c == 'O' {
					toStdout = true
				}
				if strings.IndexByte(valued, c) >= 0 {
					v := literalWordFrom(a, t[k+1:])
					if k == len(t)-1 && i+1 < len(args) {
						i++
						v = args[i]
					}
					take(c, v)
					break
				}
			}
		case i == 0:
			// old style: "xzf a.tar" takes its values from the next words
			for k := 0; k < len(t); k++ {
				c := t[k]
				setMode(c)
				if c == 'O' {
					toStdout = true
				}
				if strings.IndexByte(valued, c) >= 0 && i+1 < len(args) {
					i++
					take(c, args[i])
				}
			}
		}
	}
	var out []word
	switch mode {
	case 'c', 'r', 'u', 'A':
		for _, f := range archive {
			if f.text != "-" || f.dynamic {
				out = append(out, f)
			}
		}
	case 'x':
		if !toStdout {
			d := literalWord(".")
			if len(dir) > 0 {
				d = dir[len(dir)-1]
			}
			out = append(out, unknownUnder(d))
		}
	}
	return out, risks
}

// unzipWrites is where unzip extracts: under -d DIR or here.
func unzipWrites(args []word) []word {
	d := literalWord(".")
	for i := 0; i < len(args); i++ {
		a := args[i]
		t := a.text
		if a.dynamic || len(t) < 2 || t[0] != '-' {
			continue
		}
		if strings.ContainsAny(t[1:], "ltpczZ") || t == "-v" {
			return nil // lists, tests or prints
		}
		if k := strings.IndexByte(t, 'd'); k > 0 {
			if k < len(t)-1 {
				d = literalWordFrom(a, t[k+1:])
			} else if i+1 < len(args) {
				d = args[i+1]
			}
		}
	}
	return []word{unknownUnder(d)}
}

// findWrites is what find writes: -fprint files, and the starting points
// it deletes (the workspace root itself is the wipe rule's business).
func findWrites(args []word) []word {
	var out []word
	deletes := false
	var starts []word
	inStarts := true
	for i := 0; i < len(args); i++ {
		a := args[i]
		t := a.text
		if inStarts {
			if a.dynamic || (!strings.HasPrefix(t, "-") && t != "(" && t != "!" && t != ")") {
				starts = append(starts, a)
				continue
			}
			if t == "-H" || t == "-L" || t == "-P" || strings.HasPrefix(t, "-O") {
				continue
			}
			if t == "-D" {
				i++
				continue
			}
			inStarts = false
		}
		switch t {
		case "-delete":
			deletes = true
		case "-fprint", "-fprint0", "-fls", "-fprintf":
			if i+1 < len(args) {
				out = append(out, args[i+1])
			}
		}
	}
	if deletes {
		for _, s := range starts {
			if s.dynamic || (path.Clean(s.text) != "." && s.text != "") {
				out = append(out, s)
			}
		}
		// find . -name .env -delete deletes .env wherever it is
		for i := 0; i+1 < len(args); i++ {
			if (args[i].text == "-name" || args[i].text == "-iname") && !args[i+1].dynamic && !strings.ContainsAny(args[i+1].text, "*?[\\") {
				out = append(out, args[i+1])
			}
		}
	}
	return out
}
