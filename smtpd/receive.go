package smtpd

import (
	"bytes"
	"context"
	"io"
	"strings"
	"time"

	"mxq/queue"
	"mxq/smtpd/msgauth"
)

// Message data is read in blocks of blockSize, taken from the server's
// memory budget, and written to the queue a batch at a time while it
// arrives (see queue.Spool). A session therefore holds at most its header
// section and one batch, whatever the message's size; a small message is
// one block and goes to the queue in the commit alone. A batch is written
// early when its first block has waited spoolAfter: a slow sender holds
// the block it reads into and little more.
const (
	blockSize  = queue.ChunkSize
	spoolBatch = 4 * blockSize
	spoolAfter = time.Second
)

// blockPool keeps the blocks of finished messages for the next ones. It
// never holds more than the budget's worth, and the budget bounds the
// blocks in use, so mxd's heap does not grow with message sizes.
type blockPool struct{ free chan []byte }

func newBlockPool(limit int64) *blockPool {
	return &blockPool{free: make(chan []byte, max(limit/blockSize, 1))}
}

func (p *blockPool) get() []byte {
	select {
	case b := <-p.free:
		return b[:0]
	default:
		return make([]byte, 0, blockSize)
	}
}

func (p *blockPool) put(b []byte) {
	if cap(b) != blockSize {
		return // a grown header buffer: left to the garbage collector
	}
	select {
	case p.free <- b[:0]:
	default:
	}
}

// reception reads one message's data: it finds and checks the header
// section, removes forged Authentication-Results from it, feeds the
// authentication checks, and spools the data to the queue in batches.
type reception struct {
	ss   *session
	id   string
	held *held

	cur     []byte // the block being read into
	curOff  int    // cur[curOff:] is not yet in pending
	hdrEnd  int    // offset in cur after the header section; -1 until found
	scan    int    // start of the header line not yet complete
	recvd   int    // Received fields in the header section
	pending [][]byte
	pendN   int
	curAt   time.Time // when cur was taken
	pendAt  time.Time // when the first block of pending was taken
	blocks  [][]byte  // the pool blocks behind pending
	dropped bool      // refused: the blocks are given back, cur is scratch

	ctx      context.Context // the transaction's: bounds every wait and write
	spool    Spool
	prefixed bool // the spool was told of the header section kept out of it
	auth     *msgauth.Run
	refusal  error // once set, the rest of the data is read and dropped
	size     int64
}

func (ss *session) newReception(ctx context.Context, id string) *reception {
	cfg := &ss.s.cfg
	// The spool's data must outlive every wait until the commit.
	ttl := cfg.DataTimeout + cfg.EnqueueTimeout + max(cfg.RideThrough, 0)
	return &reception{ss: ss, ctx: ctx, id: id, held: ss.s.budget.newHeld(&ss.wc.phase), hdrEnd: -1,
		spool: ss.s.queue.NewSpool(id, ttl)}
}

// read reads the message to its real end. It returns the refusal decided
// on the way (the data is then dropped), or the error of the reader.
func (rc *reception) read(r io.Reader) error {
	ctx := rc.ctx
	if !rc.held.tryGrow(blockSize) {
		// The 354 is still in the connection's buffer, sent when the
		// session next reads: send it now, or the client waits for it
		// while mxd waits for memory.
		if err := rc.ss.wc.flush(); err != nil {
			return err
		}
		resume := rc.ss.wc.pauseData()
		err := rc.held.grow(ctx, blockSize)
		resume()
		if err != nil {
			return err
		}
	}
	rc.cur, rc.curAt = rc.ss.s.blocks.get(), time.Now()
	for {
		if rc.refusal != nil && !rc.dropped {
			rc.drop()
		}
		if len(rc.cur) == cap(rc.cur) {
			resume := rc.ss.wc.pauseData()
			err := rc.makeRoom()
			resume()
			if err != nil {
				return err
			}
		}
		n, err := r.Read(rc.cur[len(rc.cur):cap(rc.cur)])
		rc.size += int64(n)
		if rc.refusal == nil {
			rc.cur = rc.cur[:len(rc.cur)+n]
			rc.checkHeader()
		}
		if err == io.EOF {
			return rc.end()
		}
		if err != nil {
			return err
		}
	}
}

