package setting

import (
	"testing"
	"time"
)

type conf struct {
	Inner    struct{ Addr string }
	Name     string
	Size     int64
	Len      int
	Min, Max time.Duration
	List     []string
}

func (c *conf) check() error {
	ck := For(c)
	ck.Required(&c.Name)
	ck.Required(&c.Inner.Addr)
	Positive(ck, &c.Size)
	Between(ck, &c.Len, 1, 128)
	AtLeast(ck, &c.Max, &c.Min)
	if len(c.List) == 0 {
		ck.Add(&c.List, Missing+": at least one")
	}
	return ck.Err()
}

func TestChecker(t *testing.T) {
	good := conf{Inner: struct{ Addr string }{"x"}, Name: "a", Size: 1, Len: 64, Min: time.Second, Max: time.Minute, List: []string{"a"}}
	if err := good.check(); err != nil {
		t.Fatalf("check of good settings = %v", err)
	}
	bad := conf{Len: 200, Min: time.Minute, Max: time.Second}
	err := bad.check()
	got, others := All(err)
	if len(others) != 0 {
		t.Errorf("All found errors that are no *Error: %v", others)
	}
	want := []struct {
		field any
		text  string
	}{
		{&bad.Name, "Name is required"},
		{&bad.Inner.Addr, "Inner.Addr is required"},
		{&bad.Size, "Size 0: want more than 0"},
		{&bad.Len, "Len 200: want 1 to 128"},
		{&bad.Max, "Max 1s: want at least Min (1m0s)"},
		{&bad.List, "List is required: at least one"},
	}
	if len(got) != len(want) {
		t.Fatalf("check = %v, want %d problems", err, len(want))
	}
	for i, w := range want {
		if got[i].Field != w.field || got[i].Error() != w.text {
			t.Errorf("problem %d = %q (field %p), want %q (field %p)", i, got[i].Error(), got[i].Field, w.text, w.field)
		}
	}
}
