GO ?= go
BUILD ?= build

.PHONY: deps test build image qemu
deps:
	command -v qemu-system-x86_64 >/dev/null && command -v qemu-system-arm >/dev/null && command -v gdb >/dev/null || \
	  (apt-get update && apt-get install -y qemu-system-x86 qemu-system-arm gdb gcc make)
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...
build:
	$(GO) build -o $(BUILD)/netdumpd ./cmd/netdumpd
image qemu:
	@echo "not yet: the image lands with the image issue (#5/#6)"; exit 1
