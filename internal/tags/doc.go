// Package tags is the compact codec for the serf tags a cluster member
// advertises. memberlist caps a member's metadata at 512 bytes, so keys are
// one letter, the role is one byte and endpoints omit the host when it is
// the member's own advertised host.
package tags
