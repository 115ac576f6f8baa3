package smtpd

import (
	"reflect"
	"testing"
)

// Every default of Defaults is what a zero field gets: a setting added to
// Defaults and forgotten in withDefaults would stay zero for every caller
// but the commands that start from Defaults.
func TestZeroFieldsTakeDefaults(t *testing.T) {
	got, err := Config{Hostname: "mx.example.org", Domains: []string{"lists.example.org"}}.Checked()
	if err != nil {
		t.Fatal(err)
	}
	want := reflect.ValueOf(Defaults())
	have := reflect.ValueOf(got)
	for i := 0; i < want.NumField(); i++ {
		if f := want.Field(i); !f.IsZero() && !reflect.DeepEqual(f.Interface(), have.Field(i).Interface()) {
			t.Errorf("%s: a zero field became %v, want the default %v", want.Type().Field(i).Name, have.Field(i), f)
		}
	}
}
