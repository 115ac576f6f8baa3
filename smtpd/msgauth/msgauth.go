package msgauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"mxq/setting"
)

// Defaults of Config (see Defaults), and of the timeout given to
// NewResolver.
const (
	DefaultMaxDKIMSignatures = 5
	DefaultTimeout           = 20 * time.Second
	DefaultQueryTimeout      = 5 * time.Second
)

// The result keywords of RFC 8601 §2.7 used here.
const (
	Pass      = "pass"
	Fail      = "fail"
	SoftFail  = "softfail"
	Neutral   = "neutral"
	None      = "none"
	TempError = "temperror"
	PermError = "permerror"
)

// Config configures a Checker. Start from Defaults: New uses the
// settings as they are, and refuses what Check refuses.
type Config struct {
	// AuthservID is the authserv-id of the header (RFC 8601 §2.5): the
	// same on every MX, and what the list software trusts. It must be a
	// token (a host name is), since it is also what StripForged removes.
	AuthservID string
	// Resolver does every lookup (NewResolver). Required; it is no
	// setting, and Check does not look at it.
	Resolver *Resolver
	// MaxDKIMSignatures caps the signatures verified per message; further
	// ones are counted in Result.DKIMSkipped and not looked at.
	MaxDKIMSignatures int
	// Timeout bounds a whole Check.
	Timeout time.Duration
}

// Defaults returns the checks' settings, each stated here alone;
// AuthservID has none, and the Resolver is the caller's.
func Defaults() Config {
	return Config{MaxDKIMSignatures: DefaultMaxDKIMSignatures, Timeout: DefaultTimeout}
}

// Check reports each setting of c that New cannot use, as a
// *setting.Error. It fills nothing in.
func (c *Config) Check() error {
	ck := setting.For(c)
	switch err := validAuthservID(c.AuthservID); {
	case c.AuthservID == "":
		ck.Add(&c.AuthservID, setting.Missing+": the same value on every MX and in the list software")
	case err != nil:
		ck.Add(&c.AuthservID, "want a token such as a host name: "+err.Error())
	}
	setting.Positive(ck, &c.MaxDKIMSignatures)
	setting.Positive(ck, &c.Timeout)
	return ck.Err()
}

// Checker runs the checks of one MX. It is safe for concurrent use.
type Checker struct {
	id       string
	resolver *Resolver
	maxSigs  int
	timeout  time.Duration
	verify   verifyFunc
}

// New returns a Checker with the settings cfg, which it uses as they are.
func New(cfg Config) (*Checker, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("msgauth: %w", err)
	}
	if cfg.Resolver == nil {
		return nil, errors.New("msgauth: Config needs a Resolver")
	}
	return &Checker{id: cfg.AuthservID, resolver: cfg.Resolver,
		maxSigs: cfg.MaxDKIMSignatures, timeout: cfg.Timeout, verify: dkim.VerifyWithOptions}, nil
}

// validAuthservID accepts an RFC 2045 token: the form that needs no quoting
// in the header and that StripForged compares.
func validAuthservID(id string) error {
	if id == "" {
		return errors.New("empty")
	}
	for _, ch := range id {
		if !tokenChar(ch) {
			return fmt.Errorf("character %q not allowed", ch)
		}
	}
	return nil
}

// Input is what the SMTP session knows about one message.
type Input struct {
	IP       netip.Addr // the client's address
	HELO     string     // the EHLO/HELO argument
	MailFrom string     // the reverse-path without brackets; "" is the null sender
	Message  []byte     // the message as received, CRLF line endings
}

// Result is the outcome of the checks. The four verdicts are RFC 8601
// result keywords; the other fields are the properties that go into the
// header, for consumers that should not parse it.
type Result struct {
	SPF   string // pass, fail, softfail, neutral, none, temperror, permerror
	DKIM  string // the best over the verified signatures, or none
	DMARC string // pass, fail, none, temperror, permerror
	IPRev string // pass, fail, temperror, permerror

	// SPF: the identity checked (RFC 7208 §2.3, §2.4) and its domain.
	SPFIdentity string // "mailfrom", or "helo" for the null sender
	SPFDomain   string
	MailFrom    string // smtp.mailfrom, "" for the null sender
	HELO        string // smtp.helo

	DKIMSignatures []DKIMSignature // one per verified signature, in header order
	DKIMSkipped    int             // signatures over MaxDKIMSignatures, not verified

	FromDomain  string // header.from: the RFC5322.From domain, "" when not one
	DMARCPolicy string // none, quarantine, reject (sp= for a subdomain); "" without a record
	SPFAligned  bool   // SPF passed for a domain aligned with FromDomain
	DKIMAligned bool   // a signature of an aligned domain passed
	// FromError says why the From fields gave no Author Domain when that
	// made DMARC permerror (RFC 7489 §6.6.1): several From fields,
	// mailboxes of several domains, an unparsable field. It is "" for
	// every other result, and for a permerror that comes from DNS.
	FromError string

	IPRevName string // the PTR name that forward-confirmed the IP (iprev=pass)

	Header    string // the Authentication-Results field, folded, ending in CRLF
	TempError bool   // a check met a temporary DNS error
}

// DKIMSignature is the verdict on one DKIM-Signature field (RFC 6376,
// RFC 8601 §2.7.1).
type DKIMSignature struct {
	Result    string // pass, fail, neutral, temperror, permerror
	Domain    string // d=, header.d
	Selector  string // s=, header.s
	Algorithm string // a=, header.a
	B         string // the first characters of b=, header.b (RFC 6008)
	Reason    string // why it did not pass, for logs; never in the header
}

