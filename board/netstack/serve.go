package netstack

import (
	"net/netip"
	"sync"
	"time"
)

// NIC is what Serve drives: the polled interface of the image's drivers.
type NIC interface {
	MAC() [6]byte
	Transmit(frame []byte) error
	Poll(fn func(frame []byte)) int
}

// Serve runs a host at addr on nic for the image's normal operation: it
// answers ARP and ping and echoes UDP on port 7. Its goroutines drive the
// NIC only while holding mu, so a holder of mu has the NIC to itself.
func Serve(nic NIC, mu *sync.Mutex, addr netip.Prefix, gw netip.Addr) error {
	mac := nic.MAC()
	st, err := New(Config{Addr: addr, MAC: mac[:], Gateway: gw})
	if err != nil {
		return err
	}
	echo, err := st.ListenUDP(7)
	if err != nil {
		st.Close()
		return err
	}
	st.Attach(func(f []byte) {
		mu.Lock()
		nic.Transmit(f) //nolint:errcheck // a full ring drops, as a wire would
		mu.Unlock()
	})
	go func() {
		for {
			mu.Lock()
			n := nic.Poll(st.Inject)
			mu.Unlock()
			if n == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(buf[:n], from) //nolint:errcheck
		}
	}()
	return nil
}
