// Command tamadump is the example unikernel: it boots on a board (TamaGo
// on microvm or the i.MX6UL, or stock Go on the shim), finds its NIC, serves ping and UDP echo with
// gVisor's network stack, offers the dumpon shell on the serial console,
// and when it crashes sends its memory to a netdumpd with FreeBSD's
// netdump protocol.
//
// Settings come from build-time defaults (-ldflags "-X main.setting=...")
// and, on the stock-Go board, from words on the kernel command line:
//
//	server=IP client=IP gateway=IP path=DIR nic=vtnet0|em0|virtio-mmio|virtio-pci|e1000
//	             (IPv4 or IPv6 addresses)
//	pubkey=KEY   encrypt dumps for this RSA public key (dumpon -k: the
//	             base64 body of its PEM); cipher=aes256-cbc|chacha20;
//	             elide=on declares zero pages even then (dumpon -E)
//	debug=on        a db> prompt after a crash instead of dumping at once
//	after=halt|reboot
//	hostname=NAME
//	crash=boom|nil|write|index|fault|fatal|goroutine  crash=... after crashdelay=DURATION (tests)
//	fill=MiB|free   random data on the heap before the prompt (tests of dumps at scale)
//	acks=lists|single  ask the server for ACK lists (the default), or for
//	             one ACK per message as FreeBSD's client does
package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/board/target"
	"github.com/tamadump/tamadump/ddb"
	"github.com/tamadump/tamadump/debugnet"
	"github.com/tamadump/tamadump/netdump/client"
)

// Build-time defaults: -ldflags "-X main.server=10.0.2.2 ...".
var (
	version    = "dev"
	server     string
	clientAddr string
	gateway    string
	path       string
	nicName    string
	debug      = "off"
	after      = "halt"
	hostname   = "tamadump"
	crash      string
	crashDelay string
	pubkey     string
	cipher     string
	elide      = "off"
	fill       string
	acks       = "lists"
)

// Pattern is memory the image fills before anything can crash, so that a
// test finds it in the vmcore at the address the image prints.
var Pattern [4096]byte

// Marker is a global a debugger reads from the vmcore.
var Marker uint64 = 0x7461_6d61_6475_6d70 // "tamadump"

func main() {
	m, err := target.New()
	if err != nil {
		fmt.Fprintf(os.Stderr, "tamadump: %v\n", err)
		os.Exit(2)
	}
	out := m.Console()
	for _, w := range m.Settings() {
		set(out, w)
	}
	fmt.Fprintf(out, "tamadump %s on %s (%s): %d MB RAM, booted in %v\r\n",
		version, m.Name(), runtime.Version(), m.MemoryMB(), m.BootTime().Round(time.Millisecond))
	fillPattern()
	if fill != "" {
		fillRAM(out, fill, m.MemoryMB())
	}
	fmt.Fprintf(out, "pattern at %#x, marker at %#x\r\n", uintptr(unsafe.Pointer(&Pattern[0])), uintptr(unsafe.Pointer(&Marker)))

	img := &image{m: m, out: out, line: debugnet.NewLine(out)}
	found, err := m.Ethernet(nicName)
	if err != nil {
		fmt.Fprintf(out, "no network: %v\r\n", err)
	} else {
		img.nic, img.names = found, []string{found.Name}
		fmt.Fprintf(out, "%s: %s, MAC %s\r\n", found.Name, found.Desc, macString(found.NIC.MAC()))
		img.dumper = board.NewDumper(m, found.NIC, hostname, versionString(m))
		if server != "" {
			img.configureDefaults()
		}
	}
	img.shell = ddb.New(img, m.ConsoleInput(), out)
	m.OnCrash(img.crashed)
	if img.dumper != nil {
		img.startNetwork()
	}
	fmt.Fprintf(out, "READY\r\n")
	if crash != "" {
		go trigger(crash, crashDelay)
	}
	if err := img.shell.Run(); err != nil {
		fmt.Fprintf(out, "console: %v\r\n", err)
	}
	select {} // the network keeps serving
}

// set applies one key=value word from the command line.
func set(out io.Writer, w string) {
	k, v, ok := strings.Cut(w, "=")
	if !ok {
		fmt.Fprintf(out, "ignoring %q: not key=value\r\n", w)
		return
	}
	p := map[string]*string{
		"server": &server, "client": &clientAddr, "gateway": &gateway, "path": &path,
		"nic": &nicName, "debug": &debug, "after": &after, "hostname": &hostname,
		"crash": &crash, "crashdelay": &crashDelay, "pubkey": &pubkey, "cipher": &cipher, "elide": &elide,
		"fill": &fill, "acks": &acks,
	}[k]
	if p == nil {
		fmt.Fprintf(out, "ignoring unknown setting %q\r\n", k)
		return
	}
	*p = v
}

func fillPattern() {
	const text = "TAMADUMP-PATTERN-"
	for i := range Pattern {
		Pattern[i] = text[i%len(text)]
	}
}

func versionString(m board.Machine) string {
	return fmt.Sprintf("tamadump %s (%s board, %s)\n", version, m.Name(), runtime.Version())
}

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// image ties the board, the NIC, the dumper and the shell together.
type image struct {
	m      board.Machine
	out    io.Writer
	nic    board.Ethernet
	dumper *board.Dumper
	shell  *ddb.Shell
	names  []string
	line   *debugnet.Line
}

