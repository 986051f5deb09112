package main

import (
	"log/slog"
)

// quiet drops the library's log lines, so the output shows only the counts;
// a service would pass its own logger.
var quiet = slog.New(slog.DiscardHandler)
