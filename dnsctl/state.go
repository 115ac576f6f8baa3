package dnsctl

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// Phase is how far a maintenance got. Drain walks the phases from Leased
// to Drained; Restore from wherever the drain stopped to Restored. Each is
// persisted before the work of the next begins, so a killed run continues
// where it stopped.
type Phase string

const (
	PhaseNone       Phase = ""
	PhaseLeased     Phase = "leased"     // lease taken, original RRset saved
	PhaseRemoving   Phase = "removing"   // the UPDATE that removes the host may have been sent
	PhaseRemoved    Phase = "removed"    // the primary no longer lists the host
	PhasePropagated Phase = "propagated" // every authoritative server agrees
	PhaseTTLWaited  Phase = "ttl-waited" // the old TTL (plus margin) has passed
	PhaseFlagged    Phase = "flagged"    // the drain flag is set: new connections get 421
	PhaseDrained    Phase = "drained"    // no sessions, nothing unconsumed: safe
	PhaseRestoring  Phase = "restoring"  // drain flag cleared; the restoring UPDATE may have been sent
	PhaseRestored   Phase = "restored"   // the primary lists the original records again
)

var phaseOrder = []Phase{PhaseNone, PhaseLeased, PhaseRemoving, PhaseRemoved, PhasePropagated,
	PhaseTTLWaited, PhaseFlagged, PhaseDrained, PhaseRestoring, PhaseRestored}

// Before reports whether p comes before q.
func (p Phase) Before(q Phase) bool {
	return slices.Index(phaseOrder, p) < slices.Index(phaseOrder, q)
}

// Step is how long one phase took.
type Step struct {
	Phase Phase     `json:"phase"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// State is the maintenance in progress, kept in Redis and in a local file.
type State struct {
	ID       string    `json:"id"`    // one maintenance, from drain to restore
	Owner    string    `json:"owner"` // lease token of the run that wrote it
	Seq      int64     `json:"seq"`   // incremented on every save; the higher copy wins
	Zone     string    `json:"zone"`
	Host     string    `json:"host"` // the MX exchange as in the zone
	Phase    Phase     `json:"phase"`
	Original RRset     `json:"original"` // the RRset before, with TTLs
	Removed  RRset     `json:"removed"`  // Original without Host
	AgreedAt time.Time `json:"agreed_at,omitzero"`
	FlagAt   time.Time `json:"flag_at,omitzero"`
	Steps    []Step    `json:"steps"`
	Updated  time.Time `json:"updated"`
}

func newToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// readStateFile returns the state in file, or nil when there is none.
func readStateFile(file string) (*State, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state file %s: %w", file, err)
	}
	return &st, nil
}

// writeStateFile replaces file with st durably: write a temporary file,
// fsync it, rename it over file, fsync the directory.
func writeStateFile(file string, st any) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	f, err := os.CreateTemp(dir, ".dnsctl-state-*")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(f.Name(), file); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return syncDir(dir)
}

func removeStateFile(file string) error {
	if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove state: %w", err)
	}
	return syncDir(filepath.Dir(file))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lockFile takes an exclusive lock on file+".lock" so that two runs on one
// machine never share a state file. The returned func releases it.
func lockFile(file string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	f, err := os.OpenFile(file+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, &RefusedError{Reason: fmt.Sprintf("another dnsctl on this machine is using %s", file)}
	}
	return func() { f.Close() }, nil
}

// pickState chooses between the local copy and the one in Redis: the same
// maintenance (ID) at the higher Seq; else Redis, which every machine
// shares; else the local one, when Redis lost it.
func pickState(local, remote *State) *State {
	switch {
	case remote == nil:
		return local
	case local == nil || local.ID != remote.ID:
		return remote
	case local.Seq > remote.Seq:
		return local
	default:
		return remote
	}
}
