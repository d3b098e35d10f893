package ddb

import (
	"strings"
	"testing"
)

// dbScript exercises every debugger command and every error path of the
// db> loop: the heap must stay untouched through all of it.
var dbScript = strings.Join([]string{
	"help",
	"show netdump",
	"dump",
	"netdump -s 10.0.2.2",
	"netdump -s 10.0.2.2 -c 10.0.2.15",
	"netdump -s 10.0.2.2 -c 10.0.2.15 -i em9",
	"netdump -s 10.0.2.2 -c 10.0.2.15 -i em0",
	"show netdump",
	"dump",
	"netdump -s 10.0.9.9 -g 10.0.2.1",
	"netdump -s 10.0.2.15",
	"netdump -s 1.2.3",
	"netdump -s fe80::1 -c 10.0.2.15 -i vtnet0",
	"netdump -s 224.0.0.1",
	"netdump -s 10.0.2.2 -s 10.0.2.2",
	"netdump -s 10.0.2.2 -x",
	"netdump -s 10.0.2.2 -p crash",
	"netdump -s 10.0.2.2 extra",
	"netdump -s",
	"netdump -c 10.0.2.15",
	"bt",
	"where",
	"c",
	"continue",
	"show regs",
	"show",
	"frob",
	"netdump -s 10.0.2.3\b\b\b\b\b\b\b\b10.0.2.4 \x1b[A\x1b[D\x01\xff",
	strings.Repeat("x", MaxLine+10),
	strings.Repeat("w ", maxArgs+1),
	"",
	"reset",
	"help", // not reached: reset ends the session
}, "\r\n")

func TestDebugDoesNotAllocate(t *testing.T) {
	var out sink
	for _, failing := range []bool{false, true} {
		m := &fakeMachine{nics: twoNICs, console: &out}
		if failing {
			m.dumpErr, m.configureErr = errNoAck, errNoNIC
		}
		in := &script{data: []byte(dbScript), chunk: 13}
		s := New(m, in, &out)
		allocs := testing.AllocsPerRun(20, func() {
			in.reset()
			out.n = 0
			m.cfg, m.on = Config{}, false
			if err := s.Debug(); err != nil {
				t.Fatal(err)
			}
		})
		if m.resets == 0 {
			t.Errorf("failing %v: the session did not reach reset", failing)
		}
		if allocs != 0 {
			t.Errorf("failing %v: Debug allocated %v times per session", failing, allocs)
		}
		// Make sure the session went where it should, not just quietly.
		raw := out.String()
		got := lf(t, raw)
		if !strings.HasSuffix(got, "db> reset\n") {
			t.Errorf("failing %v: the session did not end at reset", failing)
		}
		for _, want := range []string{
			"netdump: no client address configured",
			"netdump: no interface configured; give -i iface; interfaces: vtnet0 em0\n",
			"netdump: unknown interface \"em9\"; interfaces: vtnet0 em0\n",
			"netdump: server fe80::1 is not of the client address's family\n",
			"netdump: -s: 224.0.0.1 is a multicast address\n",
			"line too long; the limit is 1280 characters\n",
			"too many words; the limit is 16\n",
			"unknown command \"frob\"; try help\n",
			string(stack),
		} {
			if !strings.Contains(got, want) {
				t.Errorf("failing %v: transcript lacks %q", failing, want)
			}
		}
		if failing {
			if !strings.Contains(got, "netdump: interface is down\n") || !strings.Contains(got, "dump: netdump is not configured") {
				t.Errorf("failing: transcript lacks the machine's errors:\n%s", got)
			}
		} else {
			if strings.Count(raw, string(finished)) != 4 || !strings.Contains(got, "interface em0\n  client    10.0.2.15\n  server    10.0.2.2\n") {
				t.Errorf("transcript lacks the dumps:\n%s", got)
			}
		}
	}
}

// BenchmarkDebugSession runs the scripted db> session; with -benchmem it
// shows the allocations per session (0) next to the time.
func BenchmarkDebugSession(b *testing.B) {
	var out sink
	m := &fakeMachine{nics: twoNICs, console: &out}
	in := &script{data: []byte(dbScript)}
	s := New(m, in, &out)
	b.ReportAllocs()
	for b.Loop() {
		in.reset()
		out.n = 0
		m.cfg, m.on = Config{}, false
		s.Debug()
	}
}
