package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/tamadump/tamadump/board/stockgo/shim"
	"github.com/tamadump/tamadump/board/tamago"
	"github.com/tamadump/tamadump/qemu/gobuild"
)

// Image is a built tamadump image and how QEMU boots it.
type Image struct {
	Board string // "tamago" or "stockgo"
	ELF   string // the Go program (for gdb)
	shim  string
	set   map[string]string
	tags  []string

	// Symbols is the symbols directory the ELF is kept in, under its
	// build ID (netdump/symbols), for the analysis of its dumps.
	Symbols string
}

// Boards.
const (
	TamaGo  = "tamago"
	StockGo = "stockgo"
)

// ModuleRoot finds the repository from this source file.
func ModuleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// PickBoard is TamaGo when its toolchain is installed, else stock Go, with
// the reason TamaGo was passed over.
func PickBoard() (board string, why error) {
	if _, err := gobuild.Toolchain(); err != nil {
		return StockGo, err
	}
	return TamaGo, nil
}

// Build builds the image for board (TamaGo, StockGo, IMX6UL or
// IMX6ULUSBArmory) into dir, with
// settings (server, client, crash, ... as cmd/tamadump documents) as its
// defaults, and build tags (crashalloc: the negative control of the
// allocation count after the crash).
func Build(board, dir string, settings map[string]string, tags ...string) (*Image, error) {
	img := &Image{Board: board, ELF: filepath.Join(dir, "tamadump-"+board+".elf"), set: settings, tags: tags}
	root := ModuleRoot()
	c := gobuild.Config{Go: "go", Dir: root, Pkg: "./cmd/tamadump", Out: img.ELF, Tags: tags}
	switch board {
	case StockGo:
		c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		for _, k := range sortedKeys(settings) {
			if buildTime[k] {
				c.LDFlags = append(c.LDFlags, "-X main."+variable(k)+"="+settings[k])
			}
		}
		if err := gobuild.Build(c); err != nil {
			return nil, fmt.Errorf("building the stock-Go image: %w", err)
		}
		s, err := shim.Build(dir)
		if err != nil {
			return nil, err
		}
		img.shim = s
	case TamaGo:
		gocmd, err := gobuild.Command(root)
		if err != nil {
			return nil, err
		}
		c.Go, c.Env = gocmd, gobuild.TamaGoEnv("amd64")
		c.Tags, c.LDFlags = append(append([]string{}, tags...), tamago.BuildTags), []string{tamago.LinkerFlags}
		c.LDFlags = append(c.LDFlags, settingFlags(settings)...)
		if err := gobuild.Build(c); err != nil {
			return nil, fmt.Errorf("building the TamaGo image: %w", err)
		}
	case IMX6UL, IMX6ULUSBArmory:
		if err := buildIMX6UL(img, root); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("unknown board " + board + "; choose tamago, stockgo, imx6ul or imx6ul-usbarmory")
	}
	if err := img.keepSymbols(dir); err != nil {
		return nil, err
	}
	return img, nil
}

// With is the image with more settings: the same binary with another
// command line on the stock-Go board (a new build for a build-time
// setting), a new build (in a directory next to this one's) on TamaGo,
// whose settings are compiled in.
func (img *Image) With(extra map[string]string) (*Image, error) {
	set := map[string]string{}
	for k, v := range img.set {
		set[k] = v
	}
	for k, v := range extra {
		set[k] = v
	}
	rebuild := img.Board != StockGo
	for k := range extra {
		rebuild = rebuild || buildTime[k]
	}
	if !rebuild {
		c := *img
		c.set = set
		return &c, nil
	}
	dir, err := os.MkdirTemp(filepath.Dir(img.ELF), "variant-")
	if err != nil {
		return nil, err
	}
	return Build(img.Board, dir, set, img.tags...)
}

// buildTime are the settings the stock-Go image takes at build time only:
// a public key does not fit the shim's 256-byte command line.
var buildTime = map[string]bool{"pubkey": true}

// variable maps a setting to the image's variable (cmd/tamadump).
func variable(k string) string {
	switch k {
	case "client":
		return "clientAddr"
	case "nic":
		return "nicName"
	case "crashdelay":
		return "crashDelay"
	}
	return k
}

func sortedKeys(m map[string]string) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// QEMUArgs boots the image with ramMiB of RAM (0: the board's default).
// Settings of the stock-Go image travel on its command line.
func (img *Image) QEMUArgs(ramMiB int) []string {
	if ramMiB == 0 {
		ramMiB = DefaultRAMMiB
	}
	if img.Board == TamaGo {
		return TamaGoArgs(img.ELF, ramMiB)
	}
	if IsIMX6UL(img.Board) {
		return img.imxArgs(ramMiB)
	}
	words := []string{"GODEBUG=gcshrinkstackoff=1"} // the crash watcher's grown stack must stay
	for _, k := range sortedKeys(img.set) {
		if !buildTime[k] {
			words = append(words, k+"="+img.set[k])
		}
	}
	return append(shim.QEMUArgs(img.shim, img.ELF, ramMiB, "-- "+strings.Join(words, " ")), "-nodefaults")
}

// DefaultRAMMiB is the guest memory when none is given: enough for both
// boards (the TamaGo board needs tamago.MinRAMMiB), small enough that a
// whole dump is quick under emulation.
const DefaultRAMMiB = 64
