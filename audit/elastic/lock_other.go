//go:build !unix

package elastic

import "os"

// lockFile reports true: where advisory locks are not at hand, the Logs of
// a machine share the first slot, so give each its own SpoolDir.
func lockFile(*os.File) bool { return true }
