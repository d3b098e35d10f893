package crashinfo

import (
	"debug/elf"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/go-delve/delve/pkg/goversion"
	"github.com/go-delve/delve/pkg/proc"
	"github.com/go-delve/delve/pkg/proc/core"
	"github.com/go-delve/delve/service/api"
)

// Bounds on what is listed, like the Go runtime's own traceback (100
// frames a goroutine): a hostile core can claim any number of either.
const (
	maxGoroutines = 10000
	maxFrames     = 200
)

// delveReads is the machines Delve reads Linux cores of.
var delveReads = map[elf.Machine]bool{elf.EM_X86_64: true, elf.EM_AARCH64: true, elf.EM_RISCV: true, elf.EM_LOONGARCH: true}

// goroutines lists every goroutine of the core with Delve, reading the
// program from exe: the one on the crashed thread (the panicking one)
// first, then the others by ID, each with its state, wait reason and
// stack.
func goroutines(w io.Writer, corePath, exe string) (err error) {
	defer func() {
		// Delve trusts the core's memory; whatever it trips over in a
		// corrupt one ends here, not in a crash of the analysis.
		if p := recover(); p != nil {
			err = fmt.Errorf("Delve failed reading the core: %v", p)
		}
	}()
	grp, err := core.OpenCore(corePath, exe, nil)
	if err != nil {
		return fmt.Errorf("Delve cannot open the core with %s: %w", exe, err)
	}
	defer grp.Detach(false) //nolint:errcheck // a core has nothing to detach from
	t := grp.Selected
	gs, _, err := proc.GoroutinesInfo(t, 0, maxGoroutines)
	if err != nil {
		return fmt.Errorf("Delve cannot list the goroutines: %w", err)
	}
	var crashed int64 = -1
	if g, err := proc.GetG(t.CurrentThread()); err == nil && g != nil {
		crashed = g.ID
	}
	sort.SliceStable(gs, func(i, j int) bool {
		if (gs[i].ID == crashed) != (gs[j].ID == crashed) {
			return gs[i].ID == crashed
		}
		return gs[i].ID < gs[j].ID
	})
	v := goversion.ParseProducer(t.BinInfo().Producer())
	fmt.Fprintf(w, "%d goroutines (read with Delve from %s)", len(gs), exe)
	if len(gs) == maxGoroutines {
		fmt.Fprintf(w, ", listing stopped at %d", maxGoroutines)
	}
	fmt.Fprintf(w, "\n")
	if len(gs) == 0 || gs[0].ID != crashed {
		fmt.Fprintf(w, "no goroutine runs on the crashed thread\n")
	} else if frames, err := proc.GoroutineStacktrace(t, gs[0], maxFrames, 0); err == nil {
		for _, f := range frames {
			if ours(f.Call.Fn) {
				fmt.Fprintf(w, "the crash: goroutine %d in %s at %s:%d\n", crashed, f.Call.Fn.Name, f.Call.File, f.Call.Line)
				break
			}
		}
	}
	for _, g := range gs {
		fmt.Fprintln(w)
		if g.Unreadable != nil {
			fmt.Fprintf(w, "goroutine ? [unreadable: %v]\n", g.Unreadable)
			continue
		}
		fmt.Fprintf(w, "goroutine %d [%s]", g.ID, state(g, &v))
		if g.ID == crashed {
			fmt.Fprintf(w, " (on the crashed thread)")
		}
		fmt.Fprintf(w, ":\n")
		frames, err := proc.GoroutineStacktrace(t, g, maxFrames, 0)
		for _, f := range frames {
			fmt.Fprintf(w, "%s\n\t%s:%d\n", fnName(f.Call.Fn), f.Call.File, f.Call.Line)
			if f.Err != nil {
				fmt.Fprintf(w, "\t(the stack cannot be followed further: %v)\n", f.Err)
			}
		}
		if err != nil {
			fmt.Fprintf(w, "\t(no stack: %v)\n", err)
		} else if len(frames) > maxFrames {
			fmt.Fprintf(w, "...more frames...\n")
		}
		if loc := g.Go(); loc.Fn != nil && g.ID != 1 { // the runtime starts main's
			fmt.Fprintf(w, "created by %s\n\t%s:%d\n", loc.Fn.Name, loc.File, loc.Line)
		}
	}
	return nil
}

// ours reports whether fn is the program's rather than the runtime's
// machinery (Delve's rule for a goroutine's user location, applied to the
// stack Delve unwinds through signal frames too).
func ours(fn *proc.Function) bool {
	if fn == nil || !strings.Contains(fn.Name, ".") {
		return false
	}
	if rest, ok := strings.CutPrefix(fn.Name, "runtime."); ok {
		return rest[0] >= 'A' && rest[0] <= 'Z' // runtime.Goexit is called by the program
	}
	return !strings.HasPrefix(fn.Name, "internal/") && !strings.HasPrefix(fn.Name, "iter.")
}

func fnName(fn *proc.Function) string {
	if fn == nil {
		return "?"
	}
	return fn.Name
}

// state is the goroutine's status as the Go runtime's traceback names
// it, with the wait reason of a waiting goroutine. (Delve has no name for
// the runtime's _Gpreempted, the status after _Gcopystack.)
func state(g *proc.G, v *goversion.GoVersion) string {
	s := [...]string{proc.Gidle: "idle", proc.Grunnable: "runnable", proc.Grunning: "running", proc.Gsyscall: "syscall",
		proc.Gwaiting: "waiting", proc.Gdead: "dead", proc.Gcopystack: "copystack", proc.Gcopystack + 1: "preempted"}
	name := fmt.Sprintf("status %d", g.Status)
	if g.Status < uint64(len(s)) && s[g.Status] != "" {
		name = s[g.Status]
	}
	if (g.Status == proc.Gwaiting || g.Status == proc.Gsyscall) && g.WaitReason != 0 {
		name += ": " + api.WaitReasonString(v, g.WaitReason)
	}
	return name
}
