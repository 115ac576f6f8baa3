package dnsctl

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"mxq/queue"
)

// probeSMTP checks that every address of host answers an SMTP greeting
// with 220 (RFC 5321 §4.2: "220-" continues, "220 " ends it) on SMTPPort,
// then says QUIT.
func (m *Maintenance) probeSMTP(ctx context.Context, host string) error {
	if m.Probe != nil {
		return m.Probe(ctx, host)
	}
	addrs, err := m.Zone.HostAddrs(ctx, host)
	if err != nil {
		return err
	}
	port := strconv.Itoa(m.SMTPPort)
	for _, a := range addrs {
		if err := greet(ctx, net.JoinHostPort(a, port)); err != nil {
			return fmt.Errorf("smtp %s: %w", net.JoinHostPort(a, port), err)
		}
	}
	return nil
}

func greet(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("reading greeting: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if !strings.HasPrefix(line, "220") {
			return fmt.Errorf("greeting %q is not 220", line)
		}
		if len(line) == 3 || line[3] == ' ' {
			break
		}
	}
	fmt.Fprintf(c, "QUIT\r\n")
	return nil
}

// healthy says why h cannot take mail, or nil: fresh heartbeat, not
// draining, SMTP answers 220.
func (m *Maintenance) healthy(ctx context.Context, hosts []queue.HostStatus, exchange string) error {
	h, ok := heartbeatName(hosts, exchange)
	maxAge := m.HeartbeatMaxAge
	switch {
	case !ok || !h.Alive:
		return fmt.Errorf("%s has no heartbeat: its mxd is not running or cannot reach Redis", exchange)
	case time.Since(h.LastSeen) > maxAge:
		return fmt.Errorf("%s's last heartbeat is %s old (more than %s)", exchange, time.Since(h.LastSeen).Round(time.Second), maxAge)
	case h.Draining || h.DrainFlag:
		return fmt.Errorf("%s is draining", exchange)
	}
	if err := m.probeSMTP(ctx, exchange); err != nil {
		return fmt.Errorf("%s does not answer SMTP: %w", exchange, err)
	}
	return nil
}

// preflight checks everything before a drain starts and returns the current
// RRset, or a *RefusedError saying what is wrong.
func (m *Maintenance) preflight(ctx context.Context, host string) (RRset, error) {
	views := m.Zone.ReadAll(ctx)
	for _, v := range views {
		if v.Err != nil {
			return nil, &RefusedError{Reason: fmt.Sprintf("authoritative %s does not answer: %v", v.Server, v.Err)}
		}
	}
	if !Agree(views) {
		var parts []string
		for _, v := range views {
			parts = append(parts, v.Server+": "+v.Summary())
		}
		return nil, &RefusedError{Reason: "authoritative servers do not agree yet: " + strings.Join(parts, "; ")}
	}
	cur := views[0].MX
	remaining, err := PlanRemoval(cur, host, m.MinRemaining)
	if err != nil {
		return nil, err
	}
	hosts, err := m.Fleet.Hosts(ctx)
	if err != nil {
		return nil, fmt.Errorf("read heartbeats: %w", err)
	}
	for _, mx := range remaining {
		if err := m.healthy(ctx, hosts, mx.Exchange); err != nil {
			return nil, &RefusedError{Reason: "a host that would remain is unhealthy: " + err.Error()}
		}
	}
	return cur, nil
}