// Check runs SPF, DKIM, iprev and then DMARC on one message, within the
// configured timeout and ctx. It never fails: what it could not decide is
// a temperror or permerror in the Result.
//
// Call it on the message as received, before StripForged: a signature may
// cover any field. Then prepend Result.Header to StripForged(msg, id).
func (c *Checker) Check(ctx context.Context, in Input) Result {
	_, body, _ := headerFields(in.Message)
	head := in
	head.Message = in.Message[:body]
	run := c.Begin(ctx, head)
	run.Write(in.Message[body:])
	return run.Finish()
}

// Run is the check of one message whose body is still arriving: Begin
// starts it with the header section, Write gives it the body as it comes,
// and Finish returns the Result. The DNS lookups start at once; DKIM
// hashes the body as it is written, so that no copy of the body is ever
// kept. A Run is used by one goroutine.
type Run struct {
	c      *Checker
	cancel context.CancelFunc
	in     Input
	from   author
	wg     sync.WaitGroup
	body   *io.PipeWriter // nil when no signature reads the body
	// dkimCancel ends the DKIM check, which then reads no more of the
	// body: when a Write waits for it longer than the timeout.
	dkimCancel context.CancelFunc

	res  Result
	spf  spfOutcome
	pol  policy
	sigs []dkimSig
}

// Begin starts the checks of a message whose header section (up to and
// including the empty line that ends it, if any) is in.Message. Lookups
// run until ctx ends or, after Finish, for the configured timeout.
func (c *Checker) Begin(ctx context.Context, in Input) *Run {
	ctx, cancelAll := context.WithCancel(ctx)
	// The lookups for SPF, iprev and DMARC do not wait for the body: the
	// timeout runs for them from now. DKIM must read the whole body, so
	// it runs until Finish's timeout (or a Write's).
	lctx, cancelLookups := context.WithTimeout(ctx, c.timeout)
	cancel := func() { cancelLookups(); cancelAll() }
	header := in.Message
	fields, _, sep := headerFields(header)
	if !sep {
		// A message that is all header has an empty body: give the
		// DKIM verifier the empty line it needs to see the header's end.
		header = append(header[:len(header):len(header)], "\r\n"...)
	}
	r := &Run{c: c, cancel: cancel, in: in, from: authorDomain(header, fields)}
	r.res = Result{HELO: in.HELO, MailFrom: in.MailFrom, FromDomain: r.from.domain}
	r.wg.Go(func() { r.spf = c.checkSPF(lctx, in) })
	r.wg.Go(func() { r.res.IPRev, r.res.IPRevName = c.checkIPRev(lctx, in.IP) })
	if r.from.err == "" && r.from.domain != "" {
		r.wg.Go(func() { r.pol = c.lookupPolicy(lctx, r.from.domain) })
	}
	if hasSignature(header, fields) {
		dctx, dcancel := context.WithCancel(ctx)
		pr, pw := io.Pipe()
		r.body, r.dkimCancel = pw, dcancel
		// When DKIM gives up, the verifier reads the end of the body, not
		// an error: go-msgauth's parallel verification leaves goroutines
		// blocked forever when its input fails. A Write waiting for it
		// returns.
		context.AfterFunc(dctx, func() { pw.Close() })
		r.wg.Go(func() {
			r.sigs, r.res.DKIMSkipped = c.checkDKIM(dctx, header, fields, pr)
			// Whatever the verifier left unread: Write must never block
			// on a reader that is gone.
			io.Copy(io.Discard, pr)
		})
	}
	return r
}

// Write gives the next part of the body to the checks. It always
// reports all of p written: a check that stopped reading has its result
// already.
func (r *Run) Write(p []byte) (int, error) {
	if r.body != nil && len(p) > 0 {
		// The verifier hashes p while Write waits. Should it not take
		// p within the timeout (a key lookup that hangs, a verification
		// that runs away), DKIM is given up as temperror, so that the
		// session never waits on it longer.
		t := time.AfterFunc(r.c.timeout, r.dkimCancel)
		r.body.Write(p)
		t.Stop()
	}
	return len(p), nil
}

// Abort stops the checks of a message that will not be queued, without
// waiting for them.
func (r *Run) Abort() { r.cancel() }

// Finish ends the body and returns the Result, waiting at most the
// configured timeout for the checks still running; those that do not
// finish are temperror.
func (r *Run) Finish() Result {
	defer r.cancel()
	if r.body != nil {
		r.body.Close()
	}
	stop := time.AfterFunc(r.c.timeout, r.cancel)
	defer stop.Stop()
	r.wg.Wait()
	res := r.res
	res.SPF, res.SPFIdentity, res.SPFDomain = r.spf.result, r.spf.identity, r.spf.domain
	res.DKIM = None
	for _, s := range r.sigs {
		res.DKIMSignatures = append(res.DKIMSignatures, s.DKIMSignature)
		if dkimRank(s.Result) < dkimRank(res.DKIM) {
			res.DKIM = s.Result
		}
	}
	r.c.evaluateDMARC(&res, r.from, r.pol)
	res.TempError = res.SPF == TempError || res.DKIM == TempError ||
		res.DMARC == TempError || res.IPRev == TempError
	for _, s := range res.DKIMSignatures {
		res.TempError = res.TempError || s.Result == TempError
	}
	res.Header = r.c.header(&res, r.in.IP)
	return res
}

// dkimRank orders DKIM results for Result.DKIM: a pass wins; a temperror
// comes next because the signature might pass on retry; then the failures.
func dkimRank(r string) int {
	switch r {
	case Pass:
		return 0
	case TempError:
		return 1
	case Fail:
		return 2
	case Neutral:
		return 3
	case PermError:
		return 4
	}
	return 5 // none
}
