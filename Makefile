GO ?= go
BUILD ?= build
# make qemu / make image: BOARD=tamago|stockgo (default: tamago when its
# toolchain is installed), NIC=virtio|virtio-mmio-legacy|virtio-pci|e1000,
# RAM in MiB, DUMPDIR where netdumpd saves.
BOARD ?=
NIC ?= virtio
RAM ?= 64
DUMPDIR ?= dumps
# make imx BOARD=imx6ul: TARGET=evk|usbarmory, IMXPKG the program to build
# (the tamadump image; ./board/imx6ul/testdata/bootimage is the board's
# self-test), IMXLDFLAGS more linker flags (-X main.server=...).
TARGET ?= evk
IMXPKG ?= ./cmd/tamadump
IMXLDFLAGS ?=

.PHONY: deps test build image qemu imx bench profile
# deps: QEMU (with qemu-user), gdb and gdb-multiarch, u-boot-tools' mkimage,
# gcc; and Delve at the version go.mod pins, installed as dlv in
# $(go env GOPATH)/bin and built for `go tool dlv` (the tests run it).
deps:
	command -v qemu-system-x86_64 >/dev/null && command -v qemu-system-arm >/dev/null && \
	  command -v gdb >/dev/null && command -v gdb-multiarch >/dev/null && command -v mkimage >/dev/null && \
	  command -v qemu-arm >/dev/null && command -v gcc >/dev/null || \
	  (apt-get update && apt-get install -y qemu-system-x86 qemu-system-arm gdb gdb-multiarch u-boot-tools qemu-user gcc make)
	$(GO) install github.com/go-delve/delve/cmd/dlv
	$(GO) tool -n dlv >/dev/null
# test: go.mod must be tidy (building with TamaGo must not change it), then
# vet and every test.
test:
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...
build:
	$(GO) build -o $(BUILD)/netdumpd ./cmd/netdumpd
	$(GO) build -o $(BUILD)/crashinfo ./cmd/crashinfo
	$(GO) build -o $(BUILD)/decryptcore ./cmd/decryptcore
image:
	$(GO) run ./cmd/tamaqemu -build-only -board "$(BOARD)" -out $(BUILD)
qemu:
	$(GO) run ./cmd/tamaqemu -board "$(BOARD)" -nic $(NIC) -ram $(RAM) -dumpdir $(DUMPDIR) -out $(BUILD)
# The main job with the guest's RAM full of data, sampled through QEMU's
# gdbstub from the panic to the dump's end: where the guest's time goes.
profile:
	$(GO) run ./cmd/tamaqemu -board "$(BOARD)" -nic $(NIC) -ram 256 -fill free -profile 2ms -dumpdir $(DUMPDIR) -out $(BUILD)
imx:
	$(GO) run ./cmd/tamaimx -board "$(BOARD)" -target $(TARGET) -pkg $(IMXPKG) -ldflags "$(IMXLDFLAGS)" -out $(BUILD)
bench:
	scripts/bench-ratios
