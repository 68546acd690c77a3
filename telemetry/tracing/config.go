package tracing

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Protocols and compressions accepted in Config.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"

	CompressionGzip = "gzip"
	CompressionNone = "none"
)

// SampleNone is the SampleRatio that keeps no call. The zero SampleRatio
// means "unset" (the default, 1), so a ratio of 0 needs its own value.
const SampleNone = -1.0

// Defaults applied by New and NewWithExporter to zero fields.
const (
	DefaultServiceName   = "sipvigil"
	DefaultQueueSize     = 65536
	DefaultBatchSize     = 2048
	DefaultBatchTimeout  = time.Second
	DefaultExportTimeout = 10 * time.Second
	// defaultHTTPEndpoint and defaultGRPCEndpoint are the OTLP defaults
	// (a local collector, plaintext).
	defaultHTTPEndpoint = "http://localhost:4318/v1/traces"
	defaultGRPCEndpoint = "http://localhost:4317"
	tracesPath          = "/v1/traces"
	// defaultRetryInterval is the first back-off of a retried export.
	defaultRetryInterval = time.Second
)

// Config is what the proxy's YAML `tracing:` section and the OTel
// environment variables produce. Zero fields take the documented defaults.
type Config struct {
	Enabled bool
	// Endpoint is "host:port" (TLS unless Insecure) or a URL: "http://"
	// is plaintext, "https://" TLS. For OTLP/HTTP a URL without a path
	// posts to /v1/traces; any other path is used as is. Empty: the local
	// collector (http://localhost:4318 or :4317 for gRPC).
	Endpoint string
	// Protocol is "http/protobuf" (default) or "grpc".
	Protocol string
	Headers  map[string]string
	// Insecure selects plaintext for a host:port Endpoint. It is an error
	// with an https:// Endpoint or with TLS files.
	Insecure bool
	// CAFile is the CA bundle to trust instead of the system roots;
	// CertFile and KeyFile, both or neither, a client certificate (mTLS).
	CAFile, CertFile, KeyFile string
	// Compression is "none" (default, as in the OTLP specification: for a
	// collector on the same host or network) or "gzip" (for a remote
	// backend; it costs more CPU than the rest of tracing together).
	Compression string
	// SampleRatio is the fraction of calls traced, in (0, 1]; 0 means
	// unset (1). Use SampleNone to keep no call. Sampling is by trace ID,
	// so instances with the same ratio keep the same calls.
	SampleRatio float64
	// BatchSize is the most spans one upload carries (default 2048; a
	// batch also ends at 1 MiB of encoded spans, and one transaction's
	// spans are never split); QueueSize is how many spans of full batches
	// may wait for the sender (65536) before Export drops batches.
	// BatchTimeout is the longest a span waits for its batch (1s),
	// ExportTimeout the longest one upload may take, retries included
	// (10s).
	QueueSize     int
	BatchSize     int
	BatchTimeout  time.Duration
	ExportTimeout time.Duration
	// ServiceName defaults to ResourceAttributes["service.name"], then
	// "sipvigil".
	ServiceName string
	// ResourceAttributes are added to the resource. They may override
	// host.name and service.instance.id, not service.version.
	ResourceAttributes map[string]string
	// Redact is "none" (default), "hash" or "drop"; see Redact.
	Redact string
}

