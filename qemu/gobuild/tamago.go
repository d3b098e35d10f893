package gobuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Toolchain returns the TamaGo go command: $TAMAGO, or the one
// `go tool tamago` would run (<cache>/tamago-go/tamago-goX.Y.Z/bin/go, the
// version being that of the github.com/usbarmory/tamago module).
func Toolchain() (string, error) {
	if t := os.Getenv("TAMAGO"); t != "" {
		if _, err := os.Stat(t); err != nil {
			return "", fmt.Errorf("TAMAGO=%s: %w", t, err)
		}
		return t, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	// The module version of github.com/usbarmory/tamago selects the
	// toolchain tag; go.mod pins v1.26.0.
	p := filepath.Join(cache, "tamago-go", "tamago-go1.26.0", "bin", "go")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no TamaGo toolchain: %s is missing and $TAMAGO is not set. "+
			"TamaGo's installer (go tool tamago) clones github.com/usbarmory/tamago-go at tag tamago-go1.26.0 "+
			"into %s and builds it with src/make.bash; or set TAMAGO to a TamaGo go binary", p, filepath.Dir(filepath.Dir(p)))
	}
	return p, nil
}

// Command is the go command that builds for GOOS=tamago: $TAMAGO, or
// TamaGo's own launcher (`go tool tamago`, run through its path: the stock
// go command refuses GOOS=tamago before it would start the tool), once
// Toolchain has found the toolchain it launches.
func Command(root string) (string, error) {
	if _, err := Toolchain(); err != nil {
		return "", err
	}
	if t := os.Getenv("TAMAGO"); t != "" {
		return t, nil
	}
	cmd := exec.Command("go", "tool", "-n", "tamago")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go tool -n tamago: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// TamaGoEnv is the environment of a TamaGo build for goarch ("amd64",
// or "arm" with GOARM=7).
func TamaGoEnv(goarch string) []string {
	env := append(os.Environ(), "GOOS=tamago", "GOOSPKG=github.com/usbarmory/tamago", "GOARCH="+goarch, "GOTOOLCHAIN=local")
	if goarch == "arm" {
		env = append(env, "GOARM=7")
	}
	return env
}
