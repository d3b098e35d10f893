package qemu

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RunConsole runs a whole machine (qemu-system-x86_64, or qemu-system-arm
// when args select MCIMX6ULEVK, with args, which must put the serial
// console on stdio) until it exits, handing each line
// it prints to onLine, which may type into the console through in. It
// returns everything printed and QEMU's exit status, and fails the test
// when QEMU cannot run or is still running after timeout.
func RunConsole(tb testing.TB, timeout time.Duration, args []string, onLine func(line string, in io.Writer)) (string, int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	bin, _ := binaryFor(machineOf(args))
	cmd := exec.CommandContext(ctx, bin, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	var out strings.Builder
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadString('\n')
		out.WriteString(line)
		if onLine != nil {
			onLine(line, stdin)
		}
		if err != nil {
			break
		}
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		tb.Fatalf("QEMU still running after %v; output:\n%s\n%s", timeout, out.String(), stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		tb.Fatalf("qemu: %v\n%s", err, stderr.String())
	}
	return out.String(), cmd.ProcessState.ExitCode()
}
