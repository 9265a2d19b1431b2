// Package carboncli is the carbon command-line tool ([Main]), kept apart
// from cmd/carbon's main so that tests run it in-process against a live
// domain. The commands, their -json output, the exit codes and the flags
// are documented in cmd/carbon's package doc.
package carboncli
