package debugnet

import "gvisor.dev/gvisor/pkg/tcpip/checksum"

func checksumOf(b []byte) uint16 { return checksum.Checksum(b, 0) }
