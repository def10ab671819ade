//go:build !unix

package handlers_test

import "time"

// processCPU is unknown here.
func processCPU() time.Duration { return -1 }
