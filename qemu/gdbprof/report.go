package gdbprof

import (
	"debug/elf"
	"debug/gosym"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Profile is the sampled stacks: each the PC, then return addresses.
type Profile struct {
	Every  time.Duration
	Stacks [][]uint64
}

// Outside names PCs outside the Go program: on the stock-Go board, the
// shim (its system calls and interrupts).
const Outside = "[outside the Go program]"

// Symbols maps PCs to the functions of a Go ELF, by its line table.
type Symbols struct{ t *gosym.Table }

// OpenSymbols reads the Go line table of the ELF at path.
func OpenSymbols(path string) (*Symbols, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pcln, text := f.Section(".gopclntab"), f.Section(".text")
	if pcln == nil || text == nil {
		return nil, fmt.Errorf("gdbprof: %s has no Go line table", path)
	}
	data, err := pcln.Data()
	if err != nil {
		return nil, err
	}
	t, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return nil, err
	}
	return &Symbols{t}, nil
}

// Func names the function holding pc, or Outside.
func (s *Symbols) Func(pc uint64) string {
	if f := s.t.PCToFunc(pc); f != nil {
		return f.Name
	}
	return Outside
}

// Named is a stack's functions, innermost first; return addresses are
// looked up one byte back, inside their call instruction.
func (s *Symbols) Named(stack []uint64) []string {
	out := make([]string, len(stack))
	for i, pc := range stack {
		if i > 0 {
			pc--
		}
		out[i] = s.Func(pc)
	}
	return out
}

// Share is a function's or a path's count of samples.
type Share struct {
	Name    string
	Samples int
}

// Summary is a profile by function: the samples each function is in
// (inclusive) and at the top of (self), and the hottest call paths of
// pathDepth functions, innermost first.
type Summary struct {
	Samples         int
	Inclusive, Self []Share
	Paths           []Share
}

// Summarize counts p by the functions sym names.
func (p *Profile) Summarize(sym *Symbols, pathDepth int) Summary {
	incl, self, paths := map[string]int{}, map[string]int{}, map[string]int{}
	for _, st := range p.Stacks {
		names := sym.Named(st)
		self[names[0]]++
		seen := map[string]bool{}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				incl[n]++
			}
		}
		paths[strings.Join(names[:min(pathDepth, len(names))], " < ")]++
	}
	return Summary{Samples: len(p.Stacks), Inclusive: sorted(incl), Self: sorted(self), Paths: sorted(paths)}
}

func sorted(m map[string]int) []Share {
	out := make([]Share, 0, len(m))
	for k, v := range m {
		out = append(out, Share{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Samples != out[j].Samples {
			return out[i].Samples > out[j].Samples
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// ShareOf is the share of samples name is in, 0 to 1.
func (s Summary) ShareOf(name string) float64 {
	for _, f := range s.Inclusive {
		if f.Name == name {
			return float64(f.Samples) / float64(max(s.Samples, 1))
		}
	}
	return 0
}

// Write prints the top functions by inclusive samples with their self
// share, then the top paths.
func (s Summary) Write(w io.Writer, top int) {
	pct := func(n int) float64 { return 100 * float64(n) / float64(max(s.Samples, 1)) }
	selfOf := map[string]int{}
	for _, f := range s.Self {
		selfOf[f.Name] = f.Samples
	}
	fmt.Fprintf(w, "%d samples; functions by the share of samples they are in (inclusive), and at the top of (self):\n", s.Samples)
	fmt.Fprintf(w, "  %9s %6s  %s\n", "inclusive", "self", "function")
	for _, f := range s.Inclusive[:min(top, len(s.Inclusive))] {
		fmt.Fprintf(w, "  %8.1f%% %5.1f%%  %s\n", pct(f.Samples), pct(selfOf[f.Name]), f.Name)
	}
	fmt.Fprintf(w, "functions by self samples:\n")
	for _, f := range s.Self[:min(top, len(s.Self))] {
		fmt.Fprintf(w, "  %5.1f%%  %s\n", pct(f.Samples), f.Name)
	}
	fmt.Fprintf(w, "hottest paths (innermost first):\n")
	for _, p := range s.Paths[:min(top, len(s.Paths))] {
		fmt.Fprintf(w, "  %5.1f%%  %s\n", pct(p.Samples), p.Name)
	}
}
