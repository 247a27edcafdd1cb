//go:build !unix

package bench

import "time"

// processCPU is not known on this platform; reports show 0.
func processCPU() time.Duration { return 0 }
