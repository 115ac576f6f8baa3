//go:build !linux

package lists

import (
	"errors"
	"os"
)

// openUnnamed is Linux only (O_TMPFILE); elsewhere copies are written to
// tmp/ by name.
func openUnnamed(dir string) (*os.File, error) { return nil, errors.ErrUnsupported }

func linkUnnamed(f *os.File, dst string) error { return errors.ErrUnsupported }
