//go:build !race

package wecom

const cbRaceEnabled = false
