package smtpd

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// documented is every named reply of reply.go, with the rows of the reply
// tables in docs/mxd.md that give it: phrases of the rows' first column.
// A reply added to reply.go needs an entry here, and the entry a row in
// docs/mxd.md that shows its code and enhanced code.
var documented = []struct {
	name string // as declared in reply.go
	r    *smtp.SMTPError
	rows []string
}{
	{"replyQueued", replyQueued("ID"), []string{"queued (or a duplicate", "a milter discards", "a milter quarantines"}},
	{"replyQueueOOM", replyQueueOOM, []string{"Redis out of memory"}},
	{"replyQueueDown", replyQueueDown, []string{"Redis down, slow"}},
	{"replyLocal", replyLocal, []string{"any other failure inside mxd"}},
	{"replyDraining", replyDraining, []string{"host draining or shutting down"}},
	{"replyShutdown", replyShutdown, []string{"host draining or shutting down"}},
	{"replyTooMany", replyTooMany, []string{"too many connections (total"}},
	{"replyTooManyFrom", replyTooManyFrom, []string{"too many connections (total", "more connections from one client than"}},
	{"replyConnectionRate", replyConnectionRate, []string{"more new connections from one client"}},
	{"replyMessageRate", replyMessageRate, []string{"more `MAIL` commands"}},
	{"replyRecipientRate", replyRecipientRate, []string{"more `RCPT` commands", "or `RCPT` commands than"}},
	{"replyTooManyErrors", replyTooManyErrors, []string{"`hard_error_limit` errors"}},
	{"replyHTTP", replyHTTP, []string{"HTTP request, or a PROXY header"}},
	{"replyUntrustedProxy", replyUntrustedProxy, []string{"HTTP request, or a PROXY header"}},
	{"replyNestedMail", replyNestedMail, []string{"`MAIL` inside a transaction", "`MAIL` while a transaction is open"}},
	{"replyBadAddress", replyBadAddress, []string{"bad address syntax / bad domain", "bad address or domain syntax", "not a dot-string", "whitespace, control or invisible"}},
	{"replyBadDomain", replyBadDomain, []string{"bad address syntax / bad domain", "bad address or domain syntax", "whitespace, control or invisible"}},
	{"replyNeedUTF8", replyNeedUTF8, []string{"non-ASCII address without `SMTPUTF8`"}},
	{"replyRouted", replyRouted, []string{"`%`/`!`-routed", "a routed recipient"}},
	{"replyRelayDenied", replyRelayDenied, []string{"recipient at another domain", "a recipient at a domain not in", "a look-alike of a list address"}},
	{"replyNoSuchUser", replyNoSuchUser, []string{"unknown recipient at a list domain", "a look-alike of a list address"}},
	{"replyTooManyRcpts", replyTooManyRcpts, []string{"too many recipients"}},
	{"replyBadORCPT", replyBadORCPT, []string{"decodes to a control character"}},
	{"replyDuplicateRcpt", replyDuplicateRcpt, []string{"the same recipient again"}},
	{"replyTooBig", replyTooBig, []string{"message over `max_message_bytes`"}},
	{"replyHeaderTooBig", replyHeaderTooBig, []string{"header section over `max_header_bytes`"}},
	{"replyBareEOL", replyBareEOL, []string{"bare CR or LF, or NUL", "a bare CR, a bare LF or a NUL"}},
	{"replyLongLine", replyLongLine, []string{"a line over 2,000 octets"}},
	{"replyFoldedStart", replyFoldedStart, []string{"first line starts with a space or"}},
	{"replyNoHeader", replyNoHeader, []string{"a message with no header section", "a message without a header field"}},
	{"replyLoop", replyLoop, []string{"Received headers (any case", "more Received fields"}},
	{"replyDMARC", replyDMARC, []string{"DMARC fail with `p=reject`"}},
	{"replyDMARCFrom", replyDMARCFrom, []string{"From fields that name no single Author Domain"}},
	{"replyDNSTemp", replyDNSTemp, []string{"DNS temporary error in the checks"}},
	{"replyDataTimeout", replyDataTimeout, []string{"DATA slower than", "DATA below `min_data_rate`"}},
	{"replyDataAborted", replyDataAborted, []string{"reading the message data fails"}},
	{"replyNoMemory", replyNoMemory, []string{"a header section over 64 KiB"}},
	{"replyMilterReject", replyMilterReject, []string{"a milter rejects", "a milter is down", "what a milter (rspamd"}},
	{"replyMilterTempfail", replyMilterTempfail, []string{"a milter answers tempfail", "a milter is down", "what a milter (rspamd"}},
	{"replyMilter", replyMilter(554, smtp.EnhancedCode{5, 7, 1}, "Gtube pattern"), []string{"a milter rejects"}},
	{"replyMemoryPressure", replyMemoryPressure, []string{"while other sessions wait for memory", "while sessions wait for memory"}},
}

