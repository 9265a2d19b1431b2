package depsync

import (
	"fmt"

	"github.com/carbonkit/carbon/trust"
)

// With a trust root on the Node, the publishing manager signs each
// revision, and a follower checks the signature against the domain's CA
// and the name of the active manager it follows before it fetches
// anything: a rogue that makes itself look like the source (a forged
// endpoint, a stolen worker certificate) cannot make a worker run its
// artifacts.

// sign attaches the publisher's chain and signature to m.
func (s *Syncer) sign(m *manifest) error {
	src := s.n.TrustSource()
	if src == nil {
		return nil
	}
	rs, err := trust.SignRevision(src, trust.Revision{
		Domain: s.n.Domain(), SubDomain: s.n.SubDomain(), Epoch: m.rev.Epoch, Seq: m.rev.Seq, Root: m.rev.Root[:],
	})
	if err != nil {
		return fmt.Errorf("depsync: signing %s: %w", m.rev.ID(), err)
	}
	m.chain, m.sig = rs.Chain, rs.Sig
	return nil
}

// checkSigned verifies that m was signed by mgrName, the active manager
// this node follows, a manager of its domain by certificate.
func (s *Syncer) checkSigned(m *manifest, mgrName string) error {
	src := s.n.TrustSource()
	if src == nil {
		return nil
	}
	mgr, ok := s.n.View().Member(mgrName)
	if !ok {
		return fmt.Errorf("%w: %s: %s is not in this node's view", ErrUnsigned, m.rev.ID(), mgrName)
	}
	id, err := trust.VerifyRevision(src, trust.Revision{
		Domain: s.n.Domain(), SubDomain: mgr.SubDomain, Epoch: m.rev.Epoch, Seq: m.rev.Seq, Root: m.rev.Root[:],
	}, trust.RevisionSignature{Chain: m.chain, Sig: m.sig})
	if err != nil {
		return fmt.Errorf("%w: %s from %s: %v", ErrUnsigned, m.rev.ID(), mgrName, err)
	}
	if id.Name != mgrName || id.SubDomain != mgr.SubDomain {
		return fmt.Errorf("%w: %s was signed by %s, the active manager is %s", ErrUnsigned, m.rev.ID(), id, mgrName)
	}
	return nil
}
