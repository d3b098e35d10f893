package ddb

import (
	"bytes"
	"io"
)

// Machine is what the shell needs from the image. Debug calls NICs, Config,
// Configure, Dump, Backtrace and Reset after a panic: there they must not
// allocate, and errors they return must be made in advance.
type Machine interface {
	// NICs names the network interfaces, e.g. "vtnet0", "em0".
	NICs() []string
	// Config returns the netdump configuration; ok is false when netdump
	// is off.
	Config() (c Config, ok bool)
	// Configure sets the netdump configuration, already validated; the
	// zero Config turns netdump off.
	Configure(c Config) error
	// Panic panics with msg. In the image it does not return.
	Panic(msg string)
	// Dump sends memory to c's netdump server, reporting progress on the
	// console itself (ending lines with CR LF, as the shell does).
	Dump(c Config) error
	// Backtrace writes the stack of the goroutine that panicked to w,
	// which turns LF into CR LF for the terminal.
	Backtrace(w io.Writer)
	// Reset reboots the machine. In the image it does not return.
	Reset()
}

// Prompts, as in FreeBSD's ddb for the debugger.
const (
	Prompt   = "tamadump> "
	DBPrompt = "db> "
)

// DefaultPanic is the message of a bare panic command, as ddb's "panic".
const DefaultPanic = "from debugger"

// Shell is the console shell. It is not safe for concurrent use: Run and
// Debug share its buffers.
type Shell struct {
	m    Machine
	p    printer
	ed   editor
	argv [maxArgs][]byte
}

// New makes a shell for machine m on the console (r, w). It allocates every
// buffer Debug needs, so call it at start-up, before anything can panic.
func New(m Machine, r io.Reader, w io.Writer) *Shell {
	s := &Shell{m: m, p: newPrinter(w, 512)}
	s.ed = editor{r: r, echo: &s.p}
	return s
}

// Run serves the "tamadump> " prompt until the console input ends (Run then
// returns nil), reading it fails, or the machine's Panic returns.
func (s *Shell) Run() error {
	for {
		s.p.str(Prompt)
		argv, line, err := s.readCommand()
		if err != nil {
			return eofIsNil(err)
		}
		if len(argv) == 0 {
			continue
		}
		if s.run(argv, line) {
			return nil
		}
	}
}

// readCommand reads a line and splits it into words; for a line it refuses
// (too long, too many words) it prints why and returns no words.
func (s *Shell) readCommand() (argv [][]byte, line []byte, err error) {
	s.p.flush()
	line, tooLong, err := s.ed.readLine()
	if err != nil {
		return nil, nil, err
	}
	if tooLong {
		s.p.str("line too long; the limit is ")
		s.p.int(MaxLine)
		s.p.str(" characters\n")
		return nil, nil, nil
	}
	argv, ok := split(line, &s.argv)
	if !ok {
		s.p.str("too many words; the limit is ")
		s.p.int(maxArgs)
		s.p.byte('\n')
		return nil, nil, nil
	}
	return argv, line, nil
}