// withDefaults fills zero fields and checks the result. The errors name
// the YAML keys of the tracing section.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch c.Protocol {
	case "":
		c.Protocol = ProtocolHTTP
	case ProtocolHTTP, ProtocolGRPC:
	default:
		bad("tracing: protocol %q: want %s or %s", c.Protocol, ProtocolHTTP, ProtocolGRPC)
	}
	switch c.Compression {
	case "":
		c.Compression = CompressionNone
	case CompressionGzip, CompressionNone:
	default:
		bad("tracing: compression %q: want %s or %s", c.Compression, CompressionGzip, CompressionNone)
	}
	switch c.Redact {
	case "":
		c.Redact = RedactNone
	case RedactNone, RedactHash, RedactDrop:
	default:
		bad("tracing: redact %q: want %s, %s or %s", c.Redact, RedactNone, RedactHash, RedactDrop)
	}
	switch {
	case c.SampleRatio == 0:
		c.SampleRatio = 1
	case c.SampleRatio < 0:
		c.SampleRatio = SampleNone
	case c.SampleRatio > 1 || c.SampleRatio != c.SampleRatio: // NaN
		bad("tracing: sample_ratio %v: want a fraction in [0, 1]", c.SampleRatio)
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.BatchSize == 0 {
		c.BatchSize = min(DefaultBatchSize, c.QueueSize)
	}
	if c.QueueSize < 0 || c.BatchSize < 0 {
		bad("tracing: queue_size %d, batch_size %d: want positive sizes", c.QueueSize, c.BatchSize)
	} else if c.BatchSize > c.QueueSize {
		bad("tracing: batch_size %d exceeds queue_size %d", c.BatchSize, c.QueueSize)
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = DefaultBatchTimeout
	}
	if c.ExportTimeout == 0 {
		c.ExportTimeout = DefaultExportTimeout
	}
	if c.BatchTimeout < 0 || c.ExportTimeout < 0 {
		bad("tracing: batch_timeout %v, export_timeout %v: want positive durations", c.BatchTimeout, c.ExportTimeout)
	}
	if c.ServiceName == "" {
		c.ServiceName = c.ResourceAttributes[attrServiceName]
	}
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		bad("tracing: cert_file and key_file go together (got cert_file %q, key_file %q)", c.CertFile, c.KeyFile)
	}
	if c.Endpoint == "" {
		c.Endpoint = defaultHTTPEndpoint
		if c.Protocol == ProtocolGRPC {
			c.Endpoint = defaultGRPCEndpoint
		}
	}
	if _, err := parseEndpoint(c); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// endpoint is Config.Endpoint resolved for the OTLP clients.
type endpoint struct {
	hostPort string // host:port
	path     string // HTTP only: the URL path to POST to
	insecure bool
}

// parseEndpoint resolves c.Endpoint against c.Protocol, c.Insecure and the
// TLS files. c has its defaults.
func parseEndpoint(c Config) (endpoint, error) {
	tlsFiles := c.CAFile != "" || c.CertFile != "" || c.KeyFile != ""
	if !strings.Contains(c.Endpoint, "://") {
		if _, _, err := net.SplitHostPort(c.Endpoint); err != nil {
			return endpoint{}, fmt.Errorf("tracing: endpoint %q: want host:port or an http(s):// URL: %w", c.Endpoint, err)
		}
		if c.Insecure && tlsFiles {
			return endpoint{}, fmt.Errorf("tracing: endpoint %q: insecure excludes ca_file, cert_file and key_file", c.Endpoint)
		}
		return endpoint{hostPort: c.Endpoint, path: tracesPath, insecure: c.Insecure}, nil
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return endpoint{}, fmt.Errorf("tracing: endpoint: %w", err)
	}
	if u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return endpoint{}, fmt.Errorf("tracing: endpoint %q: want an http:// or https:// URL with a host", c.Endpoint)
	}
	ep := endpoint{hostPort: u.Host, path: u.EscapedPath(), insecure: u.Scheme == "http"}
	if ep.path == "" {
		ep.path = tracesPath
	}
	switch {
	case ep.insecure && tlsFiles:
		return endpoint{}, fmt.Errorf("tracing: endpoint %q is plaintext: ca_file, cert_file and key_file need https://", c.Endpoint)
	case !ep.insecure && c.Insecure:
		return endpoint{}, fmt.Errorf("tracing: endpoint %q is https:// but insecure is set", c.Endpoint)
	}
	return ep, nil
}

