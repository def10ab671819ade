package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/wecampus/wecampus/app"
)

// parseLevel reads log.level.
func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("must be debug, info, warn or error (got %q)", s)
}

// newLogger builds the process logger from log:, masking mobile numbers through app's handler
// (names are masked where they are logged, with app.MaskName). An invalid level (reported by
// validation) falls back to info.
func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	level, err := parseLevel(c.Level)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if c.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(app.NewMaskingHandler(h))
}
