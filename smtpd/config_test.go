package smtpd

import (
	"errors"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"mxq/setting"
)

// testConfig is Defaults with the two settings that have none.
func testConfig() Config {
	c := Defaults()
	c.Hostname, c.Domains = "mx.example.org", []string{"lists.example.org"}
	return c
}

// A Config is used as it is given: a setting that Defaults gives a value
// is refused when zero, naming the field, and never takes the default
// behind the caller's back. A setting added to Defaults and forgotten in
// Check would fail here. The exceptions are those whose zero means
// something: no waiting, no grace, no version to report.
func TestCheckRefusesZero(t *testing.T) {
	if err := (&Config{}).Check(); err == nil {
		t.Fatal("Check of an empty Config passed")
	}
	good := testConfig()
	if err := good.Check(); err != nil {
		t.Fatalf("Check of the defaults: %v", err)
	}
	zeroMeans := map[string]bool{"RideThrough": true, "DataGrace": true, "ErrorSleepTime": true, "Version": true}
	d := reflect.ValueOf(good)
	for i := 0; i < d.NumField(); i++ {
		name := d.Type().Field(i).Name
		if d.Field(i).IsZero() || zeroMeans[name] {
			continue
		}
		c := good
		reflect.ValueOf(&c).Elem().Field(i).SetZero()
		var se *setting.Error
		err := c.Check()
		if d.Field(i).Kind() == reflect.Struct && errors.As(err, &se) {
			continue // a group of settings (Milter): its fields name themselves
		}
		if !errors.As(err, &se) || se.Name != name {
			t.Errorf("Check with %s zero = %v, want it refused", name, err)
		}
	}
	m := reflect.ValueOf(good.Milter)
	for i := 0; i < m.NumField(); i++ {
		name := m.Type().Field(i).Name
		if m.Field(i).IsZero() || name == "RideThrough" {
			continue
		}
		c := good
		reflect.ValueOf(&c.Milter).Elem().Field(i).SetZero()
		var se *setting.Error
		if err := c.Check(); !errors.As(err, &se) || se.Name != name {
			t.Errorf("Check with Milter.%s zero = %v, want it refused", name, err)
		}
	}
	for name := range zeroMeans {
		c := good
		reflect.ValueOf(&c).Elem().FieldByName(name).SetZero()
		if err := c.Check(); err != nil {
			t.Errorf("Check with %s zero: %v", name, err)
		}
	}
}

// New refuses what Check refuses, and a missing live object.
func TestNewChecks(t *testing.T) {
	mq := newMemQueue()
	deps := Deps{Queue: mq, Recipients: NewRecipients(mq, time.Hour), Logger: slog.New(slog.DiscardHandler)}
	bad := testConfig()
	bad.IPv6PrefixLen = 129
	if _, err := New(bad, deps); err == nil {
		t.Error("New with ipv6 prefix 129 passed")
	}
	noQueue := deps
	noQueue.Queue = nil
	if _, err := New(testConfig(), noQueue); err == nil {
		t.Error("New without a queue passed")
	}
	if _, err := New(testConfig(), deps); err != nil {
		t.Errorf("New: %v", err)
	}
}
