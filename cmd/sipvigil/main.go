// Command sipvigil is a SIP proxy that keeps every dialog in order by
// construction. This package only parses flags, builds the object graph and
// handles signals; the proxy lives in sipvigil/proxy/...
package main

import (
	"context"
	"fmt"
	"io"
	"os"
)

const usage = `sipvigil: an ordering-preserving SIP proxy

Usage:
  sipvigil serve [--config FILE] [--listen ADDR] [--route HOP]
  sipvigil audit (--jaeger URL [--service NAME] [--since DUR] | --otlp-json FILE...) [--call CALL-ID] [--json]
  sipvigil check-config FILE
  sipvigil default-config
  sipvigil version

Run "sipvigil serve --help" for the serve flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "audit":
		return runAudit(context.Background(), args[1:], stdout, stderr)
	case "check-config":
		return checkConfig(args[1:], stdout, stderr)
	case "default-config":
		return defaultConfig(stdout)
	case "version", "--version", "-v":
		return printVersion(stdout)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "sipvigil: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
