package lists

import (
	"errors"
	"fmt"

	"github.com/emersion/go-smtp"
)

// TemporaryError is a failure that a later attempt may not have: the
// message is retried after a back-off. An error that is neither a
// TemporaryError nor a PermanentError counts as temporary.
type TemporaryError struct{ Err error }

func (e *TemporaryError) Error() string   { return e.Err.Error() }
func (e *TemporaryError) Unwrap() error   { return e.Err }
func (e *TemporaryError) permanent() bool { return false }

// PermanentError is a failure that no retry will fix: the message (or
// the recipient, for a Destination) is dead-lettered.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string   { return e.Err.Error() }
func (e *PermanentError) Unwrap() error   { return e.Err }
func (e *PermanentError) permanent() bool { return true }

// mark is a TemporaryError or a PermanentError.
type mark interface {
	error
	permanent() bool
}

// Temporary marks err as temporary, even when it wraps a PermanentError:
// the outermost mark wins. nil stays nil.
func Temporary(err error) error {
	if err == nil {
		return nil
	}
	return &TemporaryError{err}
}

// Permanent marks err as permanent, even when it wraps a
// TemporaryError: the outermost mark wins. nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{err}
}

// IsPermanent reports whether the outermost TemporaryError or
// PermanentError in err's tree (errors.As order) is a PermanentError. So
// Temporary(Permanent(x)) is temporary: a caller that decides a
// permanent failure is worth another attempt (a delivery that timed out,
// say) only has to wrap it.
func IsPermanent(err error) bool {
	var m mark
	return errors.As(err, &m) && m.permanent()
}

// smtpError classifies a reply of an LMTP or SMTP server: 5xx is
// permanent (RFC 5321 §4.2.1), anything else, including a broken
// connection, is temporary.
func smtpError(what string, err error) error {
	if err == nil {
		return nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code >= 500 && se.Code < 600 {
		return Permanent(fmt.Errorf("%s: %w", what, err))
	}
	return Temporary(fmt.Errorf("%s: %w", what, err))
}
