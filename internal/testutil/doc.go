// Package testutil holds the helpers the tests of several packages share.
package testutil