// checkHeader looks at the header lines completed by the last read.
func (rc *reception) checkHeader() {
	if rc.scan == 0 && foldedStart(rc.cur) {
		rc.refuse(replyFoldedStart)
		return
	}
	for rc.hdrEnd < 0 {
		i := bytes.IndexByte(rc.cur[rc.scan:], '\n')
		if i < 0 {
			if rc.scan > rc.ss.s.cfg.MaxHeaderBytes {
				rc.refuse(replyHeaderTooBig)
			}
			return
		}
		line := rc.cur[rc.scan : rc.scan+i+1]
		rc.scan += i + 1
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			rc.headerDone(rc.scan, true)
			return
		}
		if isReceived(line) {
			rc.recvd++
		}
	}
}

// isReceived reports whether a header line starts a Received field: the
// name in any case (RFC 5322 §1.2.2), then white space or not before the
// colon (§4.5, the obsolete syntax, which readers still accept as the
// same field).
func isReceived(line []byte) bool {
	const name = "received"
	if len(line) <= len(name) || !strings.EqualFold(string(line[:len(name)]), name) {
		return false
	}
	rest := bytes.TrimLeft(line[len(name):], " \t")
	return len(rest) > 0 && rest[0] == ':'
}

// headerDone is called when the header section, cur[:end], is complete:
// with the empty line that ends it when sep, else the whole message.
func (rc *reception) headerDone(end int, sep bool) {
	cfg := &rc.ss.s.cfg
	rc.hdrEnd = end
	size := end
	if sep {
		size -= 2 // without the empty line's CRLF
	}
	switch {
	case size > cfg.MaxHeaderBytes:
		rc.refuse(replyHeaderTooBig)
		return
	case rc.recvd > cfg.MaxReceived:
		rc.refuse(replyLoop)
		return
	}
	header := rc.cur[:end]
	stripped := header
	if auth := rc.ss.s.auth; auth != nil {
		rc.auth = rc.ss.beginAuth(rc.ctx, auth, bytes.Clone(header))
		stripped = stripForged(header, cfg.AuthservID)
		if foldedStart(stripped) { // nor may a removed field leave one
			rc.refuse(replyFoldedStart)
			return
		}
	}
	if rc.keepsHeader() {
		rc.milterHeader(stripped, sep)
		rc.curOff = end
		return
	}
	rc.pending = append(rc.pending, stripped)
	rc.pendN += len(stripped)
	rc.curOff = end
}

// makeRoom makes cur writable again when it is full: a header section
// that does not fit grows it (within MaxHeaderBytes); otherwise the block
// joins pending, pending is spooled when a batch is complete, and a new
// block is taken from the budget (waiting for it, if need be).
func (rc *reception) makeRoom() error {
	if rc.refusal != nil {
		rc.cur = rc.cur[:0]
		return nil
	}
	if rc.hdrEnd < 0 {
		return rc.growHeader()
	}
	rc.pend()
	// A session never waits for memory while it holds a batch: it
	// spools what it has first, so that sessions waiting for each other's
	// memory cannot hold up each other for good.
	if rc.pendN >= spoolBatch || time.Since(rc.pendAt) >= spoolAfter || !rc.held.tryGrow(blockSize) {
		if err := rc.flush(); err != nil {
			return err
		}
		if err := rc.held.grow(rc.ctx, blockSize); err != nil {
			return err
		}
	}
	rc.cur, rc.curOff, rc.curAt = rc.ss.s.blocks.get(), 0, time.Now()
	return nil
}

// growHeader doubles cur for a header section that has not ended yet.
// The header must stay whole in memory, so the session waits for memory
// while holding some; it waits a bounded time, and then answers that
// storage is short (452 4.3.1) rather than wait on sessions that may be
// waiting for it.
func (rc *reception) growHeader() error {
	limit := rc.ss.s.cfg.MaxHeaderBytes + blockSize
	if len(rc.cur) >= limit {
		rc.refuse(replyHeaderTooBig)
		rc.cur = rc.cur[:0]
		return nil
	}
	n := min(2*cap(rc.cur), limit)
	wctx, cancel := context.WithTimeout(rc.ctx, headerMemoryWait)
	defer cancel()
	if err := rc.held.grow(wctx, int64(n-cap(rc.cur))); err != nil {
		if rc.ctx.Err() != nil {
			return err
		}
		rc.refuse(replyNoMemory)
		rc.cur = rc.cur[:0]
		return nil
	}
	grown := make([]byte, len(rc.cur), n)
	copy(grown, rc.cur)
	rc.ss.s.blocks.put(rc.cur)
	rc.cur = grown
	return nil
}

