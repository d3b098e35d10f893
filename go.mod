module github.com/tamadump/tamadump

go 1.26.0

require (
	github.com/usbarmory/imx-enet v0.0.0-20240909221101-ae8625bf5b84
	github.com/usbarmory/tamago v1.26.0
	golang.org/x/net v0.44.0
	golang.org/x/sys v0.36.0
	gvisor.dev/gvisor v0.0.0-20260413194555-9680d69bf798
)

require (
	github.com/google/btree v1.1.2 // indirect
	golang.org/x/exp v0.0.0-20231110203233-9a3e6036ecaa // indirect
	golang.org/x/time v0.12.0 // indirect
)

tool github.com/usbarmory/tamago/cmd/tamago
