package elfcore

// The build-id note: the image's GNU build-id (package buildid) copied
// into the core under tamadump's own note name, so that the core names
// the executable that reads it. Not as "GNU" NT_GNU_BUILD_ID: that type
// is 3, NT_PRPSINFO's, and Delve tells notes apart by type alone (it
// then fails to read the core). The note comes last and only when
// Info.BuildID is set; its length is exact, so PT_NOTE ends with it.
const (
	// NoteBuildID carries the build ID (name "TAMADUMP").
	NoteBuildID = 0x54440002
	// MaxBuildID bounds the build ID (Go's linker writes 20 bytes and
	// takes at most 32 with -B); a longer one is cut.
	MaxBuildID = 32
)

// buildIDNoteSize is the size of the build-id note for id, 0 without one.
func buildIDNoteSize(id []byte) int {
	if len(id) == 0 {
		return 0
	}
	return noteSize(noteOwn, min(len(id), MaxBuildID))
}

// putBuildID writes the build-id note for id, if any, at b.
func putBuildID(b, id []byte) {
	if len(id) == 0 {
		return
	}
	id = id[:min(len(id), MaxBuildID)]
	copy(putNoteHeader(b, noteOwn, len(id), NoteBuildID), id)
}