func (img *image) configureDefaults() {
	cfg, err := board.ParseConfig(server, clientAddr, gateway, path)
	if err == nil && pubkey != "" {
		// The key material is made now, before anything can crash.
		cfg.Encrypt, err = ddb.NewEncryptor([]byte(pubkey), cipher, rand.Reader)
		cfg.ElideEncrypted = elide == "on"
	}
	if err == nil {
		switch acks {
		case "single":
			cfg.SingleAcks = true
		case "lists":
		default:
			err = fmt.Errorf("acks=%q: want lists or single", acks)
		}
	}
	if err == nil {
		err = img.dumper.Configure(cfg)
	}
	if err != nil {
		fmt.Fprintf(img.out, "dumpon: %v\r\n", err)
		return
	}
	enc := ""
	if cfg.Encrypt != nil {
		enc = ", encrypted (" + cfg.Encrypt.Algorithm().String() + ")"
	}
	fmt.Fprintf(img.out, "dumpon: netdump to %s from %s on %s%s\r\n", server, clientAddr, img.nic.Name, enc)
}

// startNetwork runs the board's normal-operation network on the NIC: it
// answers ARP and ping, and echoes UDP on port 7.
func (img *image) startNetwork() {
	addr, err := netip.ParseAddr(clientAddr)
	if err != nil {
		fmt.Fprintf(img.out, "network: no address (set client=IP)\r\n")
		return
	}
	gw, _ := netip.ParseAddr(gateway)
	if err := img.m.StartNetwork(netip.PrefixFrom(addr, 24), gw); err != nil {
		fmt.Fprintf(img.out, "network: %v\r\n", err)
		return
	}
	fmt.Fprintf(img.out, "network: %s up, %v, echo on udp/7\r\n", img.nic.Name, netip.PrefixFrom(addr, 24))
}

// crashed is the panic path: every other activity has stopped.
func (img *image) crashed(c *board.Crash) {
	if img.dumper == nil {
		img.line.S("tamadump: crashed, and there is no network interface to dump through\r\n").Flush()
		img.m.Halt(2)
		return
	}
	img.dumper.Crashed(c)
	afterCrash()
	img.line.S("tamadump: ").S(c.Reason.String()).S(": ").B(img.dumper.Panic()).S("\n").Flush()
	var err error
	if debug == "on" {
		err = img.shell.Debug()
	} else if _, ok := img.dumper.Config(); !ok {
		img.line.S("tamadump: netdump is not configured (dumpon); not dumping\r\n").Flush()
		err = errNotConfigured
	} else {
		err = img.dumper.Dump()
	}
	st := img.dumper.Stats()
	img.reportAllocs()
	if err == nil && st.Sent > 0 {
		img.line.S("tamadump: dumped ").U(st.Bytes + st.ZeroBytes).S(" bytes (").U(st.ZeroBytes).S(" zero, not sent) in ").
			U(uint64(st.Elapsed.Milliseconds())).S(" ms, ").U(st.Retransmits).S(" retransmissions (").
			U(st.Refused).S(" refused by the NIC, ").U(st.Early).S(" early, ").U(st.Probes).S(" probes, ").U(st.Timeouts).S(" on timeout, ").
			U(st.Spurious).S(" spurious); ").U(st.AckDatagrams).S(" ACK datagrams, ").U(st.Repeated).S(" ACKs from repeats; window ").
			U(uint64(st.Window)).S(" (peak ").U(uint64(st.PeakWindow)).S("), RTT ").U(uint64(st.MinRTT.Microseconds())).
			S(" us (smoothed ").U(uint64(st.SRTT.Microseconds())).S(" us); transfer ").
			U(uint64(st.Body.Microseconds())).S(" us, its tail ").
			U(uint64(st.Tail.Microseconds())).S(" us\r\n").Flush()
	}
	code := 0
	if err != nil {
		code = 1
	}
	if after == "reboot" {
		img.m.Reboot()
	}
	img.m.Halt(code)
}

// reportAllocs prints how many heap allocations happened after the crash.
func (img *image) reportAllocs() {
	img.line.S("tamadump: heap allocations after the crash: ")
	if n, err := img.dumper.AllocsSinceCrash(); err != nil {
		img.line.S(err.Error())
	} else {
		img.line.U(n)
	}
	img.line.S("\n").Flush()
}

var (
	errNotConfigured = errors.New("netdump is not configured")
	errNoNIC         = errors.New("no network interface")
)

// ddb.Machine.

// NICs is set at boot: the debugger asks after the crash.
func (img *image) NICs() []string { return img.names }

func (img *image) Config() (ddb.Config, bool) {
	if img.dumper == nil {
		return ddb.Config{}, false
	}
	c, ok := img.dumper.Config()
	return ddb.Config{NIC: img.nic.Name, Client: c.Client, Server: c.Server, Gateway: c.Gateway, Path: c.Path,
		Encrypt: c.Encrypt, ElideEncrypted: c.ElideEncrypted}, ok
}

func (img *image) Configure(c ddb.Config) error {
	if img.dumper == nil {
		return errNoNIC
	}
	if !c.Server.IsValid() {
		img.dumper.Off()
		return nil
	}
	return img.dumper.Configure(client.Config{Client: c.Client, Server: c.Server, Gateway: c.Gateway, Path: c.Path,
		Encrypt: c.Encrypt, ElideEncrypted: c.ElideEncrypted})
}

func (img *image) Panic(msg string) { panic(msg) }

func (img *image) Dump(ddb.Config) error {
	if img.dumper == nil {
		return errNoNIC
	}
	return img.dumper.Dump()
}

func (img *image) Backtrace(w io.Writer) {
	if img.dumper != nil {
		img.dumper.Backtrace(w)
	}
}

// Reset is the debugger's reset: the count of allocations after the
// crash, then a reboot.
func (img *image) Reset() {
	if img.dumper != nil {
		img.reportAllocs()
	}
	img.m.Reboot()
}
