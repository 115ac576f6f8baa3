package daemon

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestParseFlags(t *testing.T) {
	var out bytes.Buffer
	f, err := ParseFlags("listd", "Usage: listd\n", []string{"-check-config"}, &out)
	if err != nil || f.Config != "/etc/mxq/listd.toml" || !f.CheckConfig || f.Version {
		t.Errorf("ParseFlags = %+v, %v", f, err)
	}
	if _, err := ParseFlags("listd", "Usage: listd\n", []string{"-config", "x.toml", "extra"}, &out); err == nil || !strings.Contains(err.Error(), `unexpected argument "extra"`) {
		t.Errorf("an extra argument: %v", err)
	}
	out.Reset()
	if _, err := ParseFlags("mxd", "Usage: mxd\n", []string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	if !strings.HasPrefix(out.String(), "Usage: mxd\n") || !strings.Contains(out.String(), "docs/examples/mxd.toml") {
		t.Errorf("-h printed:\n%s", out.String())
	}
}

// /healthz answers "ok", or 503 with the words of health's error;
// /metrics serves the registry.
func TestMetrics(t *testing.T) {
	var unhealthy atomic.Bool
	reg := NewRegistry()
	m, err := ListenMetrics("127.0.0.1:0", reg, func(context.Context) error {
		if unhealthy.Load() {
			return errors.New("queue unreachable")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go m.Serve(errc)
	t.Cleanup(func() { m.Close() })
	get := func(path string) (int, string) {
		t.Helper()
		res, err := http.Get("http://" + m.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, strings.TrimSpace(string(b))
	}
	if code, body := get("/healthz"); code != 200 || body != "ok" {
		t.Errorf("healthy: %d %q", code, body)
	}
	unhealthy.Store(true)
	if code, body := get("/healthz"); code != 503 || body != "queue unreachable" {
		t.Errorf("unhealthy: %d %q, want 503 \"queue unreachable\"", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d, %d bytes", code, len(body))
	}
	if _, err := ListenMetrics(m.Addr(), prometheus.NewRegistry(), nil); err == nil || !strings.Contains(err.Error(), "metrics_listen") {
		t.Errorf("listening twice on %s: %v", m.Addr(), err)
	}
}
