//go:build race

package wecom

// cbRaceEnabled: the race detector makes sync.Pool drop items at random, so allocation counts
// are meaningless.
const cbRaceEnabled = true
