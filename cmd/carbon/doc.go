// Command carbon is the operator's tool for a carbon domain, as serf's and
// Consul's command lines are for theirs. Each run joins the domain as an
// observer (never counted as a worker or a manager, never routed to, never
// elected), waits until its view holds the domain, runs one command, and
// leaves.
//
//	go build -o carbon ./cmd/carbon
//	export CARBON_DOMAIN=demo CARBON_SEEDS=127.0.0.1:7946
//	carbon members
//
//	NAME       ROLE     SUB-DOMAIN  STATUS  STATE    ACTIVE  REVISION  ADDR
//	manager-1  manager  mgt         alive   serving  active  -         127.0.0.1:7946
//	worker-1   worker   worker      alive   serving  -       -         127.0.0.1:7947
//	worker-2   worker   worker      alive   serving  -       -         127.0.0.1:7948
//
// A run takes about a second and a half on the default lan timings (most
// of it the graceful leave); -profile local makes it faster against
// servers started with -profile local.
//
// # Commands
//
//	members                 the domain's members
//	active [SUB-DOMAIN]     the active manager of each sub-domain with managers
//	watch                   membership changes as they happen, until SIGINT or SIGTERM
//	drain NODE              ask NODE to drain (balancers stop sending it work; an
//	                        active manager hands over first); needs -manager
//	leave NODE              ask NODE to leave the domain gracefully; the example
//	                        servers then exit; needs -manager
//	keys list               gossip keys installed and how many members hold each
//	keys install KEY        rotate the gossip key across the live domain: install
//	keys use KEY            the new key, use it (it is installed first where it is
//	keys remove KEY         missing), then remove the old one (-key must then be the new)
//	revisions               the artifact revision each member runs (cluster/depsync
//	                        reports it) against the active manager's
//	status                  what the status page shows
//
// Flags may come before or after the command and its arguments.
//
// # Who may drain and remove members
//
// A member honours drain and leave only from a manager of its domain
// ([cluster.Node.DrainMember]); anyone else is refused, and carbon exits
// 4. With -manager the tool joins as an observer with the manager role,
// which members honour. Today a role is what a member's tags say, as it is
// for the election, so anyone who holds the gossip key can pass -manager;
// once certificates back roles, members will honour only a verified
// manager identity, and -manager will need a manager's certificate. The
// key commands are serf's keyring queries, which every member holding the
// gossip key answers, manager or not.
//
// # Exit codes
//
//	0  done
//	1  failed (a key operation some members refused, a drain not seen in time)
//	2  usage: a bad flag, an unknown command, a missing or bad argument
//	3  the domain could not be joined: no seed answered within -timeout, a
//	   seed of another domain, or a gossip key the domain does not accept
//	4  refused: the member does not take drain or leave from this tool
//	   (run it with -manager)
//	5  not found: no alive member of that name, or no active manager of
//	   the sub-domain asked for
//	6  revisions: some member's revision lags the active manager's
//
// Errors are one line on stderr beginning "carbon: ", with -json too.
//
// # JSON
//
// With -json each command prints one JSON document on stdout (watch: one
// object per line), with these fields:
//
//	members     an array of the status page's members ([cluster.MemberStatus]:
//	            name, role, acts_as, sub_domain, status, state, routable,
//	            active, claim, revision, lags, trust, addr, endpoints, properties),
//	            sorted by name, without the tool's own observer
//	active      an array of {sub_domain, name, epoch, addr, endpoints}
//	watch       {time, change, member, sub_domain, role, from, to, epoch} per
//	            change; change is present (the members when watch starts),
//	            joined, status, state, revision, gone or active
//	drain/leave {member, op, status, state}, once the change is seen
//	keys list   {keys: {KEY: members holding it}}
//	revisions   {manager_revision, lagging, members: [{name, role,
//	            sub_domain, status, revision, lags}]}
//	status      the status page's JSON ([cluster.StatusReport])
//
// New fields may be added; existing ones keep their names and meaning.
//
// # Flags and environment
//
// The gossip flags are the example servers' (internal/flagenv), with the
// same CARBON_* variables: -domain, -seeds (required), -key, -profile,
// -bind (default 127.0.0.1:0, a free port), -advertise, -log (default
// warn), and -ca, -cert and -cert-key for a domain with a trust root (an
// observer certificate: the tool then proves itself and verifies the
// members; without one it sees the domain as an unverified observer; with
// -manager, a manager certificate, which drain and leave then require).
// -name has no variable, so that a tool run in a server's shell
// never joins under the server's $CARBON_NAME; its default is
// carbon-<host>-<pid>. The tool's own flags: -json ($CARBON_JSON),
// -manager ($CARBON_MANAGER), -timeout ($CARBON_TIMEOUT, default 10s: how
// long joining and the command may take; watch runs until interrupted).
//
// Every run leaves the domain as an observer that left: the status page
// hides those, but serf keeps them in each member's list for its tombstone
// time (a day); a script that runs carbon often may pass a fixed -name.
package main
