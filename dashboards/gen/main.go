// Command gen writes the sipvigil Grafana dashboards, built with the
// grafana-foundation-sdk in package sipvigil/dashboards, to
// dashboards/*.json (make dashboards).
//
//	go run ./dashboards/gen [-out dashboards]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"sipvigil/dashboards"
)

func main() {
	out := flag.String("out", "dashboards", "directory to write the JSON files to")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	all := dashboards.All()
	// Remove dashboards the package no longer builds (renamed or dropped).
	old, err := filepath.Glob(filepath.Join(dir, "sipvigil-*.json"))
	if err != nil {
		return err
	}
	for _, path := range old {
		if _, ok := all[filepath.Base(path)]; !ok {
			if err := os.Remove(path); err != nil {
				return err
			}
			fmt.Println("removed", path)
		}
	}
	for _, name := range dashboards.Files() {
		raw, err := dashboards.Marshal(all[name])
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		path := filepath.Join(dir, name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, raw) {
			continue // unchanged: keep the mtime
		}
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", path)
	}
	return nil
}
