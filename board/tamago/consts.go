package tamago

// The board's facts that host tools need too (building the image, booting
// it, reading its exit status); every other file of the package is target
// code (GOOS=tamago GOARCH=amd64).

// Defaults of the memory layout (board_amd64.s; see the package
// documentation for overriding them at build time).
const (
	DefaultRAMStart = 0x00400000
	DefaultRAMSize  = 0x03400000
	DefaultDMASize  = 0x00200000
)

// Build settings for images using this board, for the TamaGo toolchain:
//
//	GOOS=tamago GOOSPKG=github.com/usbarmory/tamago GOARCH=amd64 \
//	  $TAMAGO build -tags $BuildTags -trimpath -ldflags "$LinkerFlags" .
const (
	BuildTags   = "linkramstart"
	LinkerFlags = "-T 0x00410000 -R 0x1000" // text at DefaultRAMStart+0x10000
)

// Halt codes used by the crash path (QEMU exit status = code<<1 | 1).
const (
	ExitCrashed = 3 // crash with no OnCrash function, or it returned
	ExitNested  = 4 // failure while the OnCrash function ran
	ExitHard    = 6 // failure with no usable Go context (early boot, 3rd failure)
)

// MinRAMMiB is the smallest guest memory (-m) for the default layout.
const MinRAMMiB = (DefaultRAMStart + DefaultRAMSize + DefaultDMASize + 1<<20 - 1) >> 20
