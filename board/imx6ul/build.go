//go:build !tamago

package imx6ul

import (
	"fmt"
	"os"
	"os/exec"
)

// Build builds the package pkg of the module at dir for this board with
// the TamaGo go command gocmd into out, adding ldflags to LinkerFlags.
func Build(gocmd, dir, pkg, out, ldflags string) error {
	cmd := exec.Command(gocmd, "build", "-tags", BuildTags, "-trimpath", "-ldflags", LinkerFlags+" "+ldflags, "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=tamago", "GOOSPKG=github.com/usbarmory/tamago", "GOARCH=arm", "GOARM=7", "GOTOOLCHAIN=local")
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s for TamaGo on arm: %v\n%s", pkg, err, o)
	}
	return nil
}