// goSMTPReplies are the replies in docs/mxd.md's tables that go-smtp
// (third_party/go-smtp) writes itself, each with why it is go-smtp's and
// not mxd's. The test checks that go-smtp's source does write each.
var goSMTPReplies = []struct {
	code int
	enh  smtp.EnhancedCode
	rows []string
	why  string
}{
	{500, smtp.EnhancedCode{5, 4, 0}, []string{"overlong command line"},
		"go-smtp reads command lines; one over maxLineLength ends the session before any Session method sees a command"},
	{501, smtp.EnhancedCode{5, 5, 4}, []string{"parameter given twice", "`ORCPT` that is not xtext"},
		"go-smtp parses the MAIL and RCPT parameters (our copy refuses one given twice, an empty value, a value where none is taken, and ORCPT that is not xtext); Mail and Rcpt see only what it accepted"},
}

// The replies mxd gives and the tables of docs/mxd.md ("What a sender
// sees", "What mxd refuses, and why") agree: each named reply of
// reply.go is in a row that shows its code and enhanced code, and each
// code a row shows is given by a named reply listed for that row, or by
// go-smtp. No reply is built outside reply.go.
func TestReplyTable(t *testing.T) {
	rows := replyRows(t, "../docs/mxd.md", "What a sender sees", "What mxd refuses, and why")
	names := namedReplies(t)

	listed := map[string]bool{}
	for _, d := range documented {
		listed[d.name] = true
		if !names[d.name] {
			t.Errorf("%s is listed here but not declared in reply.go", d.name)
		}
	}
	for n := range names {
		if !listed[n] {
			t.Errorf("%s in reply.go is not in documented: give it a row in docs/mxd.md's reply tables, and list it", n)
		}
	}

	claimed := map[string]bool{} // row line + code
	claim := func(who string, code int, enh smtp.EnhancedCode, phrases []string) {
		c := pairString(code, enh)
		for _, p := range phrases {
			found := false
			for _, r := range rows {
				if !strings.Contains(r.situation, p) {
					continue
				}
				found = true
				if !r.shows(c) {
					t.Errorf("docs/mxd.md:%d (%q) is listed for %s, but shows no %s", r.line, p, who, c)
					continue
				}
				claimed[fmt.Sprint(r.line, c)] = true
			}
			if !found {
				t.Errorf("%s (%s): no row of docs/mxd.md's reply tables has %q", who, c, p)
			}
		}
	}
	for _, d := range documented {
		claim(d.name, d.r.Code, d.r.EnhancedCode, d.rows)
	}
	goSrc := goSMTPSource(t)
	for _, g := range goSMTPReplies {
		claim("go-smtp's "+pairString(g.code, g.enh), g.code, g.enh, g.rows)
		w := fmt.Sprintf("writeResponse(%d, EnhancedCode{%d, %d, %d}", g.code, g.enh[0], g.enh[1], g.enh[2])
		if !strings.Contains(goSrc, w) {
			t.Errorf("go-smtp's %s is listed as go-smtp's, but third_party/go-smtp never writes it (%s)", pairString(g.code, g.enh), w)
		}
	}
	for _, r := range rows {
		for _, c := range r.codes {
			if !claimed[fmt.Sprint(r.line, c)] {
				t.Errorf("docs/mxd.md:%d shows %s for %q, but no named reply listed for that row gives it, nor go-smtp", r.line, c, r.situation)
			}
		}
	}
}

