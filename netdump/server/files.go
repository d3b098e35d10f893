package server

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
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

// createAt creates name in dir; a name that exists (a file, a planted
// hard link or symlink) is an error, never opened.
func createAt(dir *os.File, name string, flags int, mode uint32) (*os.File, error) {
	return openAt(dir, name, flags|unix.O_CREAT|unix.O_EXCL, mode)
}

// writeFileAt gives name in dir the content text atomically: it is
// written to a fresh temporary file first, which then replaces name
// (rename), or with exclusive, only takes name if it does not exist
// (link). Readers see the old content or the new, never a part. With
// sync the content is on disk before it takes the name.
func writeFileAt(dir *os.File, name, text string, exclusive, sync bool) error {
	tmp := fmt.Sprintf(".%s.%08x.tmp", name, rand.Uint32())
	f, err := createAt(dir, tmp, unix.O_WRONLY, 0600)
	if err != nil {
		if !exclusive && diskFull(err) {
			return replaceInPlace(dir, name, text, sync)
		}
		return err
	}
	fd := int(dir.Fd())
	_, err = f.WriteString(text)
	if err == nil && exclusive {
		// Room for later versions, so that they can still be written
		// in place when the disk is full (see replaceInPlace).
		unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, infoRoom)
	}
	if err == nil && sync {
		err = unix.Fdatasync(int(f.Fd()))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if exclusive {
			err = unix.Linkat(fd, tmp, fd, name, 0)
		} else {
			err = unix.Renameat(fd, tmp, fd, name)
		}
		if err != nil {
			err = &os.PathError{Op: "link", Path: name, Err: err}
		}
	}
	if exclusive || err != nil {
		unix.Unlinkat(fd, tmp, 0)
	}
	if err != nil && !exclusive && diskFull(err) {
		return replaceInPlace(dir, name, text, sync)
	}
	return err
}

func diskFull(err error) bool { return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) }

// infoRoom is the space reserved for an info file.
const infoRoom = 8 << 10

// replaceInPlace is the full-disk fallback of writeFileAt: the file is
// overwritten within the room reserved when it was made. A reader may
// see a mix for an instant, but the final status does get written.
func replaceInPlace(dir *os.File, name, text string, sync bool) error {
	f, err := openAt(dir, name, unix.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(text), 0); err != nil {
		return err
	}
	if err := f.Truncate(int64(len(text))); err != nil {
		return err
	}
	if sync {
		return unix.Fdatasync(int(f.Fd()))
	}
	return nil
}

// renameNoReplace renames old to name in dir unless name exists.
func renameNoReplace(dir *os.File, old, name string) error {
	fd := int(dir.Fd())
	err := unix.Renameat2(fd, old, fd, name, unix.RENAME_NOREPLACE)
	if err == unix.EINVAL || err == unix.ENOSYS {
		// A file system without RENAME_NOREPLACE: link, then unlink.
		if err = unix.Linkat(fd, old, fd, name, 0); err == nil {
			err = unix.Unlinkat(fd, old, 0)
		}
	}
	return err
}

// dumpFiles are the files of one dump, all in dir.
type dumpFiles struct {
	dir   *os.File
	rel   string // dir relative to the dump directory, for messages
	host  string
	index int
	core  *os.File
}

// openDumpFiles picks the dump number and creates the vmcore and info
// files in the directory rel (netdumpd's open_client_files). info is
// the info file's first content.
func (s *Server) openDumpFiles(rel, host, ip, info string) (*dumpFiles, error) {
	s.dirMu.RLock()
	dir, err := openBeneath(s.dir, rel)
	s.dirMu.RUnlock()
	if err != nil {
		return nil, err
	}
	f := &dumpFiles{dir: dir, rel: filepath.Clean(rel), host: host, index: -1}
	if err := f.create(s, ip, info); err != nil {
		dir.Close()
		return nil, err
	}
	return f, nil
}

// names are the files dump n of host may come to use.
func (f *dumpFiles) names(n int) []string {
	v := fmt.Sprintf("vmcore.%s.%d", f.host, n)
	e := fmt.Sprintf("vmcore_encrypted.%s.%d", f.host, n)
	return []string{v, fmt.Sprintf("info.%s.%d", f.host, n), fmt.Sprintf("key.%s.%d", f.host, n),
		v + ".gz", v + ".zst", e, e + ".gz", e + ".zst"}
}

// take claims number n: its vmcore is created exclusively, its info
// linked in exclusively, and none of the names the dump may rename to
// exists. A number any of whose names is taken is skipped, never
// reused (a planted file or hard link is not written through).
func (f *dumpFiles) take(n int, info string) (bool, error) {
	names := f.names(n)
	for _, name := range names[2:] {
		if err := unix.Fstatat(int(f.dir.Fd()), name, new(unix.Stat_t), unix.AT_SYMLINK_NOFOLLOW); err == nil {
			return false, nil
		}
	}
	core, err := createAt(f.dir, names[0], unix.O_RDWR, 0600)
	if errors.Is(err, unix.EEXIST) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := writeFileAt(f.dir, names[1], info, true, false); err != nil {
		core.Close()
		unix.Unlinkat(int(f.dir.Fd()), names[0], 0)
		if errors.Is(err, unix.EEXIST) {
			return false, nil
		}
		return false, err
	}
	f.core, f.index = core, n
	return true, nil
}

func (f *dumpFiles) create(s *Server, ip, info string) error {
	host := f.host
	bounds, err := openAt(f.dir, "bounds."+host, unix.O_RDWR|unix.O_CREAT, 0600)
	if err != nil {
		s.logf(LevelError, "openat(%s): %s", f.path("bounds."+host), strerror(err))
		return err
	}
	defer bounds.Close()
	ok := false
	if idx := readBound(s, bounds, host, ip); idx >= 0 {
		if ok, err = f.take(idx, info); err != nil {
			s.logf(LevelError, "openat(%s): %s", f.path(f.names(idx)[0]), strerror(err))
			return err
		}
		if !ok {
			s.logf(LevelError, "Incorrect bounds file for client %s [%s]", host, ip)
		}
	}
	for idx := 0; !ok && idx < maxDumps; idx++ {
		if ok, err = f.take(idx, info); err != nil {
			// netdumpd would try the remaining numbers in vain.
			s.logf(LevelError, "openat(%s): %s", f.path(f.names(idx)[0]), strerror(err))
			return err
		}
	}
	if !ok {
		s.logf(LevelError, "No free index for client %s [%s]", host, ip)
		return errors.New("no free index")
	}
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
		s.logf(LevelError, "Invalid bound for client %s [%s]: '%s'", host, ip, escape(strings.TrimRight(line, "\n")))
		return -1
	}
	return int(v)
}

func (f *dumpFiles) infoBase() string { return fmt.Sprintf("info.%s.%d", f.host, f.index) }
func (f *dumpFiles) coreBase() string { return fmt.Sprintf("vmcore.%s.%d", f.host, f.index) }
func (f *dumpFiles) keyBase() string  { return fmt.Sprintf("key.%s.%d", f.host, f.index) }

// path is name as netdumpd prints it: relative to the dump directory.
func (f *dumpFiles) path(name string) string { return f.rel + "/" + name }
