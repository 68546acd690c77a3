package main

import (
	"flag"
	"fmt"
	"io"

	"sipvigil/proxy/config"
)

// checkConfig validates a config file and reports the first error with its
// file:line:col position.
func checkConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: sipvigil check-config FILE")
		return 2
	}
	path := fs.Arg(0)
	if _, err := config.Load(path); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK\n", path)
	return 0
}

func defaultConfig(stdout io.Writer) int {
	_, _ = stdout.Write(config.Default())
	return 0
}
