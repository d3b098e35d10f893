package main

import (
	"slices"
	"testing"

	"github.com/tamadump/tamadump/board/imx6ul"
	"github.com/tamadump/tamadump/qemu/gobuild"
)

// TestIMX6ULImageImports: the image built for the i.MX6UL links its board
// (board/target picks it under tamago && arm), imx-enet for normal
// networking, and nothing host-only.
func TestIMX6ULImageImports(t *testing.T) {
	gocmd, err := gobuild.Toolchain()
	if err != nil {
		t.Skipf("SKIP the i.MX6UL image: %v", err)
	}
	d := deps(t, gocmd, gobuild.TamaGoEnv("arm"), imx6ul.BuildTags, "./cmd/tamadump")
	for _, want := range []string{"github.com/tamadump/tamadump/board/imx6ul", "github.com/usbarmory/imx-enet", "github.com/tamadump/tamadump/drivers/imxenet"} {
		if !slices.Contains(d, want) {
			t.Errorf("the i.MX6UL image does not link %s", want)
		}
	}
	if slices.Contains(d, "github.com/tamadump/tamadump/board/tamago") {
		t.Error("the i.MX6UL image links the amd64 TamaGo board")
	}
	if bad := hostOnly(d); len(bad) > 0 {
		t.Errorf("the i.MX6UL image links host-only packages: %v", bad)
	}
}
