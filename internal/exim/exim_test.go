package exim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// .ci/install-deps unpacks Exim where the helper looks for it.
func TestInstallDepsUnpacksIntoDir(t *testing.T) {
	b, err := os.ReadFile("../../.ci/install-deps")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "exim_dir="+Dir+"\n") {
		t.Errorf(".ci/install-deps does not unpack Exim into %s", Dir)
	}
}

// Exim reads the configuration New writes, for every kind of session
// (New runs exim -bV on it, which reads the file but no certificate).
func TestNew(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root (Exim with its own configuration runs as Debian-exim); run make test")
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{{Server: "127.0.0.1:25"}, {Server: "127.0.0.1:25", TLS: true}, {Server: "127.0.0.1:25", TLS: true, CACert: ca}} {
		New(t, c)
	}
}

// Lines of Exim 4.96's log (log_selector = +all), as it wrote them for a
// delivery to mxd in plaintext and over STARTTLS.
func TestDeliveryField(t *testing.T) {
	const (
		plain = `2026-12-07 05:59:15.030 [30465] 1xaRko-0007vL-2d => ~exim/bdat@lists.example.org F=<alice@example.com> P=<alice@example.com> R=server T=server S=10519 H=127.0.0.1 [127.0.0.1]:33487 I=[127.0.0.1]:54890 L K C="250 2.0.0 queued as 06h4y5dz7qfew8nj628ssmrx" QT=0.206s DT=0.033s`
		tls   = `2026-12-07 05:59:17.685 [30496] 1xaRkr-0007vq-1U => ~exim/bdat@lists.example.org F=<alice@example.com> P=<alice@example.com> R=server T=server S=10570 H=127.0.0.1 [127.0.0.1]:33487 I=[127.0.0.1]:54910 X=TLS1.3:ECDHE_X25519__ECDSA_SECP256R1_SHA256__AES_128_GCM:128 CV=yes DN="CN=mx1.example.org" L K C="250 2.0.0 queued as 06h4y5e9m5k8ddyf8hvkrvy2" QT=0.203s DT=0.042s`
		data  = `2026-12-07 06:00:53.856 [349] 1xaRmP-00005b-1a => ~exim/bdat@lists.example.org F=<alice@example.com> P=<alice@example.com> R=server T=server S=10540 H=127.0.0.1 [127.0.0.1]:46663 I=[127.0.0.1]:59426 L C="250 2.0.0 queued as 06h4y5t0k9vn0qrv31hc9vy8" QT=0.358s DT=0.215s`
		quote = `x => a@b C="250 said \"hi K\" to you" K`
	)
	for _, tt := range []struct {
		line, name, want string
		ok               bool
	}{
		{plain, "K", "", true},
		{plain, "C", "250 2.0.0 queued as 06h4y5dz7qfew8nj628ssmrx", true},
		{plain, "X", "", false},
		{plain, "S", "10519", true},
		{tls, "X", "TLS1.3:ECDHE_X25519__ECDSA_SECP256R1_SHA256__AES_128_GCM:128", true},
		{tls, "CV", "yes", true},
		{tls, "DN", "CN=mx1.example.org", true},
		{tls, "K", "", true},
		{data, "K", "", false},
		{data, "L", "", true},
		{quote, "C", `250 said \"hi K\" to you`, true},
		{quote, "K", "", true},
	} {
		got, ok := Delivery{Line: tt.line}.Field(tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Field(%q) of %q = %q, %v; want %q, %v", tt.name, tt.line, got, ok, tt.want, tt.ok)
		}
	}
}
