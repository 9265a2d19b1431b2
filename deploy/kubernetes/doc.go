// Package kubernetes holds no code: it is the home of the Kubernetes
// manifests beside it (pattern 3: managers and workers as two sub-domains
// of one domain, a gateway per sub-domain), and its tests validate them.
// It is a module of its own so that the SDK's go.mod does not carry the
// Kubernetes API types the tests decode into. See docs/KUBERNETES.md.
//
// The tests decode every manifest strictly into the k8s.io/api types
// (unknown or duplicate fields fail), check that the files fit together
// (seeds name headless Services, probes, grace periods, Secrets, the
// PodDisruptionBudget, every CARBON_* variable is a flag of the program
// it is given to), and run kubeconform against JSON schemas generated
// from the same types, offline.
package kubernetes
