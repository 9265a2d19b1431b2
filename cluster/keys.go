package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/serf/serf"
)

// ErrNoEncryption is returned by the key methods of a Node started without
// Config.Key.
var ErrNoEncryption = errors.New("cluster: gossip encryption is not enabled (Config.Key is empty)")

// Key rotation across a live domain, the way serf does it:
//
//  1. InstallKey(new) on any node: every member learns the new key and can
//     decrypt with it, still encrypting with the old one.
//  2. UseKey(new): every member encrypts with the new key.
//  3. RemoveKey(old): every member forgets the old key.
//
// Each call reaches every alive member by a serf query and fails, naming
// the members that did not comply, if any did not.

// InstallKey adds key (16, 24 or 32 bytes) to every member's keyring.
func (n *Node) InstallKey(ctx context.Context, key []byte) error {
	return n.keyOp(ctx, "install", key, (*serf.KeyManager).InstallKey)
}

// UseKey makes key, already installed, the key every member encrypts with.
func (n *Node) UseKey(ctx context.Context, key []byte) error {
	return n.keyOp(ctx, "use", key, (*serf.KeyManager).UseKey)
}

// RemoveKey removes key from every member's keyring. The key in use cannot
// be removed.
func (n *Node) RemoveKey(ctx context.Context, key []byte) error {
	return n.keyOp(ctx, "remove", key, (*serf.KeyManager).RemoveKey)
}

// Keys returns the keys installed in the domain (base64) with the number
// of members that hold each.
func (n *Node) Keys(ctx context.Context) (map[string]int, error) {
	if !n.serf.EncryptionEnabled() {
		return nil, ErrNoEncryption
	}
	resp, err := n.runKeyQuery(ctx, func(km *serf.KeyManager) (*serf.KeyResponse, error) { return km.ListKeys() })
	if err != nil {
		return nil, fmt.Errorf("cluster: list keys: %w", err)
	}
	if err := keyErrors("list", resp); err != nil {
		return resp.Keys, err
	}
	return resp.Keys, nil
}

func (n *Node) keyOp(ctx context.Context, op string, key []byte, f func(*serf.KeyManager, string) (*serf.KeyResponse, error)) error {
	if err := n.checkOpen(); err != nil {
		return err
	}
	if !n.serf.EncryptionEnabled() {
		return ErrNoEncryption
	}
	switch len(key) {
	case 16, 24, 32:
	default:
		return fmt.Errorf("cluster: %s key: got %d bytes, want 16, 24 or 32", op, len(key))
	}
	k := base64.StdEncoding.EncodeToString(key)
	resp, err := n.runKeyQuery(ctx, func(km *serf.KeyManager) (*serf.KeyResponse, error) { return f(km, k) })
	if err != nil {
		return fmt.Errorf("cluster: %s key: %w", op, err)
	}
	return keyErrors(op, resp)
}

func (n *Node) runKeyQuery(ctx context.Context, f func(*serf.KeyManager) (*serf.KeyResponse, error)) (*serf.KeyResponse, error) {
	type result struct {
		r   *serf.KeyResponse
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The key manager runs serf queries: serialise with SetTags (see
		// Node.serfMu).
		n.serfMu.Lock()
		r, err := f(n.serf.KeyManager())
		n.serfMu.Unlock()
		ch <- result{r, err}
	}()
	select {
	case r := <-ch:
		return r.r, r.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func keyErrors(op string, r *serf.KeyResponse) error {
	if r == nil || (r.NumErr == 0 && r.NumResp >= r.NumNodes) {
		return nil
	}
	var bad []string
	for node, msg := range r.Messages {
		bad = append(bad, fmt.Sprintf("%s: %s", node, msg))
	}
	sort.Strings(bad)
	return fmt.Errorf("cluster: %s key: %d of %d members failed, %d answered: %s", op, r.NumErr, r.NumNodes, r.NumResp, strings.Join(bad, "; "))
}
