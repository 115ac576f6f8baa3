package dnsctl

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// Rollover phases, in order; each is persisted once done.
const (
	RollPublished = "published" // the new keys' records are everywhere, and the TTL has passed
	RollReloaded  = "reloaded"  // the reload hook succeeded
	RollChecked   = "checked"   // every address serves only the new keys, each with a record
	RollRetired   = "retired"   // the old records are gone (the state file is removed)
)

// RolloverState is what a rollover persists after each phase, so that a
// run killed at any point continues where it stopped.
type RolloverState struct {
	Host     string    `json:"host"`
	Keys     []string  `json:"keys"` // SPKI SHA-256 of the new certificates, sorted
	Phase    string    `json:"phase"`
	SwitchAt time.Time `json:"switch_at,omitzero"`
}

// RolloverReport is the outcome of Rollover.
type RolloverReport struct {
	Host    string         `json:"host"`
	Publish *PublishReport `json:"publish,omitempty"` // nil when a resumed run had published before
	Retire  *RetireReport  `json:"retire"`
	Resumed string         `json:"resumed,omitempty"` // the phase a resumed run found
}

// Rollover changes host to the keys of certs without a moment in which a
// DANE sender sees a key without a record: Publish; then reload (the
// operator's hook installs the certificates and reloads mxd, e.g. with
// SIGHUP); then check, until every address of host serves only the new
// keys, each with a record everywhere (up to Propagation); then Retire.
// After each phase it writes stateFile (fsync, rename); run again with the
// same certificates after a kill, it continues from the last phase done
// (the hook may run twice: it must be safe to repeat). A state file for
// other certificates makes it refuse.
func (d *DANE) Rollover(ctx context.Context, host string, certs []*x509.Certificate, reload func(context.Context) error, stateFile string) (*RolloverReport, error) {
	s := d.settings()
	unlock, err := lockFile(stateFile)
	if err != nil {
		return nil, err
	}
	defer unlock()
	keys := make([]string, 0, len(certs))
	for _, c := range certs {
		keys = append(keys, SPKISHA256(c))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	st, err := readRollover(stateFile)
	if err != nil {
		return nil, err
	}
	rep := &RolloverReport{Host: host}
	switch {
	case st == nil:
		st = &RolloverState{Host: host, Keys: keys}
	case !SameName(st.Host, host) || !slices.Equal(st.Keys, keys):
		return nil, &RefusedError{Reason: fmt.Sprintf("%s holds a rollover of %s to keys %v at phase %s: finish it with the same certificates, or remove the file",
			stateFile, st.Host, st.Keys, st.Phase)}
	default:
		rep.Resumed = st.Phase
		s.say(host, "rollover", "continuing the rollover after phase %s", st.Phase)
	}
	save := func(phase string) error {
		st.Phase = phase
		return writeStateFile(stateFile, st)
	}
	if st.Phase == "" {
		if rep.Publish, err = s.Publish(ctx, host, certs); err != nil {
			return rep, err
		}
		st.SwitchAt = rep.Publish.SwitchAt
		if err := save(RollPublished); err != nil {
			return rep, err
		}
	}
	if st.Phase == RollPublished {
		s.say(host, "reload", "running the reload hook")
		if err := reload(ctx); err != nil {
			return rep, fmt.Errorf("reload hook: %w (the new records stay; run the rollover again)", err)
		}
		if err := save(RollReloaded); err != nil {
			return rep, err
		}
	}
	if st.Phase == RollReloaded {
		if err := s.check(ctx, host, keys); err != nil {
			return rep, err
		}
		if err := save(RollChecked); err != nil {
			return rep, err
		}
	}
	if rep.Retire, err = s.Retire(ctx, host); err != nil {
		return rep, err
	}
	return rep, removeStateFile(stateFile)
}

// check polls host until every address serves only keys among keys, each
// matched by a record on every server, or Propagation passes.
func (d DANE) check(ctx context.Context, host string, keys []string) error {
	deadline := time.Now().Add(d.Propagation)
	for {
		st, err := d.Status(ctx, host)
		if err != nil {
			return err
		}
		why := ""
		for _, k := range st.Keys {
			if !slices.Contains(keys, k.SPKISHA256) {
				why = fmt.Sprintf("%s still serves %s key %s", k.Addr, k.KeyType, k.SPKISHA256)
			}
		}
		switch {
		case why != "":
		case !st.OK:
			why = "a served key has no record, or an address did not answer"
		case !st.Agree:
			why = "the authoritative servers do not agree"
		default:
			d.say(host, "check", "every address serves only the new keys, each with a record")
			return nil
		}
		if !time.Now().Before(deadline) {
			return &TimeoutError{What: "waiting for " + host + " to serve the new certificates: " + why}
		}
		d.say(host, "check", "waiting: %s", why)
		if err := sleep(ctx, min(d.Zone.poll(), time.Until(deadline))); err != nil {
			return err
		}
	}
}

func readRollover(file string) (*RolloverState, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read rollover state: %w", err)
	}
	var st RolloverState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("rollover state %s: %w", file, err)
	}
	return &st, nil
}
