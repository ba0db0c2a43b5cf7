package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/agentaudit/agentaudit/internal/approvals"
	"github.com/agentaudit/agentaudit/internal/envflag"
)

// clientConfig is what every client command needs.
type clientConfig struct {
	Server    string `env:"APPROVE_URL"`
	TokenFile string
	Token     string `env:"APPROVE_TOKEN"`
	JSON      bool
}

func (c *clientConfig) flags(fs *envflag.FlagSet) {
	fs.StringEnv(&c.Server, "server", "APPROVE_URL", "", "approvals service URL (default http://127.0.0.1:8480)")
	fs.StringVar(&c.TokenFile, "token-file", "", "file holding the bearer token (else APPROVE_TOKEN)")
	fs.FromEnv(&c.Token, "APPROVE_TOKEN", "the approver's bearer token, unless --token-file")
	fs.BoolVar(&c.JSON, "json", false, "print JSON instead of a table")
}

// validate fills defaults and reads the token; it names the bad field.
func (c *clientConfig) validate() error {
	if c.Server == "" {
		c.Server = "http://127.0.0.1:8480"
	}
	switch {
	case c.TokenFile != "":
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %v", err)
		}
		c.Token = strings.TrimSpace(string(b))
	default:
		c.Token = strings.TrimSpace(c.Token)
	}
	if c.Token == "" {
		return errors.New("token: set APPROVE_TOKEN or --token-file")
	}
	return nil
}

func (c *clientConfig) client() (*approvals.Client, error) {
	return approvals.NewClient(c.Server, c.Token)
}

// parseArgs parses flags that may come before or after the positional
// arguments ("approve ID --comment x" as well as "approve --comment x ID").
func parseArgs(fs *envflag.FlagSet, args []string) ([]string, error) {
	return fs.ParseInterspersed(args)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// fail prints err and returns the exit status: 1, or 3 when the service
// refused (a 4xx with a code), so scripts can tell a refusal from an outage.
func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "approve %s: %v\n", cmd, err)
	var ae *approvals.APIError
	if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 {
		return 3
	}
	return 1
}

func newFlags(name string, stderr io.Writer) *envflag.FlagSet {
	fs := envflag.New("approve "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
