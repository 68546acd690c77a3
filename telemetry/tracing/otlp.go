package tracing

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"google.golang.org/grpc/credentials"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
)

// newClient builds the OTLP client for c (defaults applied): the official
// otlptracehttp or otlptracegrpc client, which owns the protocol, headers,
// retries and timeouts, and for gRPC the transport and compression too.
// Every setting is passed explicitly, so the client's own reading of
// OTEL_* variables never overrides the configuration FromEnv and the YAML
// produced.
// closeIdle is always nil today; it stays for transports the exporter may
// own in future.
func newClient(c Config) (client otlptrace.Client, closeIdle func(), err error) {
	ep, err := parseEndpoint(c)
	if err != nil {
		return nil, nil, err
	}
	var tlsCfg *tls.Config
	if !ep.insecure {
		if tlsCfg, err = tlsConfig(c); err != nil {
			return nil, nil, err
		}
	}
	headers := c.Headers
	if headers == nil {
		headers = map[string]string{} // not nil: nil would let env headers in
	}
	// Retries stop at the export timeout: the exporter has one sender
	// goroutine, and while it retries the queue fills and Export starts
	// dropping batches.
	switch c.Protocol {
	case ProtocolGRPC:
		opts := []otlptracegrpc.Option{
			otlptracegrpc.WithEndpoint(ep.hostPort),
			otlptracegrpc.WithHeaders(headers),
			otlptracegrpc.WithTimeout(c.ExportTimeout),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{
				Enabled:         true,
				InitialInterval: min(c.ExportTimeout/4, defaultRetryInterval),
				MaxInterval:     c.ExportTimeout,
				MaxElapsedTime:  c.ExportTimeout,
			}),
		}
		if ep.insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		} else {
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		if c.Compression == CompressionGzip {
			opts = append(opts, otlptracegrpc.WithCompressor(grpcgzip.Name))
		}
		return otlptracegrpc.NewClient(opts...), nil, nil
	default:
		opts := []otlptracehttp.Option{
			otlptracehttp.WithEndpoint(ep.hostPort),
			otlptracehttp.WithURLPath(ep.path),
			otlptracehttp.WithHeaders(headers),
			otlptracehttp.WithTimeout(c.ExportTimeout),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{
				Enabled:         true,
				InitialInterval: min(c.ExportTimeout/4, defaultRetryInterval),
				MaxInterval:     c.ExportTimeout,
				MaxElapsedTime:  c.ExportTimeout,
			}),
			otlptracehttp.WithCompression(otlptracehttp.NoCompression),
		}
		if c.Compression == CompressionGzip {
			opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}
		if ep.insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		} else if tlsCfg != nil {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsCfg))
		}
		return otlptracehttp.NewClient(opts...), nil, nil
	}
}

// tlsConfig loads the CA bundle and client certificate of c. With no files
// it trusts the system roots.
func tlsConfig(c Config) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tracing: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tracing: ca_file %s: no PEM certificate found", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tracing: cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
