package ddb

// Debug serves the "db> " prompt after a panic, until the console input
// ends (Debug then returns nil), reading it fails, or the machine's Reset
// returns. It does not allocate, provided the Machine and the console do not.
//
// Debug takes the console over: a line partly typed at the "tamadump> "
// prompt is dropped. Call it only when Run cannot be running at the same
// time, as after a panic when nothing else is scheduled.
func (s *Shell) Debug() error {
	s.ed.discard()
	s.p.S("\nKDB: enter: panic\n")
	for {
		s.p.S(DBPrompt)
		argv, _, err := s.readCommand()
		if err != nil {
			return eofIsNil(err)
		}
		if len(argv) == 0 {
			continue
		}
		if s.db(argv) {
			return nil
		}
	}
}

// db executes one debugger command and reports whether Debug should stop.
func (s *Shell) db(argv [][]byte) (stop bool) {
	switch {
	case equal(argv[0], "help"):
		s.p.S(dbHelpText)
	case equal(argv[0], "netdump"):
		s.netdump(argv[1:])
	case equal(argv[0], "dump"):
		c, ok := s.m.Config()
		if !ok {
			s.p.S("dump: netdump is not configured; use netdump -s server\n")
			break
		}
		s.dump(c)
	case equal(argv[0], "show"):
		s.show(argv[1:])
	case equal(argv[0], "bt"), equal(argv[0], "trace"), equal(argv[0], "where"):
		s.m.Backtrace(s.p)
	case equal(argv[0], "reset"):
		s.p.Flush()
		s.m.Reset()
		return true
	case equal(argv[0], "c"), equal(argv[0], "continue"):
		s.p.S("cannot continue after a Go panic; use dump or reset\n")
	default:
		s.unknown(argv[0])
	}
	return false
}

const dbHelpText = `Commands:
  netdump -s server [-c client] [-g gateway] [-i iface]
                 configure netdump and dump now; options left out are
                 taken from the current configuration
  dump           dump with the current configuration
  show netdump   print the netdump configuration
  bt             print the stack of the goroutine that panicked
  reset          reboot
  continue       not possible after a Go panic
  help           print this text
`

// netdump configures netdump from the options, filling in what is missing
// from the current configuration, and dumps, as DDB's netdump in FreeBSD 13+.
func (s *Shell) netdump(argv [][]byte) {
	cmd := &netdumpCmd
	o, ok := s.parseOptions(cmd, argv)
	if !ok {
		return
	}
	if !o.server.IsValid() {
		s.begin(cmd)
		s.p.S("-s server is required")
		s.end(cmd, true)
		return
	}
	c, on := s.m.Config()
	if !on {
		c = Config{}
	}
	c.Server = o.server
	if o.client.IsValid() {
		c.Client = o.client
	} else if !c.Client.IsValid() {
		s.begin(cmd)
		s.p.S("no client address configured; give -c client")
		s.end(cmd, false)
		return
	}
	if o.gateway.IsValid() {
		c.Gateway = o.gateway
	}
	switch nics := s.m.NICs(); {
	case o.nic != nil:
		if c.NIC, ok = s.nic(o.nic); !ok {
			s.unknownNIC(cmd, o.nic)
			return
		}
	case c.NIC == "" && len(nics) == 1:
		c.NIC = nics[0]
	case c.NIC == "":
		s.begin(cmd)
		s.p.S("no interface configured; give -i iface")
		s.listNICs()
		s.end(cmd, false)
		return
	}
	if !s.configure(cmd, c) {
		return
	}
	s.dump(c)
}

func (s *Shell) dump(c Config) {
	s.p.Flush()
	if err := s.m.Dump(c); err != nil {
		s.p.S("Cannot dump: ")
		s.p.S(err.Error())
		s.p.Byte('\n')
	}
}
