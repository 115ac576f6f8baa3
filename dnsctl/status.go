package dnsctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"mxq/maintenance"
	"mxq/queue"
)

// Status is everything an operator checks before and during maintenance.
type Status struct {
	Zone        string             `json:"zone"`
	Views       []ViewStatus       `json:"authoritative"`
	Agree       bool               `json:"agree"`
	Hosts       []queue.HostStatus `json:"hosts"`
	Depth       int64              `json:"queue_depth"`
	Lease       maintenance.Lease  `json:"lease"`
	Maintenance *State             `json:"maintenance,omitempty"`
}

// ViewStatus is a View with its error as text, for JSON.
type ViewStatus struct {
	View
	Error string `json:"error,omitempty"`
}

// Status reads the zone from every authoritative server and the hosts, the
// queue depth and the maintenance in progress from the fleet.
func (m *Maintenance) Status(ctx context.Context) (*Status, error) {
	views := m.Zone.ReadAll(ctx)
	s := &Status{Zone: m.Zone.zone(), Agree: Agree(views)}
	for _, v := range views {
		vs := ViewStatus{View: v}
		if v.Err != nil {
			vs.Error = v.Err.Error()
		}
		s.Views = append(s.Views, vs)
	}
	var err error
	if s.Hosts, err = m.Fleet.Hosts(ctx); err != nil {
		return nil, fmt.Errorf("read heartbeats: %w", err)
	}
	if s.Depth, err = m.Fleet.Depth(ctx); err != nil {
		return nil, fmt.Errorf("read queue depth: %w", err)
	}
	if s.Lease, err = m.Lease.Current(ctx); err != nil {
		return nil, fmt.Errorf("read lease: %w", err)
	}
	b, err := m.Lease.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("read maintenance state: %w", err)
	}
	if b != nil {
		s.Maintenance = new(State)
		if err := json.Unmarshal(b, s.Maintenance); err != nil {
			return nil, fmt.Errorf("maintenance state in redis: %w", err)
		}
	}
	return s, nil
}

// WriteText writes s for people.
func (s *Status) WriteText(w io.Writer) {
	fmt.Fprintf(w, "zone %s: ", s.Zone)
	if s.Agree {
		fmt.Fprintln(w, "all authoritative servers agree")
	} else {
		fmt.Fprintln(w, "authoritative servers DO NOT agree")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tSERIAL\tMX")
	for _, v := range s.Views {
		if v.Err != nil {
			fmt.Fprintf(tw, "%s\t-\terror: %v\n", v.Server, v.Err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", v.Server, v.Serial, v.MX)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "HOST\tALIVE\tSESSIONS\tDRAINING\tFLAG\tUNCONSUMED\tVERSION\tLAST SEEN")
	for _, h := range s.Hosts {
		seen, version := "-", h.Version
		if !h.LastSeen.IsZero() {
			seen = time.Since(h.LastSeen).Round(time.Second).String() + " ago"
		}
		if version == "" {
			version = "-"
		}
		fmt.Fprintf(tw, "%s\t%v\t%d\t%v\t%v\t%d\t%s\t%s\n", h.Host, h.Alive, h.Sessions, h.Draining, h.DrainFlag, h.Inflight, version, seen)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nqueue depth: %d\n", s.Depth)
	switch {
	case s.Maintenance != nil:
		st := s.Maintenance
		var done []string
		for _, p := range st.Steps {
			done = append(done, fmt.Sprintf("%s %s", p.Phase, p.End.Sub(p.Start).Round(time.Millisecond)))
		}
		fmt.Fprintf(w, "maintenance: %s at phase %s (steps: %s)\n", st.Host, st.Phase, strings.Join(done, ", "))
	default:
		fmt.Fprintln(w, "maintenance: none")
	}
	if s.Lease.Owner != "" {
		fmt.Fprintf(w, "lease: held by %s until %s\n", s.Lease.Owner, s.Lease.Expires.Format(time.RFC3339))
	}
}
