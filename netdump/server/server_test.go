package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tamadump/tamadump/netdump/server/servertest"
	"github.com/tamadump/tamadump/netdump/wire"
)

const page = 4096

func init() {
	// Modes asserted below are the ones requested, unmasked.
	syscall.Umask(0o022)
}

// handlerScript writes a -i script that records its arguments, working
// directory and exact exec environment into dir/handler.<reason>.<n>.
func handlerScript(t *testing.T) (script, out string) {
	t.Helper()
	out = t.TempDir()
	script = filepath.Join(t.TempDir(), "handler.sh")
	body := fmt.Sprintf(`#!/bin/sh
f=%s/handler.$1.$$
{ echo "$#"; for a in "$@"; do echo "$a"; done; pwd; } > $f.args
cat /proc/$$/environ > $f.env
`, out)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, out
}

// handlerRuns returns the recorded runs for reason: each the argument
// lines and the environment.
func handlerRuns(t *testing.T, out, reason string) (args [][]string, envs []string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(out, "handler."+reason+".*.args"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"))
		env, _ := os.ReadFile(strings.TrimSuffix(f, ".args") + ".env")
		envs = append(envs, string(env))
	}
	return args, envs
}

func kdhInfo(k *wire.KernelDumpHeader, parity string) string {
	comp := map[uint8]string{0: "none", 1: "gzip", 2: "zstd"}[k.Compression]
	return fmt.Sprintf(`  Architecture: amd64
  Architecture Version: 2
  Dump Length: %dB (%d MB)
  Blocksize: 4096
  Compression: %s
  Dumptime: %s
  Hostname: guest.example.org
  Version String: FreeBSD 14.0-RELEASE #0: Fri Nov 10 05:57:23 UTC 2023\n    root@build:/usr/obj/GENERIC
  Panic String: page fault
  Header Parity Check: %s
`, k.DumpLength, k.DumpLength>>20, comp, time.Unix(int64(k.DumpTime), 0).Format(time.ANSIC), parity)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func checkMode(t *testing.T, dir, name string, mode os.FileMode) {
	t.Helper()
	st, err := os.Lstat(filepath.Join(dir, name))
	if err != nil {
		t.Error(err)
		return
	}
	if st.Mode() != mode {
		t.Errorf("%s: mode %v, want %v", name, st.Mode(), mode)
	}
}

func checkLink(t *testing.T, dir, name, target string) {
	t.Helper()
	got, err := os.Readlink(filepath.Join(dir, name))
	if err != nil || got != target {
		t.Errorf("%s -> %q (%v), want %q", name, got, err, target)
	}
}

// TestEndToEnd runs three dumps from one client: an encrypted one whose
// data arrives out of order, duplicated, with a hole and zero runs; a
// gzip-compressed one; a plain one. Files, names, modes, numbering,
// links, info text and handler invocations are checked.
func TestEndToEnd(t *testing.T) {
	script, out := handlerScript(t)
	h := newHarness(t, func(c *Config) { c.Handler = script })
	c := h.client(1)
	host := "127.0.21.1"

	// Dump 0. Pages 0-7 arrive backwards, 8-15 twice, 16-19 are a zero
	// run, 20-23 never come, 24-35 in MTU-sized pieces, 36-39 a zero run
	// ending the dump (so the file must be extended).
	const pages = 40
	core := pattern(7, pages*page)
	clear(core[16*page : 24*page])
	clear(core[36*page:])
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	key := pattern(99, page)
	if err := c.Send(
		servertest.Msg{Type: wire.EKCDKey, Offset: 0, Payload: key[:1448]},
		servertest.Msg{Type: wire.EKCDKey, Offset: 2896, Payload: key[2896:]},
		servertest.Msg{Type: wire.EKCDKey, Offset: 1448, Payload: key[1448:2896]},
	); err != nil {
		t.Fatal("EKCD_KEY:", err)
	}
	var batch []servertest.Msg
	for p := 7; p >= 0; p-- {
		batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: uint64(p * page), Payload: core[p*page : (p+1)*page]})
	}
	for p := 8; p < 16; p++ {
		m := servertest.Msg{Type: wire.VMCore, Offset: uint64(p * page), Payload: core[p*page : (p+1)*page]}
		batch = append(batch, m, m)
	}
	batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: 16 * page, Aux2: 4 * page})
	if err := c.Send(batch...); err != nil {
		t.Fatal("VMCORE:", err)
	}
	batch = batch[:0]
	for off := 24 * page; off < 36*page; off += 1448 {
		batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: uint64(off), Payload: core[off:min(off+1448, 36*page)]})
	}
	batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: 36 * page, Aux2: 4 * page})
	if err := c.Send(batch...); err != nil {
		t.Fatal("VMCORE:", err)
	}
	k0 := newKDH(pages*page, wire.CompressNone, page)
	kb := kdhBytes(&k0)
	if err := c.Send(servertest.Msg{Type: wire.KDH, Payload: kb}); err != nil {
		t.Fatal("KDH:", err)
	}
	// A retransmitted KDH (same seqno) is acknowledged, not reprocessed.
	raw, _ := wire.AppendMessage(make([]byte, 1024), wire.Header{Type: wire.KDH, Seqno: c.Seq() - 1}, kb)
	c.SendRaw(raw)
	if !c.Expect(c.Seq()-1, 2*time.Second) {
		t.Error("duplicate KDH not acknowledged")
	}
	if err := c.Finish(); err != nil {
		t.Fatal("FINISHED:", err)
	}
	// Our ACK "got lost": the FINISHED comes again after completion.
	raw, _ = wire.AppendMessage(raw, wire.Header{Type: wire.Finished, Seqno: c.Seq() - 1}, nil)
	c.SendRaw(raw)
	if !c.Expect(c.Seq()-1, 2*time.Second) {
		t.Error("late FINISHED not acknowledged")
	}
	h.log.waitLog(t, "Process ", 1)

	// The encrypted vmcore lost its old name; the hole reads as zeros.
	enc := "vmcore_encrypted." + host + ".0"
	if got := h.read(enc); !bytes.Equal(got, core) {
		t.Errorf("%s: %d bytes, differs from the %d expected", enc, len(got), len(core))
	}
	if _, err := os.Stat(filepath.Join(h.dir, "vmcore."+host+".0")); !os.IsNotExist(err) {
		t.Errorf("vmcore.%s.0 still exists", host)
	}
	if got := h.read("key." + host + ".0"); !bytes.Equal(got, key) {
		t.Error("key file differs")
	}
	wantInfo := "Dump from 127.0.21.1 [127.0.21.1]\n" + kdhInfo(&k0, "Pass") +
		"Missing ranges: 0x14000-0x17fff\n" +
		"SHA256: " + sha(core) + "\n" +
		"Dump complete\n"
	if got := string(h.read("info." + host + ".0")); got != wantInfo {
		t.Errorf("info.0:\n%s\nwant:\n%s", got, wantInfo)
	}
	checkMode(t, h.dir, enc, 0o600)
	checkMode(t, h.dir, "info."+host+".0", 0o600)
	checkMode(t, h.dir, "key."+host+".0", 0o400)
	checkMode(t, h.dir, "bounds."+host, 0o600)
	checkLink(t, h.dir, "vmcore."+host+".last", enc)
	checkLink(t, h.dir, "info."+host+".last", "info."+host+".0")
	if n := h.log.count("(KDH from"); n != 1 {
		t.Errorf("KDH processed %d times", n)
	}
	for _, want := range []string{"New dump from client 127.0.21.1 [127.0.21.1] (to ./vmcore.127.0.21.1.0)", "(EKCD key from 127.0.21.1 [127.0.21.1])", "Completed dump from client 127.0.21.1 [127.0.21.1]"} {
		if h.log.count(want) != 1 {
			t.Errorf("log lacks %q:\n%s", want, h.log)
		}
	}

	// Dump 1: gzip. The stream is 10000 bytes; the padded blocks are cut.
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	gz := pattern(11, 3*page)
	if err := sendAll(c, gz, 1448); err != nil {
		t.Fatal(err)
	}
	k1 := newKDH(10000, wire.CompressGzip, 0)
	if err := c.Send(servertest.Msg{Type: wire.KDH, Payload: kdhBytes(&k1)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	name1 := "vmcore." + host + ".1.gz"
	if got := h.read(name1); !bytes.Equal(got, gz[:10000]) {
		t.Errorf("%s: %d bytes", name1, len(got))
	}
	wantInfo = "Dump from 127.0.21.1 [127.0.21.1]\n" + kdhInfo(&k1, "Pass") +
		"Missing ranges: none\nSHA256: " + sha(gz[:10000]) + "\nDump complete\n"
	if got := string(h.read("info." + host + ".1")); got != wantInfo {
		t.Errorf("info.1:\n%s\nwant:\n%s", got, wantInfo)
	}
	checkLink(t, h.dir, "vmcore."+host+".last", name1)

	// Dump 2: plain, no KDH at all, with a bad-parity header never sent.
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	plain := pattern(12, 5*page+123)
	if err := sendAll(c, plain, 1448); err != nil {
		t.Fatal(err)
	}
	k2 := newKDH(uint64(len(plain)), wire.CompressNone, 0)
	kb = kdhBytes(&k2)
	kb[100] ^= 1 // parity fails; the header is recorded anyway
	if err := c.Send(servertest.Msg{Type: wire.KDH, Payload: kb}); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := h.read("vmcore." + host + ".2"); !bytes.Equal(got, plain) {
		t.Errorf("vmcore.2: %d bytes", len(got))
	}
	if got := string(h.read("info." + host + ".2")); !strings.Contains(got, "Header Parity Check: Fail\n") {
		t.Errorf("info.2:\n%s", got)
	}
	checkLink(t, h.dir, "vmcore."+host+".last", "vmcore."+host+".2")
	checkLink(t, h.dir, "info."+host+".last", "info."+host+".2")
	if got := string(h.read("bounds." + host)); got != "3\n" {
		t.Errorf("bounds: %q", got)
	}

	h.log.waitLog(t, "exited with status 0", 3)
	args, envs := handlerRuns(t, out, "success")
	if len(args) != 3 {
		t.Fatalf("%d successful handler runs", len(args))
	}
	seen := map[string]bool{}
	for i, a := range args {
		if len(a) != 7 || a[0] != "5" || a[2] != "127.0.21.1" || a[3] != host || a[6] != h.dir {
			t.Errorf("handler args/cwd: %q", a)
			continue
		}
		seen[a[4]+" "+a[5]] = true
		if envs[i] != "" {
			t.Errorf("handler environment: %q", envs[i])
		}
	}
	for _, want := range []string{
		"./info.127.0.21.1.0 ./vmcore_encrypted.127.0.21.1.0",
		"./info.127.0.21.1.1 ./vmcore.127.0.21.1.1.gz",
		"./info.127.0.21.1.2 ./vmcore.127.0.21.1.2",
	} {
		if !seen[want] {
			t.Errorf("no handler run for %s; runs: %v", want, args)
		}
	}
}
