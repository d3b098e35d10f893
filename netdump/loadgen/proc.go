package loadgen

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc/<pid>/stat's times (USER_HZ, 100 on Linux).
const userHZ = 100

// CPUTime is the user plus system time the process pid has used, all its
// threads together (/proc/<pid>/stat utime+stime).
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("loadgen: /proc/%d/stat: no command", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state is field 3 of stat(5); utime and stime are
	// 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("loadgen: /proc/%d/stat: short", pid)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("loadgen: /proc/%d/stat: bad times", pid)
	}
	return time.Duration(u+s) * time.Second / userHZ, nil
}

// UDPSocket is a line of /proc/net/udp.
type UDPSocket struct {
	Local, Remote netip.AddrPort
	Drops         uint64
}

// UDPSockets lists the IPv4 UDP sockets with their receive drops.
func UDPSockets() ([]UDPSocket, error) {
	f, err := os.Open("/proc/net/udp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseUDP(f)
}

func parseUDP(r io.Reader) ([]UDPSocket, error) {
	var out []UDPSocket
	sc := bufio.NewScanner(r)
	sc.Scan() // the heading
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 13 {
			continue
		}
		l, err1 := hexAddr(f[1])
		rm, err2 := hexAddr(f[2])
		d, err3 := strconv.ParseUint(f[len(f)-1], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("loadgen: /proc/net/udp: %q", sc.Text())
		}
		out = append(out, UDPSocket{Local: l, Remote: rm, Drops: d})
	}
	return out, sc.Err()
}

// hexAddr decodes "0100007F:4E37": the address in host byte order
// (little-endian here), the port big-endian.
func hexAddr(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(a) != 8 {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	v, err := strconv.ParseUint(a, 16, 32)
	if err != nil {
		return netip.AddrPort{}, err
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	var ip [4]byte
	binary.LittleEndian.PutUint32(ip[:], uint32(v))
	return netip.AddrPortFrom(netip.AddrFrom4(ip), uint16(port)), nil
}

// SocketDrops is the receive drop count of the socket bound to local and
// connected to remote (a server's session socket); false when there is
// none. The kernel lists sockets while others come and go and may skip
// one, so a miss is looked up again.
func SocketDrops(local, remote netip.AddrPort) (uint64, bool) {
	for range 5 {
		socks, err := UDPSockets()
		if err != nil {
			return 0, false
		}
		for _, s := range socks {
			if s.Local == local && s.Remote == remote {
				return s.Drops, true
			}
		}
	}
	return 0, false
}

// Listening reports whether a UDP socket is bound to addr.
func Listening(addr netip.AddrPort) bool {
	socks, _ := UDPSockets()
	for _, s := range socks {
		if s.Local == addr && s.Remote.Port() == 0 {
			return true
		}
	}
	return false
}

// UDPCounters are the host's UDP counters from /proc/net/snmp (every
// socket of the network namespace).
type UDPCounters struct {
	InDatagrams, RcvbufErrors, InErrors uint64
}

// ReadUDPCounters reads them.
func ReadUDPCounters() (UDPCounters, error) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return UDPCounters{}, err
	}
	var names, vals []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "Udp: ") {
			continue
		}
		if names == nil {
			names = strings.Fields(line)
		} else {
			vals = strings.Fields(line)
			break
		}
	}
	var c UDPCounters
	for i := 1; i < len(names) && i < len(vals); i++ {
		v, _ := strconv.ParseUint(vals[i], 10, 64)
		switch names[i] {
		case "InDatagrams":
			c.InDatagrams = v
		case "RcvbufErrors":
			c.RcvbufErrors = v
		case "InErrors":
			c.InErrors = v
		}
	}
	return c, nil
}

// Sub is c minus an earlier reading.
func (c UDPCounters) Sub(o UDPCounters) UDPCounters {
	return UDPCounters{c.InDatagrams - o.InDatagrams, c.RcvbufErrors - o.RcvbufErrors, c.InErrors - o.InErrors}
}

// FindDump finds in dir the vmcore of the latest dump from client: the
// info file whose first line names its address ("Dump from host [ip]",
// the line both netdumpds write), and the vmcore of the same number.
func FindDump(dir string, client netip.Addr) (vmcore, info string, err error) {
	infos, err := filepath.Glob(filepath.Join(dir, "info.*"))
	if err != nil {
		return "", "", err
	}
	want := "[" + client.String() + "]"
	var best time.Time
	for _, p := range infos {
		if strings.HasSuffix(p, ".last") {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		line, _ := bufio.NewReader(f).ReadString('\n')
		st, _ := f.Stat()
		f.Close()
		if !strings.HasPrefix(line, "Dump from ") || !strings.Contains(line, want) {
			continue
		}
		if st != nil && st.ModTime().After(best) {
			best = st.ModTime()
			info = p
		}
	}
	if info == "" {
		return "", "", fmt.Errorf("loadgen: no info file for %s in %s", client, dir)
	}
	vmcore = filepath.Join(dir, "vmcore."+strings.TrimPrefix(filepath.Base(info), "info."))
	return vmcore, info, nil
}

// HashFile is the SHA-256 of a file.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
