package tracing

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		env  map[string]string
		want Config
		err  string // substring of the error; "" for none
	}{
		{
			name: "nothing set",
			want: Config{},
		},
		{
			name: "generic endpoint turns tracing on and gets the traces path",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
			want: Config{Enabled: true, Endpoint: "http://collector:4318/v1/traces"},
		},
		{
			name: "generic endpoint with a base path",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://gw.example/otlp/"},
			want: Config{Enabled: true, Endpoint: "https://gw.example/otlp/v1/traces"},
		},
		{
			name: "generic endpoint for grpc is used as is",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4317",
				"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			},
			want: Config{Enabled: true, Endpoint: "https://collector:4317", Protocol: "grpc"},
		},
		{
			name: "traces endpoint wins and is used as is",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://generic:4318",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318/custom",
			},
			want: Config{Enabled: true, Endpoint: "http://traces:4318/custom"},
		},
		{
			name: "traces endpoint without a path means the root",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318"},
			want: Config{Enabled: true, Endpoint: "http://traces:4318/"},
		},
		{
			name: "config endpoint wins and env does not enable",
			cfg:  Config{Endpoint: "collector:4317", Protocol: "grpc"},
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318",
				"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
			},
			want: Config{Endpoint: "collector:4317", Protocol: "grpc"},
		},
		{
			name: "traces protocol wins",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_PROTOCOL":        "http/protobuf",
				"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
			},
			want: Config{Protocol: "grpc"},
		},
		{
			name: "headers decoded and merged, traces and config win",
			cfg:  Config{Headers: map[string]string{"X-Tenant": "cfg"}},
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_HEADERS":        "Authorization=Basic%20dXNlcjpwdw%3D%3D, X-Tenant=env,X-Scope=generic",
				"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "X-Scope=traces",
			},
			want: Config{Headers: map[string]string{
				"Authorization": "Basic dXNlcjpwdw==", "X-Tenant": "cfg", "X-Scope": "traces",
			}},
		},
		{
			name: "sampler always_off",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "always_off"},
			want: Config{SampleRatio: SampleNone},
		},
		{
			name: "sampler parentbased_always_off",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_off"},
			want: Config{SampleRatio: SampleNone},
		},
		{
			name: "sampler always_on",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "always_on"},
			want: Config{SampleRatio: 1},
		},
		{
			name: "sampler parentbased_always_on",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
			want: Config{SampleRatio: 1},
		},
		{
			name: "sampler traceidratio",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			want: Config{SampleRatio: 0.25},
		},
		{
			name: "sampler parentbased_traceidratio, ratio 0",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "ParentBased_TraceIdRatio", "OTEL_TRACES_SAMPLER_ARG": "0"},
			want: Config{SampleRatio: SampleNone},
		},
		{
			name: "sampler traceidratio without arg",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio"},
			want: Config{SampleRatio: 1},
		},
		{
			name: "config ratio wins",
			cfg:  Config{SampleRatio: 0.1},
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "always_on"},
			want: Config{SampleRatio: 0.1},
		},
		{
			name: "service name and resource attributes",
			cfg:  Config{ResourceAttributes: map[string]string{"deployment.environment.name": "prod"}},
			env: map[string]string{
				"OTEL_SERVICE_NAME":        "edge-proxy",
				"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=staging,k8s.pod.name=sv%2D1, region = eu ,",
			},
			want: Config{ServiceName: "edge-proxy", ResourceAttributes: map[string]string{
				"deployment.environment.name": "prod", "k8s.pod.name": "sv-1", "region": "eu",
			}},
		},
		{
			name: "config service name wins",
			cfg:  Config{ServiceName: "mine"},
			env:  map[string]string{"OTEL_SERVICE_NAME": "theirs"},
			want: Config{ServiceName: "mine"},
		},
		{
			name: "tls, compression, timeout, insecure",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_CERTIFICATE":               "/etc/ca.pem",
				"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE": "/etc/client.pem",
				"OTEL_EXPORTER_OTLP_CLIENT_KEY":                "/etc/client.key",
				"OTEL_EXPORTER_OTLP_COMPRESSION":               "none",
				"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT":            "2500",
				"OTEL_EXPORTER_OTLP_INSECURE":                  "true",
			},
			want: Config{
				CAFile: "/etc/ca.pem", CertFile: "/etc/client.pem", KeyFile: "/etc/client.key",
				Compression: "none", ExportTimeout: 2500 * time.Millisecond, Insecure: true,
			},
		},
		{
			name: "config wins for tls, compression, timeout",
			cfg:  Config{CAFile: "/cfg/ca.pem", Compression: "gzip", ExportTimeout: time.Second},
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/ca.pem",
				"OTEL_EXPORTER_OTLP_COMPRESSION": "none",
				"OTEL_EXPORTER_OTLP_TIMEOUT":     "bogus", // overridden, so not read
			},
			want: Config{CAFile: "/cfg/ca.pem", Compression: "gzip", ExportTimeout: time.Second},
		},
		{
			name: "bad protocol",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			err:  "OTEL_EXPORTER_OTLP_PROTOCOL",
		},
		{
			name: "bad traces protocol",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"},
			err:  "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
		},
		{
			name: "endpoint not a URL",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
			err:  "OTEL_EXPORTER_OTLP_ENDPOINT",
		},
		{
			name: "traces endpoint bad scheme",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "udp://c:1"},
			err:  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		},
		{
			name: "header without =",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "a=b,broken"},
			err:  "OTEL_EXPORTER_OTLP_HEADERS",
		},
		{
			name: "header bad escape",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "a=%zz"},
			err:  "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
		},
		{
			name: "header name not a token",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "bad name=1"},
			err:  "OTEL_EXPORTER_OTLP_HEADERS",
		},
		{
			name: "unsupported sampler",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "jaeger_remote"},
			err:  "OTEL_TRACES_SAMPLER",
		},
		{
			name: "sampler arg not a number",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"},
			err:  "OTEL_TRACES_SAMPLER_ARG",
		},
		{
			name: "sampler arg out of range",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"},
			err:  "OTEL_TRACES_SAMPLER_ARG",
		},
		{
			name: "resource attribute without key",
			env:  map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "=v"},
			err:  "OTEL_RESOURCE_ATTRIBUTES",
		},
		{
			name: "bad compression",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "br"},
			err:  "OTEL_EXPORTER_OTLP_COMPRESSION",
		},
		{
			name: "bad timeout",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"},
			err:  "OTEL_EXPORTER_OTLP_TIMEOUT",
		},
		{
			name: "bad insecure",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_TRACES_INSECURE": "yes please"},
			err:  "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromEnv(tc.cfg, func(k string) string { return tc.env[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromEnv: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// FromEnv must not write into the caller's maps.
func TestFromEnvCopiesMaps(t *testing.T) {
	headers := map[string]string{"a": "1"}
	attrs := map[string]string{"k": "v"}
	env := map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "b=2", "OTEL_RESOURCE_ATTRIBUTES": "k2=v2"}
	got, err := FromEnv(Config{Headers: headers, ResourceAttributes: attrs}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(headers) != 1 || len(attrs) != 1 {
		t.Errorf("caller's maps modified: %v %v", headers, attrs)
	}
	if len(got.Headers) != 2 || len(got.ResourceAttributes) != 2 {
		t.Errorf("merged maps %v %v", got.Headers, got.ResourceAttributes)
	}
}

// Everything FromEnv produces is accepted by New's validation.
func TestFromEnvThenDefaults(t *testing.T) {
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
		"OTEL_TRACES_SAMPLER":         "always_off",
	}
	cfg, err := FromEnv(Config{}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	ep, err := parseEndpoint(c)
	if err != nil || ep != (endpoint{"127.0.0.1:4318", "/v1/traces", true}) {
		t.Errorf("endpoint %+v, %v", ep, err)
	}
	if c.SampleRatio != SampleNone {
		t.Errorf("ratio %v", c.SampleRatio)
	}
}
