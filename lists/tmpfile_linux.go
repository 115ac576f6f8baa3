package lists

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// oTmpfile is O_TMPFILE (Linux 3.11): __O_TMPFILE | O_DIRECTORY. The
// syscall package does not define it.
const oTmpfile = 0o20000000 | syscall.O_DIRECTORY

// openUnnamed opens a new file without a name in dir (O_TMPFILE): it
// gets a name only when linkUnnamed links it, and vanishes if it is
// closed before. Creating it takes no lock on dir and writes no
// directory entry, which a file created by name in tmp/ costs on every
// delivery (and ext4 without a journal writes that entry again at each
// fsync of the new file).
func openUnnamed(dir string) (*os.File, error) {
	fd, err := syscall.Open(dir, oTmpfile|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir+"/(unnamed)"), nil
}

// linkUnnamed gives f, opened by openUnnamed, the name dst. It fails
// with an error matching fs.ErrExist when dst exists.
func linkUnnamed(f *os.File, dst string) error {
	// linkat(AT_FDCWD, "/proc/self/fd/N", AT_FDCWD, dst,
	// AT_SYMLINK_FOLLOW) is the way that needs no privilege
	// (AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH).
	src, err := syscall.BytePtrFromString(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return err
	}
	to, err := syscall.BytePtrFromString(dst)
	if err != nil {
		return err
	}
	const atFDCWD = -100
	const atSymlinkFollow = 0x400
	fdcwd := atFDCWD
	_, _, errno := syscall.Syscall6(syscall.SYS_LINKAT, uintptr(fdcwd), uintptr(unsafe.Pointer(src)),
		uintptr(fdcwd), uintptr(unsafe.Pointer(to)), atSymlinkFollow, 0)
	if errno != 0 {
		return &os.LinkError{Op: "link", Old: f.Name(), New: dst, Err: errno}
	}
	return nil
}
