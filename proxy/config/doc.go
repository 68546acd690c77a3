// Package config turns sipvigil's YAML configuration into an immutable,
// fully validated Config value.
//
// It exists so that every other package can trust its input: defaults are
// applied and every value is range-checked, cross-referenced (routes name
// existing destination sets) and resolved (hop host names become addresses)
// once, at load time, instead of failing later on the packet path.
//
// Operators come from Kamailio and OpenSIPS where a typo in a config file is
// found by reading a log line; here, like CoreDNS, every error carries the
// position it refers to ("FILE:LINE:COL: message") and unknown keys are
// rejected, because a silently ignored "failover_0n" is a production outage
// waiting for the first 503.
//
// The embedded default.yaml is both the built-in configuration and the
// reference documentation printed by "sipvigil default-config".
package config
