package board

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/netdump/buildid"
	"github.com/tamadump/tamadump/netdump/dumptest"
)

// selfID is the test binary's build ID, read from its file.
func selfID(t *testing.T) buildid.ID {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	id, err := buildid.File(exe)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// dumpWith dumps a crash through a Dumper whose identity comes from self,
// and returns the info file and what the console said.
func dumpWith(t *testing.T, self func() (buildid.ID, error)) (info, said string) {
	s := dumptest.NewServer(t, 1500)
	link := linktest.New(dumptest.ClientMAC, 1500, 4096, linktest.Faults{})
	link.Attach(s.Stack.Inject)
	s.Stack.Attach(link.Deliver)
	var out dumptest.SyncBuffer
	m := &machine{segs: dumptest.Segments(64<<10, 0.3, 5), console: console, out: &out}
	d := NewDumper(m, &resettable{Link: link}, "testbox", "tamadump test\n")
	d.info.BuildID, d.version = nil, "tamadump test\n" // as before identify
	d.identify(self)
	cfg, _ := ParseConfig("127.0.9.1", "127.0.9.2", "", "")
	cfg.Idle = runtime.Gosched
	if err := d.Configure(cfg); err != nil {
		t.Fatal(err)
	}
	d.Crashed(&Crash{Reason: Panic})
	if err := d.Dump(); err != nil {
		t.Fatalf("dump: %v\n%s", err, out.String())
	}
	return string(dumptest.WaitFile(t, filepath.Join(s.Dir, "info.127.0.9.2.0"))), out.String()
}

// The KDH version string ends with the image's build ID (the core's note
// is checked byte for byte by TestDumpAfterCrash); an image that cannot
// tell its ID dumps all the same and says why.
func TestDumpNamesTheImage(t *testing.T) {
	id := selfID(t)
	info, _ := dumpWith(t, buildid.Self)
	if want := "Version String: tamadump test build-id " + id.String() + "\n"; !strings.Contains(info, want) {
		t.Fatalf("info lacks %q:\n%s", want, info)
	}
	info, said := dumpWith(t, func() (buildid.ID, error) { return nil, errors.New("no note here") })
	if !strings.Contains(info, "Version String: tamadump test\n") || !strings.Contains(info, "Dump complete") {
		t.Fatalf("unnamed dump:\n%s", info)
	}
	if !strings.Contains(said, "the dump will not name its image: no note here") {
		t.Fatalf("console does not say why the dump is unnamed:\n%s", said)
	}
}
