package elfcore

// The build-id note: the image's NT_GNU_BUILD_ID ("GNU", type 3) copied
// into the core, so that the core names the executable that reads it. It
// comes last and only when Info.BuildID is set; its length is exact, so
// PT_NOTE ends with it.
const (
	noteGNU = "GNU"
	// MaxBuildID bounds the build ID (Go's linker writes 20 bytes and
	// takes at most 32 with -B); a longer one is cut.
	MaxBuildID = 32
	// NoteBuildID is NT_GNU_BUILD_ID.
	NoteBuildID = 3
)

// buildIDNoteSize is the size of the build-id note for id, 0 without one.
func buildIDNoteSize(id []byte) int {
	if len(id) == 0 {
		return 0
	}
	return noteSize(noteGNU, min(len(id), MaxBuildID))
}

// putBuildID writes the build-id note for id, if any, at b.
func putBuildID(b, id []byte) {
	if len(id) == 0 {
		return
	}
	id = id[:min(len(id), MaxBuildID)]
	copy(putNoteHeader(b, noteGNU, len(id), NoteBuildID), id)
}
