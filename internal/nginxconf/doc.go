// Package nginxconf writes the top of a main nginx.conf for an nginx that
// runs unprivileged out of one directory, in the foreground: the example
// load balancers and the lb/nginx tests start nginx that way.
package nginxconf
