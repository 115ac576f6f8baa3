package smtpd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2)
// carries the original client address from a load balancer. It is read
// only from configured proxy addresses; from anyone else it is refused,
// since it would let a client choose the address that SPF, iprev, limits
// and logs see.

var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

var errNotProxy = errors.New("no PROXY header")

// readProxyHeader reads one PROXY header (v1 or v2) from r and returns the
// client address it carries. For v1 "UNKNOWN" and v2 LOCAL it returns the
// zero AddrPort: the connection's own address stands. It reads no byte
// past the header.
func readProxyHeader(r io.Reader) (netip.AddrPort, error) {
	var sig [12]byte
	if _, err := io.ReadFull(r, sig[:5]); err != nil {
		return netip.AddrPort{}, fmt.Errorf("proxy header: %w", err)
	}
	switch {
	case string(sig[:5]) == "PROXY":
		return readProxyV1(r)
	case bytes.Equal(sig[:5], proxyV2Sig[:5]):
		if _, err := io.ReadFull(r, sig[5:]); err != nil {
			return netip.AddrPort{}, fmt.Errorf("proxy header: %w", err)
		}
		if !bytes.Equal(sig[:], proxyV2Sig) {
			return netip.AddrPort{}, errNotProxy
		}
		return readProxyV2(r)
	}
	return netip.AddrPort{}, errNotProxy
}

// readProxyV1 reads the rest of "PROXY TCP4 src dst sport dport\r\n"
// (at most 107 bytes in all), one byte at a time so as not to read past it.
func readProxyV1(r io.Reader) (netip.AddrPort, error) {
	var line []byte
	var b [1]byte
	for len(line) < 102 {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return netip.AddrPort{}, fmt.Errorf("proxy v1: %w", err)
		}
		line = append(line, b[0])
		if b[0] == '\n' {
			break
		}
	}
	s, ok := strings.CutSuffix(string(line), "\r\n")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("proxy v1: header not ended by CRLF within 107 bytes")
	}
	f := strings.Split(strings.TrimPrefix(s, " "), " ")
	if len(f) >= 1 && f[0] == "UNKNOWN" {
		return netip.AddrPort{}, nil
	}
	if len(f) != 5 || (f[0] != "TCP4" && f[0] != "TCP6") {
		return netip.AddrPort{}, fmt.Errorf("proxy v1: malformed header %q", s)
	}
	ip, err := netip.ParseAddr(f[1])
	if err != nil || ip.Is4() != (f[0] == "TCP4") {
		return netip.AddrPort{}, fmt.Errorf("proxy v1: bad source address %q", f[1])
	}
	port, err := strconv.ParseUint(f[3], 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("proxy v1: bad source port %q", f[3])
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

// readProxyV2 reads the rest of a binary header after its signature.
func readProxyV2(r io.Reader) (netip.AddrPort, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return netip.AddrPort{}, fmt.Errorf("proxy v2: %w", err)
	}
	if hdr[0]>>4 != 2 {
		return netip.AddrPort{}, fmt.Errorf("proxy v2: version %d", hdr[0]>>4)
	}
	n := binary.BigEndian.Uint16(hdr[2:])
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return netip.AddrPort{}, fmt.Errorf("proxy v2: %w", err)
	}
	switch cmd := hdr[0] & 0xf; cmd {
	case 0: // LOCAL: the proxy's own connection (health checks)
		return netip.AddrPort{}, nil
	case 1: // PROXY
	default:
		return netip.AddrPort{}, fmt.Errorf("proxy v2: unknown command %d", cmd)
	}
	switch fam := hdr[1] >> 4; {
	case fam == 1 && len(body) >= 12: // AF_INET
		ip := netip.AddrFrom4([4]byte(body[0:4]))
		return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[8:10])), nil
	case fam == 2 && len(body) >= 36: // AF_INET6
		ip := netip.AddrFrom16([16]byte(body[0:16])).Unmap()
		return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[32:34])), nil
	case fam == 0: // AF_UNSPEC
		return netip.AddrPort{}, nil
	default:
		return netip.AddrPort{}, fmt.Errorf("proxy v2: address family %d with %d bytes", fam, len(body))
	}
}

// proxiedConn is a connection whose client address came from a PROXY
// header.
type proxiedConn struct {
	net.Conn
	remote net.Addr
}

func (p *proxiedConn) RemoteAddr() net.Addr { return p.remote }
