package e1000

import (
	"encoding/binary"

	"github.com/tamadump/tamadump/debugnet"
)

var _ debugnet.Gatherer = (*NIC)(nil)

// Gathers implements debugnet.Gatherer: the 8254x reads a frame from
// several descriptors and inserts TCP/UDP checksums (the context and data
// descriptors; QEMU emulates both).
func (n *NIC) Gathers() bool { return true }

// QueueGather implements debugnet.Gatherer with extended descriptors: a
// context descriptor when the checksum's place differs from the one the
// device holds (it keeps it for the data descriptors that follow), then a
// data descriptor for head, copied into its slot's buffer, asking for the
// checksum (POPTS.TXSM), and one pointing at the tail. Like Queue, it
// leaves TDT to Flush.
func (n *NIC) QueueGather(head []byte, tail uint64, k int, sum debugnet.Offload) error {
	if len(head) == 0 || k < 0 || len(head)+k > maxFrame || k > 0 && len(head)+k < minFrame {
		return ErrFrameSize
	}
	need := 1
	if k > 0 {
		need++
	}
	ctx := !n.ctxSet || n.ctx != sum
	if ctx {
		need++
	}
	if err := n.room(need); err != nil {
		return err
	}
	if ctx {
		// TUCSS, TUCSO and TUCSE (0: to the end) in the second dword;
		// no IP checksum (debugnet computes it), no segmentation.
		d := n.txDesc(n.txNext)
		binary.LittleEndian.PutUint64(d[0:], uint64(sum.Start)<<32|uint64(sum.Start+sum.Offset)<<40)
		binary.LittleEndian.PutUint64(d[8:], uint64(txCmdDEXT|txCmdRS)<<24)
		n.ctx, n.ctxSet = sum, true
		n.txNext = (n.txNext + 1) % RingSize
	}
	s := n.txNext
	b := n.txBuf[s].Data
	l := copy(b, head)
	if l < minFrame && k == 0 {
		clear(b[l:minFrame])
		l = minFrame
	}
	cmd := uint64(txCmdDEXT | txCmdIFCS | txCmdRS)
	last := uint64(txCmdEOP)
	if k > 0 {
		last = 0
	}
	d := n.txDesc(s)
	binary.LittleEndian.PutUint64(d[0:], n.txBuf[s].Addr)
	binary.LittleEndian.PutUint64(d[8:], uint64(l)|txDtypData|(cmd|last)<<24|uint64(txPoptsTXSM)<<40)
	n.txNext = (s + 1) % RingSize
	if k > 0 {
		d := n.txDesc(n.txNext)
		binary.LittleEndian.PutUint64(d[0:], tail)
		binary.LittleEndian.PutUint64(d[8:], uint64(k)|txDtypData|(cmd|txCmdEOP)<<24)
		n.txNext = (n.txNext + 1) % RingSize
	}
	n.tell(false)
	return nil
}
