package phases

// Now is the TSC.
func Now() uint64

// Unit names what Now counts.
const Unit = "TSC cycles"
