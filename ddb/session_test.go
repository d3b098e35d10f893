package ddb

import (
	"bytes"
	"strings"
	"testing"
)

// TestSession drives both prompts through an in-memory console, as a user
// at a serial terminal would: configure, panic, then dump from the debugger.
func TestSession(t *testing.T) {
	in := strings.Join([]string{
		"ifconfig\r\n",
		"dumpon -s 10.0.2.2 -c 10.0.2.51\b\b15 -g 10.0.2.1 vtnet0\r\n",
		"show dumpon\r",
		"dumpon -s 1.2.3 -c 10.0.2.15 vtnet0\r",
		"\r",
		"frob\r",
		"panic disk on fire\r",
		// The debugger reads on from here.
		"show netdump\r",
		"bt\r",
		"dump\r",
		"netdump -s 10.0.2.3 -g 10.0.2.9\r",
		"c\r",
		"reset\r",
		"help\r", // never read: reset does not return on a real machine
	}, "")
	want := "" +
		"tamadump> ifconfig\n" +
		"vtnet0\nem0\n" +
		"tamadump> dumpon -s 10.0.2.2 -c 10.0.2.51\b \b\b \b15 -g 10.0.2.1 vtnet0\n" +
		"dumpon: kernel dumps on vtnet0 to 10.0.2.2\n" +
		"tamadump> show dumpon\n" +
		"netdump: on\n  interface vtnet0\n  client    10.0.2.15\n  server    10.0.2.2\n  gateway   10.0.2.1\n  path      none (server's default)\n" +
		"tamadump> dumpon -s 1.2.3 -c 10.0.2.15 vtnet0\n" +
		"dumpon: -s: \"1.2.3\" is not an IPv4 or IPv6 address\n" +
		"tamadump> \n" +
		"tamadump> frob\n" +
		"unknown command \"frob\"; try help\n" +
		"tamadump> panic disk on fire\n" +
		"\nKDB: enter: panic\n" +
		"db> show netdump\n" +
		"netdump: on\n  interface vtnet0\n  client    10.0.2.15\n  server    10.0.2.2\n  gateway   10.0.2.1\n  path      none (server's default)\n" +
		"db> bt\n" +
		string(stack) +
		"db> dump\n" +
		"netdump finished.\n" +
		"db> netdump -s 10.0.2.3 -g 10.0.2.9\n" +
		"netdump finished.\n" +
		"db> c\n" +
		"cannot continue after a Go panic; use dump or reset\n" +
		"db> reset\n"

	for _, chunk := range []int{0, 1, 7} {
		var out bytes.Buffer
		m := &fakeMachine{nics: twoNICs, console: &out}
		s := New(m, &script{data: []byte(in), chunk: chunk}, &out)
		if err := s.Run(); err != nil {
			t.Fatalf("chunk %d: Run: %v", chunk, err)
		}
		if len(m.panics) != 1 || m.panics[0] != "disk on fire" {
			t.Fatalf("chunk %d: panics %q", chunk, m.panics)
		}
		if err := s.Debug(); err != nil {
			t.Fatalf("chunk %d: Debug: %v", chunk, err)
		}
		if got := lf(t, out.String()); got != want {
			t.Errorf("chunk %d: transcript\n%s\nwant\n%s", chunk, got, want)
		}
		if m.dumps != 2 || m.resets != 1 {
			t.Errorf("chunk %d: %d dumps, %d resets; want 2, 1", chunk, m.dumps, m.resets)
		}
		if w := *cfg("vtnet0", "10.0.2.15", "10.0.2.3", "10.0.2.9", ""); m.cfg != w || m.dumped != w {
			t.Errorf("chunk %d: configuration %+v, dumped with %+v; want %+v", chunk, m.cfg, m.dumped, w)
		}
	}
}

// Both loops refuse lines they cannot take whole, and end quietly when the
// console input ends, without running an unfinished line.
func TestSessionLimits(t *testing.T) {
	long := "dumpon -s 10.0.2.2 -c 10.0.2.15 -p " + strings.Repeat("9", MaxLine) + " vtnet0"
	many := strings.Repeat("w ", maxArgs+1)
	in := long + "\r" + many + "\rdumpon -s 10.0.2.2"
	for _, prompt := range []string{Prompt, DBPrompt} {
		want := prompt + long[:MaxLine] + strings.Repeat("\a", len(long)-MaxLine) + "\n" +
			"line too long; the limit is 1280 characters\n" +
			prompt + many + "\n" +
			"too many words; the limit is 16\n" +
			prompt + "dumpon -s 10.0.2.2"
		var out sink
		m := &fakeMachine{nics: twoNICs}
		s := New(m, &script{data: []byte(in)}, &out)
		var err error
		if prompt == DBPrompt {
			want = "\nKDB: enter: panic\n" + want
			err = s.Debug()
		} else {
			err = s.Run()
		}
		if err != nil {
			t.Errorf("%q: %v", prompt, err)
		}
		if got := lf(t, out.String()); got != want {
			t.Errorf("%q: transcript\n%q\nwant\n%q", prompt, got, want)
		}
		if m.configures != 0 {
			t.Errorf("%q: %d configures", prompt, m.configures)
		}
	}
}

// A console that fails is reported, not retried for ever.
func TestSessionReadError(t *testing.T) {
	r := &dataErr{data: "ifconfig\r", err: errNoNIC}
	var out bytes.Buffer
	s := New(&fakeMachine{nics: oneNIC}, r, &out)
	if err := s.Run(); err != errNoNIC {
		t.Fatalf("Run: %v", err)
	}
	if lf(t, out.String()) != "tamadump> ifconfig\nvtnet0\ntamadump> " {
		t.Fatalf("transcript %q", out.String())
	}
}
