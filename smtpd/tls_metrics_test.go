package smtpd

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"mxq/internal/smtptest"
)

// Every STARTTLS handshake is counted by version and resumption, with its
// time.
func TestHandshakeMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	_, addr := serveMem(t, testConfig(), Deps{Metrics: m, TLS: &tls.Config{Certificates: []tls.Certificate{testCert(t)}}})

	client := &tls.Config{InsecureSkipVerify: true, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	for range 3 {
		starttlsHello(t, addr, client)
	}
	counts := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "mxd_tls_handshakes_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			var labels []string
			for _, lp := range mt.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			counts[strings.Join(labels, ",")] = mt.GetCounter().GetValue()
		}
	}
	if full, resumed := counts["resumed=false,version=TLS 1.3"], counts["resumed=true,version=TLS 1.3"]; full != 1 || resumed != 2 {
		t.Errorf("handshakes %v: want 1 full and 2 resumed", counts)
	}
	if got := histogramCount(t, reg, "mxd_tls_handshake_seconds"); got != 3 {
		t.Errorf("handshake times observed: %d, want 3", got)
	}
}

// starttlsHello upgrades a session with cfg and says EHLO in TLS, which
// takes in a TLS 1.3 ticket sent after the handshake.
func starttlsHello(t *testing.T, addr string, cfg *tls.Config) {
	t.Helper()
	c, _ := smtptest.Dial(t, addr)
	c.Cmd("EHLO client.example.com")
	c.StartTLS(cfg, "")
	c.Expect("EHLO client.example.com", "250")
	c.Cmd("QUIT")
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}
