package server

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxDumps is MAX_DUMPS: the fallback numbering tries 0..maxDumps-1.
const maxDumps = 1024

func openDumpDir(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir), nil
}

var errEscape = errors.New("path leaves the dump directory")

// openBeneath opens the directory rel inside the dump directory without
// ever leaving it: absolute paths and ".." are refused outright, and
// symlinks are resolved by the kernel under RESOLVE_BENEATH (Capsicum's
// rule in netdumpd). Directories are never created.
func openBeneath(root *os.File, rel string) (*os.File, error) {
	if rel == "" || strings.HasPrefix(rel, "/") {
		return nil, errEscape
	}
	for _, c := range strings.Split(rel, "/") {
		if c == ".." {
			return nil, errEscape
		}
	}
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(int(root.Fd()), rel, &how)
	if err == unix.ENOSYS {
		return openNoSymlinks(root, rel)
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), rel), nil
}

// openNoSymlinks is openBeneath for kernels without openat2 (before 5.6,
// some sandboxes): it walks the path refusing every symlink, which is
// stricter but equally safe.
func openNoSymlinks(root *os.File, rel string) (*os.File, error) {
	fd, err := unix.Openat(int(root.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return nil, err
		}
		fd = next
	}
	return os.NewFile(uintptr(fd), rel), nil
}

// openAt opens name (a plain file name) in dir; never through a symlink.
func openAt(dir *os.File, name string, flags int, mode uint32) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// dumpFiles are the files of one dump, all in dir.
type dumpFiles struct {
	dir   *os.File
	rel   string // dir relative to the dump directory, for messages
	index int
	info  *os.File
	core  *os.File
}

// openDumpFiles picks the dump number and creates the info and vmcore
// files in the directory rel (netdumpd's open_client_files, §4.5).
func (s *Server) openDumpFiles(rel, host, ip string) (*dumpFiles, error) {
	dir, err := openBeneath(s.dir, rel)
	if err != nil {
		return nil, err
	}
	f := &dumpFiles{dir: dir, rel: filepath.Clean(rel), index: -1}
	if err := f.create(s, host, ip); err != nil {
		dir.Close()
		return nil, err
	}
	return f, nil
}

func (f *dumpFiles) create(s *Server, host, ip string) error {
	bounds, err := openAt(f.dir, "bounds."+host, unix.O_RDWR|unix.O_CREAT, 0600)
	if err != nil {
		s.logf(LevelError, "openat(%s): %s", f.path("bounds."+host), strerror(err))
		return err
	}
	defer bounds.Close()
	if idx := readBound(s, bounds, host, ip); idx >= 0 {
		info, err := openAt(f.dir, fmt.Sprintf("info.%s.%d", host, idx), unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_EXCL, 0600)
		if err == nil {
			f.index, f.info = idx, info
		} else {
			s.logf(LevelError, "Incorrect bounds file for client %s [%s]", host, ip)
		}
	}
	for idx := 0; f.info == nil && idx < maxDumps; idx++ {
		name := fmt.Sprintf("info.%s.%d", host, idx)
		info, err := openAt(f.dir, name, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_EXCL, 0600)
		if err == nil {
			f.index, f.info = idx, info
		} else if !errors.Is(err, unix.EEXIST) {
			// netdumpd would try the remaining numbers in vain.
			s.logf(LevelError, "openat(\"%s\"): %s", f.path(name), strerror(err))
			return err
		}
	}
	if f.info == nil {
		s.logf(LevelError, "No free index for client %s [%s]", host, ip)
		return errors.New("no free index")
	}
	core, err := openAt(f.dir, f.coreBase(host), unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC, 0600)
	if err != nil {
		// Keep the numbers in sync: the info file goes too.
		f.info.Close()
		unix.Unlinkat(int(f.dir.Fd()), f.infoBase(host), 0)
		s.logf(LevelError, "openat(%s): %s", f.path(f.coreBase(host)), strerror(err))
		return err
	}
	f.core = core
	// Unlike netdumpd, truncate: a shorter number must not leave digits of
	// the longer one behind.
	next := strconv.Itoa(f.index+1) + "\n"
	if _, err := bounds.WriteAt([]byte(next), 0); err == nil {
		bounds.Truncate(int64(len(next)))
	}
	return nil
}

// readBound returns the number stored in the bounds file, or -1.
func readBound(s *Server, bounds *os.File, host, ip string) int {
	var buf [15]byte // fgets into 16 bytes
	n, _ := bounds.ReadAt(buf[:], 0)
	line := string(buf[:n])
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = line[:i+1]
	}
	if line == "" {
		s.logf(LevelInfo, "Empty bounds file for client %s [%s]", host, ip)
		return -1
	}
	// strtoul: leading blanks, then digits; no digits or > INT_MAX is
	// invalid.
	t := strings.TrimLeft(line, " \t\n\v\f\r")
	end := 0
	for end < len(t) && t[end] >= '0' && t[end] <= '9' {
		end++
	}
	v, err := strconv.ParseUint(t[:end], 10, 64)
	if err != nil || v > math.MaxInt32 {
		s.logf(LevelError, "Invalid bound for client %s [%s]: '%s'", host, ip, strings.TrimRight(line, "\n"))
		return -1
	}
	return int(v)
}

func (f *dumpFiles) infoBase(host string) string { return fmt.Sprintf("info.%s.%d", host, f.index) }
func (f *dumpFiles) coreBase(host string) string { return fmt.Sprintf("vmcore.%s.%d", host, f.index) }

// path is name as netdumpd prints it: relative to the dump directory.
func (f *dumpFiles) path(name string) string { return f.rel + "/" + name }