// OTel environment variables read by FromEnv.
const (
	envEndpoint          = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint    = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envProtocol          = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol    = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envHeaders           = "OTEL_EXPORTER_OTLP_HEADERS"
	envTracesHeaders     = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
	envInsecure          = "OTEL_EXPORTER_OTLP_INSECURE"
	envTracesInsecure    = "OTEL_EXPORTER_OTLP_TRACES_INSECURE"
	envCertificate       = "OTEL_EXPORTER_OTLP_CERTIFICATE"
	envTracesCertificate = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"
	envClientCert        = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
	envTracesClientCert  = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE"
	envClientKey         = "OTEL_EXPORTER_OTLP_CLIENT_KEY"
	envTracesClientKey   = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"
	envCompression       = "OTEL_EXPORTER_OTLP_COMPRESSION"
	envTracesCompression = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"
	envTimeout           = "OTEL_EXPORTER_OTLP_TIMEOUT"
	envTracesTimeout     = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
	envSampler           = "OTEL_TRACES_SAMPLER"
	envSamplerArg        = "OTEL_TRACES_SAMPLER_ARG"
	envServiceName       = "OTEL_SERVICE_NAME"
	envResourceAttrs     = "OTEL_RESOURCE_ATTRIBUTES"
)

// FromEnv fills what cfg leaves unset from the standard OpenTelemetry
// environment variables, read through getenv (os.Getenv in production).
// Explicit config wins: a field already set is kept, and for Headers and
// ResourceAttributes the keys of cfg win over those of the environment.
// The signal-specific OTEL_EXPORTER_OTLP_TRACES_* variables win over the
// generic ones.
//
// Read: OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _PROTOCOL, _HEADERS,
// _INSECURE, _CERTIFICATE, _CLIENT_CERTIFICATE, _CLIENT_KEY, _COMPRESSION,
// _TIMEOUT; OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG;
// OTEL_SERVICE_NAME; OTEL_RESOURCE_ATTRIBUTES. As the OTel specification
// says, the generic endpoint is a base URL (/v1/traces is appended for
// OTLP/HTTP) and the traces endpoint is used as is.
//
// An endpoint taken from the environment turns tracing on; otherwise
// Enabled is left as it is. Every sampler maps onto SampleRatio, since all
// sipvigil spans are roots or local children. Bad values are errors naming
// the variable; variables that cfg overrides are not read.
func FromEnv(cfg Config, getenv func(string) string) (Config, error) {
	env := func(traces, generic string) (string, string) {
		if v := strings.TrimSpace(getenv(traces)); v != "" {
			return v, traces
		}
		return strings.TrimSpace(getenv(generic)), generic
	}
	var errs []error
	bad := func(name string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("tracing: %s: %s", name, fmt.Sprintf(format, args...)))
	}

	if cfg.Protocol == "" {
		if v, name := env(envTracesProtocol, envProtocol); v != "" {
			if v != ProtocolHTTP && v != ProtocolGRPC {
				bad(name, "unsupported protocol %q (want %s or %s)", v, ProtocolHTTP, ProtocolGRPC)
			} else {
				cfg.Protocol = v
			}
		}
	}

	if cfg.Endpoint == "" {
		if v := strings.TrimSpace(getenv(envTracesEndpoint)); v != "" {
			u, err := envURL(v)
			if err != nil {
				bad(envTracesEndpoint, "%v", err)
			} else {
				if u.Path == "" {
					u.Path = "/" // used as is: the root, not /v1/traces
				}
				cfg.Endpoint = u.String()
				cfg.Enabled = true
			}
		} else if v := strings.TrimSpace(getenv(envEndpoint)); v != "" {
			u, err := envURL(v)
			if err != nil {
				bad(envEndpoint, "%v", err)
			} else {
				if cfg.Protocol != ProtocolGRPC {
					u.Path = strings.TrimSuffix(u.Path, "/") + tracesPath
					u.RawPath = ""
				}
				cfg.Endpoint = u.String()
				cfg.Enabled = true
			}
		}
	}

	var envHdrs map[string]string
	for _, name := range []string{envTracesHeaders, envHeaders} { // traces first: it wins
		v := getenv(name)
		if strings.TrimSpace(v) == "" {
			continue
		}
		h, err := parseKeyValues(v, true)
		if err != nil {
			bad(name, "%v", err)
			continue
		}
		envHdrs = mergeUnder(envHdrs, h)
	}
	if len(envHdrs) > 0 {
		cfg.Headers = mergeUnder(cfg.Headers, envHdrs)
	}

	if !cfg.Insecure {
		if v, name := env(envTracesInsecure, envInsecure); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(name, "want true or false, got %q", v)
			}
			cfg.Insecure = b
		}
	}
	for _, f := range []struct {
		dst             *string
		traces, generic string
	}{
		{&cfg.CAFile, envTracesCertificate, envCertificate},
		{&cfg.CertFile, envTracesClientCert, envClientCert},
		{&cfg.KeyFile, envTracesClientKey, envClientKey},
	} {
		if *f.dst == "" {
			*f.dst, _ = env(f.traces, f.generic)
		}
	}

	if cfg.Compression == "" {
		if v, name := env(envTracesCompression, envCompression); v != "" {
			if v != CompressionGzip && v != CompressionNone {
				bad(name, "unsupported compression %q (want %s or %s)", v, CompressionGzip, CompressionNone)
			} else {
				cfg.Compression = v
			}
		}
	}
	if cfg.ExportTimeout == 0 {
		if v, name := env(envTracesTimeout, envTimeout); v != "" {
			ms, err := strconv.ParseUint(v, 10, 32)
			if err != nil || ms == 0 {
				bad(name, "want a positive number of milliseconds, got %q", v)
			} else {
				cfg.ExportTimeout = time.Duration(ms) * time.Millisecond
			}
		}
	}

	if cfg.SampleRatio == 0 {
		if v := strings.ToLower(strings.TrimSpace(getenv(envSampler))); v != "" {
			r, err := samplerRatio(v, strings.TrimSpace(getenv(envSamplerArg)))
			if err != nil {
				errs = append(errs, fmt.Errorf("tracing: %w", err))
			} else {
				cfg.SampleRatio = r
			}
		}
	}

	if cfg.ServiceName == "" {
		cfg.ServiceName = strings.TrimSpace(getenv(envServiceName))
	}
	if v := getenv(envResourceAttrs); strings.TrimSpace(v) != "" {
		attrs, err := parseKeyValues(v, false)
		if err != nil {
			bad(envResourceAttrs, "%v", err)
		} else {
			cfg.ResourceAttributes = mergeUnder(cfg.ResourceAttributes, attrs)
		}
	}
	return cfg, errors.Join(errs...)
}

