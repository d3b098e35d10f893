// Package gobuild is the host side of building images: finding and running
// the TamaGo toolchain, and linking an image so that it carries the layout
// of its own Go runtime (board/goruntime), read from the image's DWARF.
package gobuild

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
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

// Build builds c.Pkg into c.Out with -trimpath.
func Build(c Config) error {
	return link(c, nil)
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
