package boot

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/tamadump/tamadump/board/imx6ul"
	"github.com/tamadump/tamadump/qemu"
	"github.com/tamadump/tamadump/qemu/gobuild"
)

// The i.MX6UL board (board/imx6ul) on QEMU's mcimx6ul-evk, built for one
// of its targets: IMX6UL for the EVK (the console on UART1, the first
// serial port; the NIC ENET1, the first -net nic), IMX6ULUSBArmory for the
// USB armory Mk II LAN (UART2 and ENET2, the second of each).
const (
	IMX6UL          = "imx6ul"
	IMX6ULUSBArmory = "imx6ul-usbarmory"
)

// IMXENET is the i.MX6UL's own Ethernet controller, QEMU's imx.enet: the
// only NIC of the i.MX6UL boards.
const IMXENET = "imx.enet"

// imxTarget is the board/imx6ul target a board name builds for.
func imxTarget(board string) (imx6ul.Target, bool) {
	switch board {
	case IMX6UL:
		return imx6ul.Targets[0], true
	case IMX6ULUSBArmory:
		return imx6ul.Targets[1], true
	}
	return imx6ul.Target{}, false
}

// IsIMX6UL reports whether board is one of the i.MX6UL boards.
func IsIMX6UL(board string) bool {
	_, ok := imxTarget(board)
	return ok
}

// buildIMX6UL builds cmd/tamadump for the i.MX6UL target of img.Board with
// settings compiled in and img's build tags.
func buildIMX6UL(img *Image, root string) error {
	tg, _ := imxTarget(img.Board)
	gocmd, err := gobuild.Command(root)
	if err != nil {
		return err
	}
	return imx6ul.Build(gocmd, root, "./cmd/tamadump", img.ELF, tg, strings.Join(settingFlags(img.set), " "), img.tags...)
}

// imxArgs boots the image on mcimx6ul-evk; on the USB armory the first
// serial port and ENET1 are left unconnected, so that Start's console and
// NIC are the second of each.
func (img *Image) imxArgs(ramMiB int) []string {
	args := imx6ul.QEMUArgs(img.ELF, ramMiB)
	if img.Board == IMX6ULUSBArmory {
		args = append(args, "-serial", "null", "-net", "nic")
	}
	return args
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
		nicArgs, err = DeviceArgs(cfg.NIC)
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
	if IsIMX6UL(img.Board) {
		return code
	}
	return code<<1 | 1
}
