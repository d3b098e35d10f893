package ddb

import (
	"bytes"
	"crypto/rand"
	"io"

	"github.com/tamadump/tamadump/debugnet"
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
	p    *debugnet.Line
	ed   editor
	argv [maxArgs][]byte
}

// New makes a shell for machine m on the console (r, w). It allocates every
// buffer Debug needs, so call it at start-up, before anything can panic.
func New(m Machine, r io.Reader, w io.Writer) *Shell {
	s := &Shell{m: m, p: debugnet.NewLine(w)}
	s.ed = editor{r: r, echo: s.p}
	return s
}

// Run serves the "tamadump> " prompt until the console input ends (Run then
// returns nil), reading it fails, or the machine's Panic returns.
func (s *Shell) Run() error {
	for {
		s.p.S(Prompt)
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
	s.p.Flush()
	line, tooLong, err := s.ed.readLine()
	if err != nil {
		return nil, nil, err
	}
	if tooLong {
		s.p.S("line too long; the limit is ")
		s.p.U(uint64(MaxLine))
		s.p.S(" characters\n")
		return nil, nil, nil
	}
	argv, ok := split(line, &s.argv)
	if !ok {
		s.p.S("too many words; the limit is ")
		s.p.U(uint64(maxArgs))
		s.p.Byte('\n')
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
		s.p.S(helpText)
	case equal(argv[0], "dumpon"):
		s.dumpon(argv[1:])
	case equal(argv[0], "show"):
		s.show(argv[1:])
	case equal(argv[0], "ifconfig"):
		s.ifconfig()
	case equal(argv[0], "blast"):
		s.blast(argv[1:])
	case equal(argv[0], "panic"):
		msg := string(bytes.TrimSpace(bytes.TrimLeft(line, " ")[len("panic"):]))
		if msg == "" {
			msg = DefaultPanic
		}
		s.p.Flush()
		s.m.Panic(msg)
		return true
	case equal(argv[0], "netdump"), equal(argv[0], "dump"):
		s.p.B(argv[0])
		s.p.S(": may only be used after a panic; configure with dumpon\n")
	default:
		s.unknown(argv[0])
	}
	return false
}

const helpText = `Commands:
  dumpon -s server -c client [-g gateway] [-p path] [-k pubkey [-C cipher] [-E]] iface
                     send a dump to netdumpd at server after a panic
                     (IPv4 or IPv6; without -g the server is on the local
                     link; -k encrypts it for the RSA public key, PEM or its
                     base64 body, with aes256-cbc or chacha20; -E still
                     declares zero pages instead of sending them, which
                     shows the network where they are)
  dumpon off         do not dump
  show dumpon        print the netdump configuration
  ifconfig           list the network interfaces
  blast -s server [-p port] MiB
                     send MiB mebibytes of UDP to server's port (9 by
                     default) through the dump's NIC and print the time:
                     what the NIC path carries without netdump on it
  panic [message]    panic (message "` + DefaultPanic + `" by default)
  help               print this text
`

func (s *Shell) unknown(cmd []byte) {
	s.p.S("unknown command ")
	s.p.Quote(cmd)
	s.p.S("; try help\n")
}

func (s *Shell) dumpon(argv [][]byte) {
	cmd := &dumponCmd
	if len(argv) == 1 && equal(argv[0], "off") {
		if err := s.m.Configure(Config{}); err != nil {
			s.begin(cmd)
			s.p.S(err.Error())
			s.end(cmd, false)
			return
		}
		s.p.S("dumpon: kernel dumps off\n")
		return
	}
	o, ok := s.parseOptions(cmd, argv)
	if !ok {
		return
	}
	switch {
	case !o.server.IsValid():
		s.begin(cmd)
		s.p.S("-s server is required")
		s.end(cmd, true)
		return
	case !o.client.IsValid():
		s.begin(cmd)
		s.p.S("-c client is required")
		s.end(cmd, true)
		return
	case o.nic == nil:
		s.begin(cmd)
		s.p.S("the interface is required")
		s.listNICs()
		s.end(cmd, true)
		return
	}
	nic, ok := s.nic(o.nic)
	if !ok {
		s.unknownNIC(cmd, o.nic)
		return
	}
	c := Config{NIC: nic, Client: o.client, Server: o.server, Gateway: o.gateway, Path: string(o.path), ElideEncrypted: o.elide}
	if (o.cipher != nil || o.elide) && o.key == nil {
		s.begin(cmd)
		s.p.S("-C and -E need -k pubkey")
		s.end(cmd, true)
		return
	}
	if o.key != nil {
		// Before any crash: the key and IV are made here, once.
		enc, err := NewEncryptor(o.key, string(o.cipher), rand.Reader)
		if err != nil {
			s.beginFlag(cmd, []byte("-k"))
			s.p.S(err.Error())
			s.end(cmd, false)
			return
		}
		c.Encrypt = enc
	}
	if !s.configure(cmd, c) {
		return
	}
	s.p.S("dumpon: kernel dumps on ")
	s.p.S(c.NIC)
	s.p.S(" to ")
	s.p.IP(c.Server)
	if c.Encrypt != nil {
		s.p.S(", encrypted (")
		s.p.S(c.Encrypt.Algorithm().String())
		s.p.S(")")
	}
	s.p.Byte('\n')
}

// show prints the netdump configuration; "show dumpon" and "show netdump"
// are the same at either prompt. It does not allocate.
func (s *Shell) show(argv [][]byte) {
	switch {
	case len(argv) == 0:
		s.p.S("show: what? try show netdump\n")
		return
	case !equal(argv[0], "netdump") && !equal(argv[0], "dumpon"):
		s.p.S("show: unknown object ")
		s.p.Quote(argv[0])
		s.p.S("; try show netdump\n")
		return
	case len(argv) > 1:
		s.p.S("show: unexpected argument ")
		s.p.Quote(argv[1])
		s.p.Byte('\n')
		return
	}
	c, ok := s.m.Config()
	if !ok {
		s.p.S("netdump: off\n")
		return
	}
	s.p.S("netdump: on\n  interface ")
	s.p.S(c.NIC)
	s.p.S("\n  client    ")
	s.p.IP(c.Client)
	s.p.S("\n  server    ")
	s.p.IP(c.Server)
	s.p.S("\n  gateway   ")
	if c.Gateway.IsValid() {
		s.p.IP(c.Gateway)
	} else {
		s.p.S("none (server on the local link)")
	}
	s.p.S("\n  path      ")
	if c.Path != "" {
		s.p.S(c.Path)
	} else {
		s.p.S("none (server's default)")
	}
	if c.Encrypt != nil {
		s.p.S("\n  encrypted ")
		s.p.S(c.Encrypt.Algorithm().String())
		if c.ElideEncrypted {
			s.p.S(", zero pages declared in clear (-E)")
		}
	}
	s.p.Byte('\n')
}

func (s *Shell) ifconfig() {
	nics := s.m.NICs()
	if len(nics) == 0 {
		s.p.S("no network interface\n")
	}
	for _, n := range nics {
		s.p.S(n)
		s.p.Byte('\n')
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
		s.p.S(err.Error())
		s.end(cmd, false)
		return false
	}
	return true
}
