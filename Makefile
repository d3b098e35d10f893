GO ?= go
BUILD ?= build
# make qemu / make image: BOARD=tamago|stockgo (default: tamago when its
# toolchain is installed), NIC=virtio|virtio-mmio-legacy|virtio-pci|e1000,
# RAM in MiB, DUMPDIR where netdumpd saves.
BOARD ?=
NIC ?= virtio
RAM ?= 64
DUMPDIR ?= dumps

.PHONY: deps test build image qemu bench
# deps: QEMU, gdb, gcc; and Delve at the version go.mod pins, installed as
# dlv in $(go env GOPATH)/bin and built for `go tool dlv` (the tests run it).
deps:
	command -v qemu-system-x86_64 >/dev/null && command -v qemu-system-arm >/dev/null && \
	  command -v gdb >/dev/null && command -v gcc >/dev/null || \
	  (apt-get update && apt-get install -y qemu-system-x86 qemu-system-arm gdb gcc make)
	$(GO) install github.com/go-delve/delve/cmd/dlv
	$(GO) tool -n dlv >/dev/null
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...
build:
	$(GO) build -o $(BUILD)/netdumpd ./cmd/netdumpd
	$(GO) build -o $(BUILD)/crashinfo ./cmd/crashinfo
image:
	$(GO) run ./cmd/tamaqemu -build-only -board "$(BOARD)" -out $(BUILD)
qemu:
	$(GO) run ./cmd/tamaqemu -board "$(BOARD)" -nic $(NIC) -ram $(RAM) -dumpdir $(DUMPDIR) -out $(BUILD)
bench:
	scripts/bench-ratios