// headerMemoryWait is how long a long header section waits for memory.
const headerMemoryWait = 10 * time.Second

// pend moves the unpended part of cur to pending; cur's block is given
// back once pending is spooled.
func (rc *reception) pend() {
	if len(rc.blocks) == 0 {
		rc.pendAt = rc.curAt
	}
	if p := rc.cur[rc.curOff:]; len(p) > 0 {
		rc.pending = append(rc.pending, p)
		rc.pendN += len(p)
		if rc.auth != nil {
			rc.auth.Write(p) // a failed check is its result, not an error
		}
		rc.milterBody(p)
	}
	rc.blocks = append(rc.blocks, rc.cur)
	rc.cur, rc.curOff = nil, 0
}

// flush appends pending to the spool, then gives its blocks back.
func (rc *reception) flush() error {
	if len(rc.pending) == 0 {
		return nil
	}
	if !rc.prefixed {
		// The header section kept out of the spool, if any, goes into
		// the spool's hash before its first bytes.
		rc.prefixed = true
		rc.prefixSpool()
	}
	err := rc.ss.s.rideThrough(rc.ctx, opSpool, func(ctx context.Context) error {
		// A turn per try: a session waiting for the queue does not keep
		// others from writing meanwhile.
		if err := rc.ss.s.spoolSlot(rc.ctx); err != nil {
			return err
		}
		defer rc.ss.s.spoolDone()
		return rc.spool.Append(ctx, rc.pending...)
	})
	if rc.ctx.Err() != nil {
		return rc.ctx.Err()
	}
	if err != nil {
		rc.refuse(err)
		return nil
	}
	rc.release()
	return nil
}

// release gives back the blocks of pending, which is spooled or dropped.
func (rc *reception) release() {
	for _, b := range rc.blocks {
		rc.ss.s.blocks.put(b)
		rc.held.shrink(int64(cap(b)))
	}
	rc.blocks, rc.pending, rc.pendN = rc.blocks[:0], rc.pending[:0], 0
}

// refuse records why the message will not be queued; the rest of its
// data is read and dropped.
func (rc *reception) refuse(err error) {
	if rc.refusal == nil {
		rc.refusal = err
	}
}

// drop gives back the memory of a refused message, header section
// included, and reads the rest of its data into a small scratch buffer
// outside the budget: a refused message holds nothing while its sender
// takes its time to end it.
func (rc *reception) drop() {
	rc.dropped = true
	if rc.cur != nil {
		rc.blocks = append(rc.blocks, rc.cur)
	}
	rc.release()
	rc.held.releaseAll()
	rc.cur = make([]byte, 0, dropBufSize)
}

// dropBufSize is the scratch buffer of a refused message: go-smtp's own
// reads are of 4 KiB.
const dropBufSize = 4 << 10

// end completes the data at its end: the header section if it never
// ended, the last pending part fed to the checks.
func (rc *reception) end() error {
	if rc.refusal != nil {
		return rc.refusal
	}
	if rc.hdrEnd < 0 {
		rc.headerDone(len(rc.cur), false)
		if rc.refusal != nil {
			return rc.refusal
		}
	}
	rc.pend()
	return rc.refusal // a milter may refuse the last piece
}

// discard drops what the reception holds: its spool and its blocks.
// The memory goes back first: others may be waiting for it.
func (rc *reception) discard() {
	rc.finish()
	rc.spool.Abort(context.Background())
}

// finish gives every block and the budget back.
func (rc *reception) finish() {
	if rc.cur != nil && !rc.dropped {
		rc.blocks = append(rc.blocks, rc.cur)
	}
	rc.cur = nil
	rc.release()
	rc.held.releaseAll()
}

// foldedStart reports whether msg begins with a space or a tab. Such a
// first line is the continuation of a folded field (RFC 5322 §2.2.3), and
// the fields mxd prepends (RFC 5321 §4.4) would take it as part of their
// own last one: "\t; dkim=pass" would join our Authentication-Results.
func foldedStart(msg []byte) bool {
	return len(msg) > 0 && (msg[0] == ' ' || msg[0] == '\t')
}