// tableRow is one row of a reply table.
type tableRow struct {
	line      int
	situation string   // the first column
	codes     []string // "550 5.1.1", as the second column shows them
}

func (r tableRow) shows(code string) bool {
	for _, c := range r.codes {
		if c == code {
			return true
		}
	}
	return false
}

var codeRE = regexp.MustCompile(`\b[245]\d\d [245]\.\d{1,3}\.\d{1,3}\b`)

// replyRows reads the tables under the given level-2 headings of the
// markdown file path.
func replyRows(t *testing.T, path string, headings ...string) []tableRow {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var rows []tableRow
	for _, h := range headings {
		start := -1
		for i, l := range lines {
			if l == "## "+h {
				start = i
			}
		}
		if start < 0 {
			t.Fatalf("%s has no section %q", path, h)
		}
		n := 0
		for i := start + 1; i < len(lines) && !strings.HasPrefix(lines[i], "## "); i++ {
			cells := strings.Split(lines[i], "|")
			if !strings.HasPrefix(lines[i], "|") || len(cells) < 4 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") {
				continue
			}
			n++
			if n == 1 { // the header row
				continue
			}
			rows = append(rows, tableRow{line: i + 1, situation: strings.TrimSpace(cells[1]), codes: codeRE.FindAllString(cells[2], -1)})
		}
		if n < 2 {
			t.Fatalf("%s: no table under %q", path, h)
		}
	}
	return rows
}

// namedReplies parses the package's source and returns the names of the
// declarations in reply.go that build an smtp.SMTPError. It fails the
// test for one built in another file, and for a string that is a reply
// line written by hand.
func namedReplies(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	handWritten := regexp.MustCompile(`^[245]\d\d[ -][245]\.\d{1,3}\.\d{1,3}\b`)
	names := map[string]bool{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			eachReply(decl, func(declared string, n ast.Node) {
				if name != "reply.go" {
					t.Errorf("%s: %s builds an SMTP reply: name it in reply.go", fset.Position(n.Pos()), declared)
					return
				}
				names[declared] = true
			})
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && handWritten.MatchString(s) {
					t.Errorf("%s: a reply written by hand (%q): name it in reply.go and write it with replyLine", fset.Position(lit.Pos()), s)
				}
			}
			return true
		})
	}
	if len(names) == 0 {
		t.Fatal("no named reply found in reply.go")
	}
	return names
}

// eachReply calls f for each smtp.SMTPError literal in decl, with the
// name it is declared under: the function's, or the variable's.
func eachReply(decl ast.Decl, f func(declared string, n ast.Node)) {
	visit := func(declared string, root ast.Node) {
		ast.Inspect(root, func(n ast.Node) bool {
			if cl, ok := n.(*ast.CompositeLit); ok && isSMTPError(cl.Type) {
				f(declared, cl)
			}
			return true
		})
	}
	switch d := decl.(type) {
	case *ast.FuncDecl:
		visit(d.Name.Name, d)
	case *ast.GenDecl:
		for _, s := range d.Specs {
			vs, ok := s.(*ast.ValueSpec)
			if !ok {
				continue
			}
			for i, v := range vs.Values {
				visit(vs.Names[min(i, len(vs.Names)-1)].Name, v)
			}
		}
	}
}

func isSMTPError(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && x.Name == "smtp" && sel.Sel.Name == "SMTPError"
}

// goSMTPSource is the source of our copy of go-smtp, tests left out.
func goSMTPSource(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob("../third_party/go-smtp/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no go-smtp source in ../third_party/go-smtp: %v", err)
	}
	var b strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(src)
	}
	return b.String()
}

func pairString(code int, enh smtp.EnhancedCode) string {
	return fmt.Sprintf("%d %d.%d.%d", code, enh[0], enh[1], enh[2])
}
