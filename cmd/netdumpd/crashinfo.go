package main

import (
	"os"

	"github.com/tamadump/tamadump/netdump/crashinfo"
	"github.com/tamadump/tamadump/netdump/server"
)

// crashinfoCommand is the sub-command that writes a post-mortem report:
// netdumpd runs itself with it after each complete dump, so the analysis
// of what came off the network runs in a process of its own.
const crashinfoCommand = "crashinfo"

// newReports writes core.txt.<host>.<n> after each complete dump,
// looking images up in the symbols directory.
func newReports(symbols string, logf func(server.Level, string)) *crashinfo.Writer {
	exe, err := os.Executable()
	if err != nil {
		logf(server.LevelError, "crashinfo: cannot find this program to run the analysis: "+err.Error())
	}
	if st, err := os.Stat(symbols); symbols != "" && (err != nil || !st.IsDir()) {
		logf(server.LevelWarning, "crashinfo: the symbols directory "+symbols+" is not a directory (yet): reports will not find images")
	}
	cmd := []string{exe, crashinfoCommand}
	if exe == "" {
		cmd = nil // the Writer then says so in each report
	}
	return crashinfo.NewWriter(crashinfo.Config{Symbols: symbols, Command: cmd, Log: logf})
}
