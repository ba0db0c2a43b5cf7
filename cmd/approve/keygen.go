package main

import (
	"fmt"
	"io"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
)

func runKeygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("keygen", stderr)
	id := fs.String("id", "", "key id (letters, digits, '-', '_', '.'), e.g. approvals-2026-05")
	out := fs.String("out", "", "directory for signer.pem (0600) and keys.json (public keys for runners)")
	if _, err := parseArgs(fs, args); err != nil {
		return 2
	}
	if *id == "" || *out == "" {
		fmt.Fprintln(stderr, "usage: approve keygen --id KID --out DIR")
		return 2
	}
	signer, keys, err := signing.WriteKeyFiles(*out, *id)
	if err != nil {
		return fail(stderr, "keygen", err)
	}
	fmt.Fprintf(stdout, "signing key %s: %s (keep it secret; approve serve --keys)\n", *id, signer)
	fmt.Fprintf(stdout, "public key set: %s (give it to runners)\n", keys)
	return 0
}
