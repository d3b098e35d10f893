// Package board is what the image's boards have in common: the Machine a
// board is, the Crash it reports, and the Dumper, which prepares
// everything the panic path needs while the machine is healthy and then
// sends the dump without allocating.
//
// The panic path, in the order it runs, one step per place:
//
//  1. The board catches the failure and stops everything else: an
//     unrecovered panic or fatal error ends in the runtime's exit, a CPU
//     exception in the board's vector. board/tamago/crash.go (exitHook,
//     excCommon in board_amd64.s, then crashMain on a stack of its own)
//     or board/stockgo/watch_linux_amd64.go (the shim stops every thread
//     and wakes the watcher). board/amd64 turns the dying thread's
//     registers into the panicking goroutine's and words a CPU exception;
//     the board fills Crash (registers in elfcore's table, reason, and the
//     message in Crash.Msg) and calls the function given to
//     Machine.OnCrash: board/tamago/machine.go, board/stockgo/machine_linux_amd64.go.
//  2. The image's crash function (cmd/tamadump, image.crashed) hands the
//     Crash to Dumper.Crashed (board.go), which records it and takes the
//     heap allocation count (board/goruntime), and either dumps at once or
//     serves the debugger (ddb), whose dump and netdump commands come back
//     to Dumper.Configure (client.Retarget after the crash) and
//     Dumper.Dump. Before halting, or at the debugger's reset, the image
//     prints Dumper.AllocsSinceCrash: 0, or why there is no count.
//  3. Dumper.Dump (board.go) resets the NIC, asks the Machine for its
//     memory, builds the ELF core's headers and the kernel dump header in
//     buffers made by NewDumper, and calls the client.
//  4. netdump/client/client.go runs the netdump session: HERALD, VMCORE
//     windows, KDH, FINISHED, with retransmissions.
//  5. debugnet/conn.go frames each message as UDP/IPv4/Ethernet in the
//     NIC's own buffers and answers ARP; debugnet.Line (console.go) is
//     the one console printer of the whole path.
//  6. The driver (drivers/virtio, drivers/e1000; board/microvm found it)
//     sends and polls with buffers from its mbufpool, reserved at boot.
//
// board/target picks the board by build tag, so cmd/tamadump names no
// board.
package board
