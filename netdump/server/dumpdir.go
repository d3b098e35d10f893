package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// dirCheckEvery bounds how often the dump directory is examined (a
// HERALD flood must not cost a statfs each).
const dirCheckEvery = time.Second

// checkDir reports whether new dumps can go to the dump directory: it
// must still be the directory at Config.Dir (one deleted and made again
// is opened anew, so a removed directory does not break every later
// client until a restart) and have Config.MinFree bytes free. Only the
// HERALD loop calls it.
func (s *Server) checkDir(now time.Time) error {
	if now.UnixNano()-s.dirCheckedAt.Load() < int64(dirCheckEvery) {
		return s.dirErr
	}
	s.dirCheckedAt.Store(now.UnixNano())
	err := s.examineDir()
	switch {
	case err != nil && (s.dirErr == nil || err.Error() != s.dirErr.Error()):
		s.logf(LevelError, "Dump directory %s: %s; new clients are refused until that changes", s.cfg.Dir, err)
	case err == nil && s.dirErr != nil:
		s.logf(LevelInfo, "Dump directory %s is usable again", s.cfg.Dir)
	}
	s.dirErr = err
	return err
}

func (s *Server) examineDir() error {
	var path, open unix.Stat_t
	if err := unix.Stat(s.cfg.Dir, &path); err != nil {
		return fmt.Errorf("%s", strerror(err))
	}
	if path.Mode&unix.S_IFMT != unix.S_IFDIR {
		return errors.New("not a directory")
	}
	s.dirMu.RLock()
	err := unix.Fstat(int(s.dir.Fd()), &open)
	s.dirMu.RUnlock()
	if err != nil || open.Dev != path.Dev || open.Ino != path.Ino {
		d, err := openDumpDir(s.cfg.Dir)
		if err != nil {
			return fmt.Errorf("%s", strerror(err))
		}
		s.dirMu.Lock()
		old := s.dir
		s.dir = d
		s.dirMu.Unlock()
		old.Close()
		s.logf(LevelWarning, "Dump directory %s was replaced; dumps go to the new one", s.cfg.Dir)
	}
	var st unix.Statfs_t
	s.dirMu.RLock()
	err = unix.Fstatfs(int(s.dir.Fd()), &st)
	s.dirMu.RUnlock()
	if err != nil {
		return fmt.Errorf("statfs: %s", strerror(err))
	}
	if free := st.Bavail * uint64(st.Bsize); free < s.cfg.MinFree {
		return fmt.Errorf("%s (%d bytes free, %d needed)", strerror(unix.ENOSPC), free, s.cfg.MinFree)
	}
	return nil
}

// Recovery of dumps a previous netdumpd left unfinished (it was killed,
// or the machine stopped): their info file still says the dump is in
// progress, or is empty.
var (
	infoName = regexp.MustCompile(`^info\..+\.[0-9]+$`)
	tmpName  = regexp.MustCompile(`^\.info\..+\.[0-9]+\.[0-9a-f]{8}\.tmp$`)
	heraldRe = regexp.MustCompile(`^Dump from (.*) \[([0-9.]+)\]$`)
)

const (
	// maxInfoSize: anything larger is not an info file of ours.
	maxInfoSize = 64 << 10
	maxDepth    = 8
	maxWalked   = 100000 // directory entries examined at most
)

// recover marks every interrupted dump under the dump directory (symlinks
// are not followed) and removes temporary files left behind.
func (s *Server) recover() {
	walked := 0
	filepath.WalkDir(s.cfg.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if walked++; walked > maxWalked {
			return filepath.SkipAll
		}
		rel, _ := filepath.Rel(s.cfg.Dir, path)
		if d.IsDir() {
			if rel != "." && strings.Count(rel, "/") >= maxDepth {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		switch name := d.Name(); {
		case tmpName.MatchString(name):
			os.Remove(path)
		case infoName.MatchString(name):
			s.recoverInfo(filepath.Dir(path), name)
		}
		return nil
	})
}

func (s *Server) recoverInfo(dirPath, name string) {
	dir, err := openDumpDir(dirPath)
	if err != nil {
		return
	}
	defer dir.Close()
	f, err := openAt(dir, name, unix.O_RDONLY, 0)
	if err != nil {
		return
	}
	b := make([]byte, maxInfoSize+1)
	n, _ := f.ReadAt(b, 0)
	f.Close()
	if n > maxInfoSize {
		return
	}
	text := string(b[:n])
	body, ok := strings.CutSuffix(text, statusInProgress+"\n")
	if !ok && text != "" {
		return
	}
	text = body + "Missing ranges: unknown (" + stoppedWhy + ")\n" + statusStopped + "\n"
	if err := writeFileAt(dir, name, text, false, true); err != nil {
		s.logf(LevelError, "Can't mark interrupted dump %s: %s", filepath.Join(dirPath, name), strerror(err))
		return
	}
	rel, _ := filepath.Rel(s.cfg.Dir, dirPath)
	num := name[strings.LastIndexByte(name, '.')+1:]
	host := strings.TrimSuffix(strings.TrimPrefix(name, "info."), "."+num)
	idx, _ := strconv.Atoi(num)
	ev := endedEvent{why: stopped, info: "./" + filepath.Join(rel, name),
		Ended: Ended{Reason: stopped.handler(), Host: host, Index: idx, Dir: dirPath, Info: name, Recovered: true}}
	if m := heraldRe.FindStringSubmatch(strings.SplitN(body, "\n", 2)[0]); m != nil {
		ev.Client, _ = netip.ParseAddr(m[2])
	}
	probe := &dumpFiles{host: host}
	for _, c := range probe.names(idx) {
		if strings.HasPrefix(c, "vmcore") && fileExists(dir, c) {
			ev.Core, ev.core = c, "./"+filepath.Join(rel, c)
			break
		}
	}
	s.logf(LevelWarning, "Dump %s was left incomplete by an earlier netdumpd; marked", ev.info)
	s.ended(ev)
}

func fileExists(dir *os.File, name string) bool {
	return unix.Fstatat(int(dir.Fd()), name, new(unix.Stat_t), unix.AT_SYMLINK_NOFOLLOW) == nil
}
