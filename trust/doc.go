// Package trust backs roles with certificates, so that holding a domain's
// gossip key is not enough to become a manager.
//
// Every worker holds the gossip key, and workers face the internet. Without
// a trust root, anyone who takes over one worker host can start a node that
// tags itself manager and claims to be the active one. With a trust root,
// each node holds a certificate from a CA the domain trusts naming it in a
// URI SAN in SPIFFE form,
//
//	spiffe://<domain>/<sub-domain>/<role>/<node-name>
//
// and only a certificate that says manager makes a manager:
//
//   - a node proves its certificate by a mutual-TLS handshake to the
//     identity endpoint it advertises ([ServeIdentity], [Verify]); package
//     cluster counts a member as verified only when the proven identity
//     matches its tags, and elects, counts toward quorum and routes to
//     verified members only;
//   - the active manager's claim carries a signature by its key over
//     domain, sub-domain, node name, epoch and the seal of a secret
//     ([SignClaim], [VerifyClaim]); it is signed ahead and takes effect
//     when the claimant reveals the secret ([NewClaimSecret], [Opens]);
//   - artifact revisions carry the publisher's certificate chain and a
//     signature ([SignRevision], [VerifyRevision]); a follower checks that
//     the chain leads to the domain's CA and names a manager;
//   - peer gRPC runs over mutual TLS from the same material
//     ([ServerTLSConfig], [ClientTLSConfig]) and a server can read the
//     caller's identity ([PeerIdentity]).
//
// Signatures are purpose-separated: a claim signature never verifies as a
// revision signature, and neither as anything else a key signs.
//
// A [Source] holds a node's material: loaded from PEM files and reloaded
// when they change ([LoadFiles], [Source.Watch]), fed by a SPIFFE
// Workload API such as a SPIRE agent's and following its rotations
// ([FromWorkloadAPI]), or built in memory ([NewSource]). It implements go-spiffe's x509svid.Source and
// x509bundle.Source, so go-spiffe's tlsconfig works with it. [NewCA] is a
// small CA for tests and first deployments; in production, issue the same
// certificates from an existing CA (cert-manager, Vault, step-ca): a leaf
// with the SPIFFE URI SAN, digitalSignature key usage, no CA flag.
//
// Package trust imports no other package of this module.
package trust
