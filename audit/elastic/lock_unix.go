//go:build unix

package elastic

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock of f without waiting, and
// reports whether it did. The lock goes with f's close, or the process's
// end, however it ends.
func lockFile(f *os.File) bool {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}
