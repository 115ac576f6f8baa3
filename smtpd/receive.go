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
// one block and goes to the queue in the commit alone.
const (
	blockSize  = queue.ChunkSize
	spoolBatch = 4 * blockSize
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
	held held

	cur     []byte // the block being read into
	curOff  int    // cur[curOff:] is not yet in pending
	hdrEnd  int    // offset in cur after the header section; -1 until found
	scan    int    // start of the header line not yet complete
	recvd   int    // Received fields in the header section
	pending [][]byte
	pendN   int
	blocks  [][]byte // the pool blocks behind pending

	ctx     context.Context // the transaction's: bounds every wait and write
	spool   *queue.Spool
	auth    *msgauth.Run
	refusal error // once set, the rest of the data is read and dropped
	size    int64
}

func (ss *session) newReception(ctx context.Context, id string) *reception {
	return &reception{ss: ss, ctx: ctx, id: id, held: held{b: ss.s.budget}, hdrEnd: -1}
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
		t0 := time.Now()
		err := rc.held.grow(ctx, blockSize)
		rc.ss.wc.pauseData(time.Since(t0))
		if err != nil {
			return err
		}
	}
	rc.cur = rc.ss.s.blocks.get()
	for {
		if len(rc.cur) == cap(rc.cur) {
			t0 := time.Now()
			err := rc.makeRoom()
			rc.ss.wc.pauseData(time.Since(t0))
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
		if len(line) >= 9 && strings.EqualFold(string(line[:9]), "received:") {
			rc.recvd++
		}
	}
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
	if cfg.Auth != nil {
		rc.auth = rc.ss.beginAuth(rc.ctx, cfg.Auth, bytes.Clone(header))
		stripped = stripForged(header, cfg.AuthservID)
		if foldedStart(stripped) { // nor may a removed field leave one
			rc.refuse(replyFoldedStart)
			return
		}
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
	if rc.pendN >= spoolBatch || !rc.held.tryGrow(blockSize) {
		if err := rc.flush(); err != nil {
			return err
		}
		if err := rc.held.grow(rc.ctx, blockSize); err != nil {
			return err
		}
	}
	rc.cur, rc.curOff = rc.ss.s.blocks.get(), 0
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
	if p := rc.cur[rc.curOff:]; len(p) > 0 {
		rc.pending = append(rc.pending, p)
		rc.pendN += len(p)
		if rc.auth != nil {
			rc.auth.Write(p) // a failed check is its result, not an error
		}
	}
	rc.blocks = append(rc.blocks, rc.cur)
	rc.cur, rc.curOff = nil, 0
}

// flush appends pending to the spool, then gives its blocks back.
func (rc *reception) flush() error {
	if len(rc.pending) == 0 {
		return nil
	}
	if rc.spool == nil {
		s, ok := rc.ss.s.queue.(Spooler)
		if !ok {
			return nil // a queue without spools: keep everything for the commit
		}
		cfg := &rc.ss.s.cfg
		rc.spool = s.NewSpool(rc.id, cfg.DataTimeout+cfg.EnqueueTimeout+cfg.RideThrough)
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
	return nil
}

// discard drops what the reception holds: its spool and its blocks.
func (rc *reception) discard() {
	if rc.spool != nil {
		rc.spool.Abort(context.Background())
	}
	rc.finish()
}

// finish gives every block and the budget back.
func (rc *reception) finish() {
	if rc.cur != nil {
		rc.blocks = append(rc.blocks, rc.cur)
		rc.cur = nil
	}
	rc.release()
	rc.held.releaseAll()
}

// Spooler is implemented by a queue that can store a body while it
// arrives (queue.Queue does). With a queue that cannot, the whole message
// is handed to Enqueue at the end.
type Spooler interface {
	NewSpool(id string, ttl time.Duration) *queue.Spool
}

// foldedStart reports whether msg begins with a space or a tab. Such a
// first line is the continuation of a folded field (RFC 5322 §2.2.3), and
// the fields mxd prepends (RFC 5321 §4.4) would take it as part of their
// own last one: "\t; dkim=pass" would join our Authentication-Results.
func foldedStart(msg []byte) bool {
	return len(msg) > 0 && (msg[0] == ' ' || msg[0] == '\t')
}
