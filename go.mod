module github.com/tamadump/tamadump

go 1.26.0

require (
	github.com/google/btree v1.1.2
	github.com/prometheus/client_golang v1.23.2
	github.com/usbarmory/tamago v1.26.0
	golang.org/x/net v0.44.0
	golang.org/x/sys v0.36.0
	golang.org/x/time v0.12.0
	gvisor.dev/gvisor v0.0.0-20260413194555-9680d69bf798
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/kr/text v0.2.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/prometheus/client_model v0.6.2 // indirect
	github.com/prometheus/common v0.66.1 // indirect
	github.com/prometheus/procfs v0.16.1 // indirect
	go.yaml.in/yaml/v2 v2.4.2 // indirect
	golang.org/x/exp v0.0.0-20231110203233-9a3e6036ecaa // indirect
	google.golang.org/protobuf v1.36.8 // indirect
)

tool github.com/usbarmory/tamago/cmd/tamago
