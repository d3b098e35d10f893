//go:build !arm

package bus_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestARMUnderQEMU builds this package's tests for linux/arm (GOARM=7),
// runs them under qemu-arm (TestDirectARM checks widths and addresses on
// ordinary memory) and checks the machine code of the ARM accessors: a
// DSB right after each device load and right before each device store,
// the order Direct promises.
func TestARMUnderQEMU(t *testing.T) {
	qemu, err := exec.LookPath("qemu-arm")
	if err != nil {
		t.Skip("SKIP: qemu-arm is not installed (apt-get install qemu-user; make deps does)")
	}
	bin := filepath.Join(t.TempDir(), "bus.arm.test")
	build := exec.Command("go", "test", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm", "GOARM=7", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the arm test: %v\n%s", err, out)
	}
	if out, err := exec.Command(qemu, bin, "-test.run", "TestDirectARM", "-test.v").CombinedOutput(); err != nil || !strings.Contains(string(out), "--- PASS: TestDirectARM") {
		t.Fatalf("arm test under qemu-arm: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "tool", "objdump", "-s", `bus\.mmio(Read|Write)`, bin).CombinedOutput()
	if err != nil {
		t.Fatalf("objdump: %v\n%s", err, out)
	}
	// Each accessor as its instructions, e.g. "MOVW (R0), R1; DSB $15".
	funcs := map[string][]string{}
	var cur string
	insn := regexp.MustCompile(`^\s+\S+\s+0x[0-9a-f]+\s+[0-9a-f]{8}\s+(.*?)\s*$`)
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "TEXT ") {
			cur = strings.Fields(l)[1]
			cur = cur[strings.LastIndex(cur, ".")+1 : strings.Index(cur, "(")]
			continue
		}
		if m := insn.FindStringSubmatch(l); m != nil && cur != "" {
			funcs[cur] = append(funcs[cur], m[1])
		}
	}
	for _, w := range []string{"8", "16", "32"} {
		checkFence(t, funcs["mmioRead"+w], `^MOV[BHW]U? \(R0\), R1$`, 1)
		checkFence(t, funcs["mmioWrite"+w], `^MOV[BHW] R1, \(R0\)$`, -1)
	}
}

// checkFence finds the one device access in code and checks that the
// instruction at distance rel from it is a DSB SY.
func checkFence(t *testing.T, code []string, access string, rel int) {
	t.Helper()
	re := regexp.MustCompile(access)
	at := -1
	for i, c := range code {
		if re.MatchString(c) {
			if at >= 0 {
				t.Fatalf("two device accesses in %q", code)
			}
			at = i
		}
	}
	if at < 0 || at+rel < 0 || at+rel >= len(code) || code[at+rel] != "DSB $15" {
		t.Fatalf("no DSB SY next to the device access in %q", code)
	}
}
