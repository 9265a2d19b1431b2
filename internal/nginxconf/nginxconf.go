package nginxconf

import (
	"fmt"
	"os"
)

// Head returns nginx.conf from its first line to the opening of the http
// block, with the pid file, error log and every temp path under dir. The
// caller appends its http directives and server blocks, then "}\n".
func Head(dir string) string {
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // else workers run as nobody and cannot use dir
	}
	return fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
%[1]s
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
`, user, dir)
}
