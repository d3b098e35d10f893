package boot

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/tamadump/tamadump/board/imx6ul"
	"github.com/tamadump/tamadump/qemu"
	"github.com/tamadump/tamadump/qemu/gobuild"
)

// IMX6UL is the i.MX6UL board (board/imx6ul) on QEMU's mcimx6ul-evk, built
// for its EVK target: the console is UART1 (the first serial port, on
// stdio), the NIC ENET1 (the first -net nic).
const IMX6UL = "imx6ul"

// IMXENET is the i.MX6UL's own Ethernet controller, QEMU's imx.enet: the
// only NIC of IMX6UL.
const IMXENET = "imx.enet"

// buildIMX6UL builds cmd/tamadump for the i.MX6UL EVK with settings
// compiled in.
func buildIMX6UL(img *Image, root string) error {
	gocmd, err := gobuild.Command(root)
	if err != nil {
		return err
	}
	return imx6ul.Build(gocmd, root, "./cmd/tamadump", img.ELF, imx6ul.Targets[0], strings.Join(settingFlags(img.set), " "))
}

// settingFlags set the image's build-time defaults (cmd/tamadump's
// variables) to settings.
func settingFlags(settings map[string]string) []string {
	var ld []string
	for _, k := range sortedKeys(settings) {
		ld = append(ld, "-X main."+variable(k)+"="+settings[k])
	}
	return ld
}

// machineArgs is the QEMU executable for a run and the options of its
// NIC on netdev n0: on mcimx6ul-evk ENET1 (nic "" or IMXENET), else one
// of NICs on microvm.
func machineArgs(cfg Config) (bin string, nicArgs []string, err error) {
	bin, pkg := qemu.Executable(cfg.QEMUArgs)
	if _, err := exec.LookPath(bin); err != nil {
		return "", nil, fmt.Errorf("%s not found: install QEMU (apt-get install %s)", bin, pkg)
	}
	if bin != qemu.ARMBinary {
		nicArgs, err = deviceArgs(cfg.NIC)
		return bin, nicArgs, err
	}
	if cfg.NIC != "" && cfg.NIC != IMXENET {
		return "", nil, fmt.Errorf("the i.MX6UL board's NIC is its own ENET (%s), not %q", IMXENET, cfg.NIC)
	}
	return bin, []string{"-net", "nic,netdev=n0,macaddr=" + GuestMAC}, nil
}

// HaltedStatus is QEMU's exit status when the image halts with code:
// isa-debug-exit's (code<<1)|1 on microvm, semihosting's code on the
// i.MX6UL.
func (img *Image) HaltedStatus(code int) int {
	if img.Board == IMX6UL {
		return code
	}
	return code<<1 | 1
}
