package main

import (
	"strings"
	"testing"
)

// The image itself is tested whole, booted under QEMU (qemu/boot); this
// covers how it reads its settings.
func TestSettings(t *testing.T) {
	defer func(s, c, d string) { server, clientAddr, debug = s, c, d }(server, clientAddr, debug)
	var out strings.Builder
	for _, w := range []string{"server=10.0.0.1", "client=10.0.0.2", "debug=on", "bogus", "colour=red"} {
		set(&out, w)
	}
	if server != "10.0.0.1" || clientAddr != "10.0.0.2" || debug != "on" {
		t.Fatalf("settings not applied: %q %q %q", server, clientAddr, debug)
	}
	for _, want := range []string{`ignoring "bogus": not key=value`, `ignoring unknown setting "colour"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no complaint %q in %q", want, out.String())
		}
	}
}

func TestPattern(t *testing.T) {
	fillPattern()
	if string(Pattern[:34]) != "TAMADUMP-PATTERN-TAMADUMP-PATTERN-" {
		t.Fatalf("pattern %q", Pattern[:34])
	}
}
