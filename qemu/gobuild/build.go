// Package gobuild is the host side of building images: finding and running
// the TamaGo toolchain, and linking an image so that it carries the layout
// of its own Go runtime (board/goruntime), read from the image's DWARF.
package gobuild

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/tamadump/tamadump/board/goruntime"
)

// Config is one build.
type Config struct {
	Go      string   // the go command: "go", or TamaGo's (Command)
	Dir     string   // the module root
	Pkg     string   // the main package, e.g. ./cmd/tamadump
	Out     string   // the ELF to write
	Env     []string // the environment (GOOS, GOARCH, ...): os.Environ() and TamaGoEnv's
	Tags    []string // build tags
	LDFlags []string // linker flags (-T ..., -X main.server=...)
}

// Build builds c.Pkg into c.Out with -trimpath. For the architectures
// board/goruntime counts on (amd64, arm) it links twice:
// the first link's DWARF says where the runtime keeps its allocation
// counters, and the second carries that layout to board/goruntime (-X; a
// program without that package ignores it). Both links set a layout of
// the same length, so the second lays the image out as the first did;
// Build checks that it did.
func Build(c Config) error {
	if !goruntime.Supported(goarch(c.Env)) {
		return link(c, nil)
	}
	if err := link(c, layoutFlag(goruntime.Layout{})); err != nil {
		return err
	}
	l, err := ReadLayout(c.Out)
	if err != nil {
		return fmt.Errorf("reading the runtime's layout: %w", err)
	}
	if err := link(c, layoutFlag(l)); err != nil {
		return err
	}
	again, err := ReadLayout(c.Out)
	if err != nil {
		return fmt.Errorf("reading the runtime's layout: %w", err)
	}
	if again != l {
		return fmt.Errorf("%s: the runtime's layout moved between the two links (%+v, then %+v)", c.Out, l, again)
	}
	return nil
}

func layoutFlag(l goruntime.Layout) []string {
	return []string{"-X", goruntime.Symbol + "=" + l.Encode()}
}

// goarch is the GOARCH of a build environment.
func goarch(env []string) string {
	a := runtime.GOARCH
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GOARCH="); ok {
			a = v
		}
	}
	return a
}

// link runs go build with c's flags and extra linker flags.
func link(c Config, extra []string) error {
	args := []string{"build", "-trimpath"}
	if len(c.Tags) > 0 {
		args = append(args, "-tags", strings.Join(c.Tags, ","))
	}
	if ld := append(append([]string{}, c.LDFlags...), extra...); len(ld) > 0 {
		args = append(args, "-ldflags", strings.Join(ld, " "))
	}
	args = append(args, "-o", c.Out, c.Pkg)
	cmd := exec.Command(c.Go, args...)
	cmd.Dir = c.Dir
	cmd.Env = c.Env
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", c.Go, strings.Join(args, " "), err, out)
	}
	return nil
}