// envURL parses an endpoint variable, which the OTel specification
// requires to be a URL.
func envURL(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil {
		return nil, err
	}
	if u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("want an http:// or https:// URL, got %q", v)
	}
	return u, nil
}

// samplerRatio maps an OTEL_TRACES_SAMPLER value onto a SampleRatio.
// sipvigil starts every trace itself, so a parent-based sampler decides
// like its root sampler.
func samplerRatio(sampler, arg string) (float64, error) {
	switch sampler {
	case "always_on", "parentbased_always_on":
		return 1, nil
	case "always_off", "parentbased_always_off":
		return SampleNone, nil
	case "traceidratio", "parentbased_traceidratio":
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 || r != r {
			return 0, fmt.Errorf("%s: want a ratio in [0, 1], got %q", envSamplerArg, arg)
		}
		if r == 0 {
			return SampleNone, nil
		}
		return r, nil
	default:
		return 0, fmt.Errorf("%s: unsupported sampler %q (want always_on, always_off, traceidratio or their parentbased_ forms)", envSampler, sampler)
	}
}

// parseKeyValues parses "k=v,k2=v2" with percent-encoded values (the W3C
// baggage format OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES
// use). Empty members are skipped; a member without "=" or with an empty
// key is an error. Header keys must be HTTP tokens.
func parseKeyValues(s string, header bool) (map[string]string, error) {
	out := make(map[string]string)
	for member := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(member) == "" {
			continue
		}
		k, v, ok := strings.Cut(member, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("member %q: want key=value", member)
		}
		if header && !isToken(k) {
			return nil, fmt.Errorf("header name %q: not an HTTP token", k)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("member %q: %w", member, err)
		}
		out[k] = dv
	}
	return out, nil
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}

// mergeUnder returns dst with the keys of src that dst lacks: dst wins.
// dst is copied, never modified, since it belongs to the caller.
func mergeUnder(dst, src map[string]string) map[string]string {
	out := make(map[string]string, len(dst)+len(src))
	for k, v := range src {
		out[k] = v
	}
	for k, v := range dst {
		out[k] = v
	}
	return out
}
