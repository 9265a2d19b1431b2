// Package logbridge turns the log.Logger output of serf and memberlist,
// lines of the form "[LEVEL] subsystem: message", into log/slog records at
// the matching level. Warnings and errors are bounded per kind of line
// (memberlist logs one per bad packet), with a count of those dropped.
package logbridge
