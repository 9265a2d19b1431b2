package cluster

import (
	"testing"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/carbonkit/carbon/internal/logbridge"
)

// rogue starts a raw serf node on 127.0.0.1 with the given gossip key and
// hand-written tags, joined to seed: what an attacker who holds a domain's
// key (any worker host does) can run. It stays until the test ends unless
// the test shuts it down first.
func rogue(t testing.TB, name string, key []byte, t0 map[string]string, seed string) *serf.Serf {
	t.Helper()
	sc := serfConfig(ProfileLocal)
	sc.NodeName, sc.MemberlistConfig.Name = name, name
	sc.Tags = t0
	sc.Logger = logbridge.New(quiet, "serf")
	sc.MemberlistConfig.Logger = logbridge.New(quiet, "memberlist")
	sc.LogOutput, sc.MemberlistConfig.LogOutput = nil, nil
	if len(key) > 0 {
		kr, err := memberlist.NewKeyring(nil, key)
		if err != nil {
			t.Fatal(err)
		}
		sc.MemberlistConfig.Keyring = kr
	}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0, Logger: sc.MemberlistConfig.Logger})
	if err != nil {
		t.Fatal(err)
	}
	sc.MemberlistConfig.Transport = nt
	sc.MemberlistConfig.BindAddr, sc.MemberlistConfig.AdvertiseAddr = "127.0.0.1", "127.0.0.1"
	sc.MemberlistConfig.BindPort, sc.MemberlistConfig.AdvertisePort = nt.GetAutoBindPort(), nt.GetAutoBindPort()
	ch := make(chan serf.Event, 4096)
	sc.EventCh = ch
	s, err := serf.Create(sc)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			select {
			case <-ch:
			case <-s.ShutdownCh():
				return
			}
		}
	}()
	t.Cleanup(func() { s.Shutdown() })
	if _, err := s.Join([]string{seed}, true); err != nil {
		t.Fatalf("rogue %s: join %s: %v", name, seed, err)
	}
	return s
}
