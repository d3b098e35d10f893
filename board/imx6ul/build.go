//go:build !tamago

package imx6ul

import (
	"fmt"
	"strings"

	"github.com/tamadump/tamadump/qemu/gobuild"
)

// A Target is one board this package runs on: the build tag that selects
// it and tamago's DCD for its boot ROM (DRAM controller, clocks, pads),
// a file of the github.com/usbarmory/tamago module.
type Target struct {
	Name, Tag, DCD string
}

// Targets: the EVK is also QEMU's mcimx6ul-evk.
var Targets = []Target{
	{Name: "evk", DCD: "board/nxp/mx6ullevk/imximage.cfg"},
	{Name: "usbarmory", Tag: "usbarmory", DCD: "board/usbarmory/mk2/imximage.cfg"},
}

// TargetNamed returns the target name ("" is the EVK).
func TargetNamed(name string) (Target, error) {
	if name == "" {
		return Targets[0], nil
	}
	var names []string
	for _, t := range Targets {
		if t.Name == name {
			return t, nil
		}
		names = append(names, t.Name)
	}
	return Target{}, fmt.Errorf("imx6ul: no target %q; choose %s", name, strings.Join(names, " or "))
}

// Build builds the package pkg of the module at dir for target with the
// TamaGo go command gocmd into out, adding ldflags to LinkerFlags and tags
// to BuildTags.
func Build(gocmd, dir, pkg, out string, target Target, ldflags string, tags ...string) error {
	tags = append([]string{BuildTags}, tags...)
	if target.Tag != "" {
		tags = append(tags, target.Tag)
	}
	err := gobuild.Build(gobuild.Config{Go: gocmd, Dir: dir, Pkg: pkg, Out: out, Env: gobuild.TamaGoEnv("arm"),
		Tags: tags, LDFlags: []string{LinkerFlags, ldflags}})
	if err != nil {
		return fmt.Errorf("building %s for TamaGo on arm (%s): %w", pkg, target.Name, err)
	}
	return nil
}