func eofIsNil(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// run executes one pre-panic command and reports whether Run should stop.
func (s *Shell) run(argv [][]byte, line []byte) (stop bool) {
	switch {
	case equal(argv[0], "help"):
		s.p.str(helpText)
	case equal(argv[0], "dumpon"):
		s.dumpon(argv[1:])
	case equal(argv[0], "show"):
		s.show(argv[1:])
	case equal(argv[0], "ifconfig"):
		s.ifconfig()
	case equal(argv[0], "panic"):
		msg := string(bytes.TrimSpace(bytes.TrimLeft(line, " ")[len("panic"):]))
		if msg == "" {
			msg = DefaultPanic
		}
		s.p.flush()
		s.m.Panic(msg)
		return true
	case equal(argv[0], "netdump"), equal(argv[0], "dump"):
		s.p.bytes(argv[0])
		s.p.str(": may only be used after a panic; configure with dumpon\n")
	default:
		s.unknown(argv[0])
	}
	return false
}

const helpText = `Commands:
  dumpon -s server -c client [-g gateway] [-p path] iface
                     send a dump to netdumpd at server after a panic
                     (IPv4 only; without -g the server is on the local link)
  dumpon off         do not dump
  show dumpon        print the netdump configuration
  ifconfig           list the network interfaces
  panic [message]    panic (message "` + DefaultPanic + `" by default)
  help               print this text
`

func (s *Shell) unknown(cmd []byte) {
	s.p.str("unknown command ")
	s.p.quote(cmd)
	s.p.str("; try help\n")
}

func (s *Shell) dumpon(argv [][]byte) {
	cmd := &dumponCmd
	if len(argv) == 1 && equal(argv[0], "off") {
		if err := s.m.Configure(Config{}); err != nil {
			s.begin(cmd)
			s.p.str(err.Error())
			s.end(cmd, false)
			return
		}
		s.p.str("dumpon: kernel dumps off\n")
		return
	}
	o, ok := s.parseOptions(cmd, argv)
	if !ok {
		return
	}
	switch {
	case !o.server.IsValid():
		s.begin(cmd)
		s.p.str("-s server is required")
		s.end(cmd, true)
		return
	case !o.client.IsValid():
		s.begin(cmd)
		s.p.str("-c client is required")
		s.end(cmd, true)
		return
	case o.nic == nil:
		s.begin(cmd)
		s.p.str("the interface is required")
		s.listNICs()
		s.end(cmd, true)
		return
	}
	nic, ok := s.nic(o.nic)
	if !ok {
		s.unknownNIC(cmd, o.nic)
		return
	}
	c := Config{NIC: nic, Client: o.client, Server: o.server, Gateway: o.gateway, Path: string(o.path)}
	if !s.configure(cmd, c) {
		return
	}
	s.p.str("dumpon: kernel dumps on ")
	s.p.str(c.NIC)
	s.p.str(" to ")
	s.p.addr(c.Server)
	s.p.byte('\n')
}

// show prints the netdump configuration; "show dumpon" and "show netdump"
// are the same at either prompt. It does not allocate.
func (s *Shell) show(argv [][]byte) {
	switch {
	case len(argv) == 0:
		s.p.str("show: what? try show netdump\n")
		return
	case !equal(argv[0], "netdump") && !equal(argv[0], "dumpon"):
		s.p.str("show: unknown object ")
		s.p.quote(argv[0])
		s.p.str("; try show netdump\n")
		return
	case len(argv) > 1:
		s.p.str("show: unexpected argument ")
		s.p.quote(argv[1])
		s.p.byte('\n')
		return
	}
	c, ok := s.m.Config()
	if !ok {
		s.p.str("netdump: off\n")
		return
	}
	s.p.str("netdump: on\n  interface ")
	s.p.str(c.NIC)
	s.p.str("\n  client    ")
	s.p.addr(c.Client)
	s.p.str("\n  server    ")
	s.p.addr(c.Server)
	s.p.str("\n  gateway   ")
	if c.Gateway.IsValid() {
		s.p.addr(c.Gateway)
	} else {
		s.p.str("none (server on the local link)")
	}
	s.p.str("\n  path      ")
	if c.Path != "" {
		s.p.str(c.Path)
	} else {
		s.p.str("none (server's default)")
	}
	s.p.byte('\n')
}

func (s *Shell) ifconfig() {
	nics := s.m.NICs()
	if len(nics) == 0 {
		s.p.str("no network interface\n")
	}
	for _, n := range nics {
		s.p.str(n)
		s.p.byte('\n')
	}
}

// configure validates c and hands it to the machine, printing why when
// either refuses it.
func (s *Shell) configure(cmd *command, c Config) bool {
	if p, bad := c.check(); bad {
		s.printProblem(cmd, p)
		return false
	}
	if err := s.m.Configure(c); err != nil {
		s.begin(cmd)
		s.p.str(err.Error())
		s.end(cmd, false)
		return false
	}
	return true
}
