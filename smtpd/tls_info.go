package smtpd

import "github.com/prometheus/client_golang/prometheus"

var (
	certInfoDesc = prometheus.NewDesc("mxd_tls_certificate_info",
		"1 for each STARTTLS certificate served now (changes with a SIGHUP reload); spki_sha256 is what a TLSA 3 1 1 record must hold.",
		[]string{"file", "key_type", "spki_sha256"}, nil)
	certExpiryDesc = prometheus.NewDesc("mxd_tls_certificate_not_after_seconds",
		"When each STARTTLS certificate served now expires (Unix time).",
		[]string{"file", "key_type", "spki_sha256"}, nil)
)

// CertCollector exports the certificates s serves at the time of each
// scrape, so a reload shows at the next scrape.
func CertCollector(s *CertStore) prometheus.Collector { return certCollector{s} }

type certCollector struct{ s *CertStore }

func (c certCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- certInfoDesc
	ch <- certExpiryDesc
}

func (c certCollector) Collect(ch chan<- prometheus.Metric) {
	for _, sc := range c.s.Served() {
		ch <- prometheus.MustNewConstMetric(certInfoDesc, prometheus.GaugeValue, 1, sc.File, sc.KeyType, sc.SPKISHA256)
		ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(sc.NotAfter.Unix()), sc.File, sc.KeyType, sc.SPKISHA256)
	}
}
