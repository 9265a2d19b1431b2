// Package nginx keeps Nginx upstreams in sync with a domain's membership,
// for users who put Nginx in front of the cluster as the Carbon clustering
// guide recommends (one balancer per sub-domain in pattern 3).
//
// A [Controller] runs on a node of the domain, usually an observer
// ([cluster.Config.Observer]) in the balancer's process or beside it. For
// each [UpstreamSpec] it renders an upstream block from the live view and
// hands the whole set to a [Writer]:
//
//	c, err := nginx.New(node, nginx.Config{
//		Upstreams: []nginx.UpstreamSpec{{Name: "workers", SubDomain: "worker"}},
//		Writer:    fw, // nginx.NewFileWriter(nginx.FileConfig{Path: "/etc/nginx/conf.d/carbon.conf"})
//	})
//	go c.Run(ctx)
//
// # What goes in an upstream
//
//   - only routable members ([cluster.Member.Routable]: alive, serving, not
//     an observer) of the sub-domain; a member that is starting, draining,
//     failed or left is not there. [cluster.Node.Drain] returns once every
//     alive member, the controller's node included, has seen the member
//     draining, so the member is out of the upstream within
//     [Config.Coalesce] plus one reload of Drain returning: before it stops;
//   - the member's endpoint named [Config.Endpoint] ("http"); endpoints
//     that are not a plain host:port are left out and logged, since they
//     come from other members and end up in a configuration file;
//   - "weight" from the member property [Config.WeightProperty];
//   - in Active/Passive mode, the active manager as a primary and the
//     stand-bys as "backup": Nginx sends them requests only when the active
//     one does not answer (they refuse writes, being read-only), and the
//     controller promotes the new active manager as soon as the view shows
//     it.
//
// Open-source Nginx refuses an upstream without a primary server, so the
// default template renders "server 127.0.0.1:1 down;" when there is none:
// requests then fail with 502 until a member is routable.
//
// # Writers
//
// [FileWriter] is for open-source Nginx, and is what the tests run: it
// renders a text/template ([DefaultTemplate] or the user's) to a file that
// the Nginx configuration includes, replaces it atomically, validates with
// "nginx -t", and reloads. A configuration that does not render or that
// "nginx -t" refuses is never left in place: the previous file is put back,
// Nginx keeps running its current configuration, and the error is returned
// ([ErrTemplate], [ErrInvalid]), logged, and counted in [Stats].
//
// [PlusWriter] changes Nginx Plus upstreams through its REST API without a
// reload. It is untested against a real Nginx Plus (commercial, not
// runnable here); see its documentation.
//
// # Coalescing
//
// Applies are at least [Config.Coalesce] apart (200 ms by default): a
// change after a quiet period is applied at once, so a failure reaches
// Nginx with no added delay, and the changes of a burst (a rolling
// restart, a scale-out) are applied together at the end of the window,
// one reload for many changes.
//
// # What it does not do
//
// It does not manage the rest of the Nginx configuration, start or stop
// Nginx, or check backends' health itself (that is the cluster's failure
// detection; Nginx's own max_fails still applies between two views). A
// reload is asynchronous: Nginx's master starts new workers with the new
// upstreams a few milliseconds after Apply returns, and old workers finish
// the requests they hold. Each Nginx instance needs its own FileWriter; in
// pattern 3, run one Controller per balancer.
package nginx
