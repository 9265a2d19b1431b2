// Package logbridge turns the log.Logger output of serf and memberlist,
// lines of the form "[LEVEL] subsystem: message", into log/slog records at
// the matching level.
package logbridge
