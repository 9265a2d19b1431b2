package carboncli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/flagenv"
	"github.com/carbonkit/carbon/role"
)

// Exit codes of Main: scripts may rely on them.
const (
	// ExitOK: the command did what it says.
	ExitOK = 0
	// ExitFailed: the command failed (a key operation some members
	// refused, a drain not seen in time, ...); stderr says why.
	ExitFailed = 1
	// ExitUsage: a bad flag, an unknown command or a missing argument.
	ExitUsage = 2
	// ExitUnreachable: the domain could not be joined (no seed answered
	// within -timeout, a seed of another domain, a gossip key mismatch).
	ExitUnreachable = 3
	// ExitRefused: the member refused a drain or leave because this tool
	// does not act for the managers (see -manager).
	ExitRefused = 4
	// ExitNotFound: no alive member of that name, or no active manager
	// of the sub-domain asked for.
	ExitNotFound = 5
	// ExitLagging: revisions found members whose revision lags the active
	// manager's.
	ExitLagging = 6
)

// usageText is printed by -h and after a usage error.
const usageText = `usage: carbon [flags] COMMAND [ARGS] [flags]

Joins a domain as an observer (never routed to, never elected), runs one
command and leaves.

commands:
  members                 the domain's members (a table, or -json)
  active [SUB-DOMAIN]     the active manager of each sub-domain with managers
  watch                   membership changes as they happen, until interrupted
  drain NODE              ask NODE to drain (needs -manager)
  leave NODE              ask NODE to leave the domain (needs -manager)
  keys list               gossip keys installed and how many members hold each
  keys install|use|remove KEY
                          rotate the gossip key across the live domain
  revisions               the artifact revision each member runs (exit 6 if one lags)
  status                  the status page's content

exit codes: 0 ok, 1 failed, 2 usage, 3 domain unreachable, 4 refused,
5 not found, 6 a member lags.

flags (each also from $CARBON_ + its name in upper case, '-' as '_'; -name
has no variable, so that a server's $CARBON_NAME never names the tool):
`

// options are the parsed command line.
type options struct {
	gossip  *flagenv.Gossip
	json    bool
	manager bool
	timeout time.Duration
	cmd     string
	args    []string
}

// usageError is a bad command line: exit ExitUsage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parse reads the flags, which may come before and after the command and
// its arguments.
func parse(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("carbon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	o := &options{}
	host, _ := os.Hostname()
	o.gossip = flagenv.DefineGossip(fs, flagenv.GossipDefaults{Bind: "127.0.0.1:0", LogLevel: "warn", NameWithoutEnv: true, NameDefault: "carbon-<host>-<pid>"})
	jsonOut := flagenv.Bool(fs, "json", false, "print JSON (see the command's doc) instead of a table")
	manager := flagenv.Bool(fs, "manager", false, "act for the managers: join as an observer with the manager role, which drain and leave need")
	timeout := flagenv.String(fs, "timeout", "10s", "how long joining and the command may take (watch: joining only)")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	d, err := time.ParseDuration(*timeout)
	if err != nil || d <= 0 {
		return nil, usageError{fmt.Sprintf("-timeout: want a positive duration such as 10s, got %q", *timeout)}
	}
	o.json, o.manager, o.timeout = *jsonOut, *manager, d
	if len(pos) == 0 {
		return nil, usageError{"no command (members, active, watch, drain, leave, keys, revisions, status)"}
	}
	o.cmd, o.args = pos[0], pos[1:]
	if o.gossip.Name == "" {
		o.gossip.Name = "carbon-" + host + "-" + strconv.Itoa(os.Getpid())
	}
	return o, nil
}

// Main runs the carbon command line with args (without the program name)
// and returns its exit status. ctx ends watch (the program passes one that
// SIGINT and SIGTERM cancel).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "carbon: %v\n", err)
		fmt.Fprintln(stderr, "run carbon -h for the commands and flags")
		return ExitUsage
	}
	c, ok := commands[o.cmd]
	if !ok {
		fmt.Fprintf(stderr, "carbon: unknown command %q (members, active, watch, drain, leave, keys, revisions, status)\n", o.cmd)
		return ExitUsage
	}
	if len(o.args) < c.minArgs || len(o.args) > c.maxArgs {
		fmt.Fprintf(stderr, "carbon: %s: usage: carbon %s\n", o.cmd, c.usage)
		return ExitUsage
	}
	if c.check != nil {
		if err := c.check(o.args); err != nil {
			fmt.Fprintf(stderr, "carbon: %s: %v\n", o.cmd, err)
			return ExitUsage
		}
	}
	// memberlist may log from a goroutine that outlives Close by a probe
	// timeout: past Main's return, logs are dropped, not written to a
	// stderr the caller may reuse.
	logw := &closingWriter{w: stderr}
	defer logw.close()
	n, code := join(ctx, o, stderr, logw)
	if n == nil {
		return code
	}
	defer func() {
		lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Leave(lctx)
	}()
	cctx := ctx
	if !c.untimed {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	err = c.run(cctx, &env{n: n, o: o, out: stdout})
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "carbon: %s: %v\n", o.cmd, err)
	var ce codeError
	switch {
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, cluster.ErrNotManager):
		if !o.manager {
			fmt.Fprintln(stderr, "carbon: only a manager may do this: run carbon with -manager (today roles are what members say of themselves; once certificates back them, -manager needs a manager's)")
		}
		return ExitRefused
	case errors.Is(err, cluster.ErrNoMember):
		return ExitNotFound
	}
	return ExitFailed
}

// codeError is an error with its exit status.
type codeError struct {
	code int
	err  error
}

func (e codeError) Error() string { return e.err.Error() }
func (e codeError) Unwrap() error { return e.err }

// join joins the domain as an observer and waits until the view holds
// the domain; on failure it reports and returns the exit status.
func join(ctx context.Context, o *options, stderr, logw io.Writer) (*cluster.Node, int) {
	cfg, err := o.gossip.Config()
	if err != nil {
		fmt.Fprintf(stderr, "carbon: %v\n", err)
		return nil, ExitUsage
	}
	if len(cfg.Seeds) == 0 {
		fmt.Fprintln(stderr, "carbon: -seeds is required (or $CARBON_SEEDS): the tool joins the domain through them")
		return nil, ExitUsage
	}
	if cfg.Logger, err = o.gossip.Logger(logw); err != nil {
		fmt.Fprintf(stderr, "carbon: %v\n", err)
		return nil, ExitUsage
	}
	cfg.Observer = true
	if o.manager {
		cfg.Role = role.Manager
	}
	jctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	n, err := cluster.Join(jctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "carbon: joining domain %q: %v\n", cfg.Domain, err)
		if errors.Is(err, cluster.ErrInvalidConfig) {
			return nil, ExitUsage
		}
		return nil, ExitUnreachable
	}
	if err := n.Synced(jctx); err != nil {
		fmt.Fprintf(stderr, "carbon: joining domain %q: %v\n", cfg.Domain, err)
		n.Close()
		return nil, ExitUnreachable
	}
	return n, ExitOK
}

// closingWriter forwards writes until closed, then drops them.
type closingWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (c *closingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return len(p), nil
	}
	return c.w.Write(p)
}

func (c *closingWriter) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}
