package tun

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A SYN filter drops the SYNs of blocked sources inside the kernel, before
// they enter the TUN's queue toward us (TUNSETFILTEREBPF). A SYN flood then
// costs the flooder's own CPU, in its sendmsg, instead of one TUN read of
// ours per packet: when a flood outpaces our reads, the kernel drops
// packets at random at the queue's tail, legitimate ones among them. The
// stack decides whom to block (its per-source SYN-cookie budget) and for
// how long; the filter only enforces it.
//
// The program is a socket filter written here as raw eBPF (no compiler
// needed): for a TCP packet with SYN set and ACK clear whose source is in
// a block map with a deadline still ahead (CLOCK_MONOTONIC,
// bpf_ktime_get_ns), return 0 (drop); anything else passes whole. An IPv4
// source is blocked by its address, an IPv6 one by its /64 (as the stack
// budgets it: one host has a whole /64); each family has its own map. An
// IPv6 SYN behind extension headers is not looked at (it passes).

// synFilterMaxSources bounds the block map, an LRU hash: a flood from
// more sources than that evicts the least recently blocked ones (the
// stack's own limit still applies to them).
const synFilterMaxSources = 4096

// synFilter is the loaded program and its maps.
type synFilter struct {
	mu     sync.Mutex
	map4   int // IPv4 source -> deadline
	map6   int // IPv6 source /64 -> deadline
	progFD int
}

// eBPF instruction encoding (linux/bpf_common.h, linux/bpf.h).
type bpfInsn struct {
	code   uint8
	regs   uint8 // dst in the low nibble, src in the high nibble
	off    int16
	imm    int32
	target string // jump label, resolved by assemble
}

const (
	bpfLD, bpfLDX, bpfSTX, bpfALU64, bpfJMP = 0x00, 0x01, 0x03, 0x07, 0x05
	bpfW, bpfB, bpfDW                       = 0x00, 0x10, 0x18
	bpfIMM, bpfABS, bpfIND, bpfMEM          = 0x00, 0x20, 0x40, 0x60
	bpfK, bpfX                              = 0x00, 0x08
	bpfADD, bpfAND, bpfLSH, bpfMOV          = 0x00, 0x50, 0x60, 0xb0
	bpfJA, bpfJEQ, bpfJGT, bpfJNE, bpfJLT   = 0x00, 0x10, 0x20, 0x50, 0xa0
	bpfCALL, bpfEXIT                        = 0x80, 0x90
	bpfPseudoMapFD                          = 1
	bpfFuncMapLookupElem, bpfFuncKtimeGetNs = 1, 5
)

func ins(code uint8, dst, src uint8, off int16, imm int32) bpfInsn {
	return bpfInsn{code: code, regs: dst | src<<4, off: off, imm: imm}
}

func jmp(code uint8, dst, src uint8, imm int32, target string) bpfInsn {
	i := ins(code, dst, src, 0, imm)
	i.target = target
	return i
}

// synFilterProgram returns the filter's instructions for the maps map4
// (4-byte keys) and map6 (8-byte keys). The keys are the address words as
// LD_ABS loads them: network order turned into host order.
func synFilterProgram(map4, map6 int) []bpfInsn {
	const r0, r1, r2, r6, r7, r10 = 0, 1, 2, 6, 7, 10
	return []bpfInsn{
		ins(bpfALU64|bpfMOV|bpfX, r6, r1, 0, 0), // r6 = skb (LD_ABS wants it there)
		ins(bpfLDX|bpfMEM|bpfW, r0, r6, 0, 0),   // r0 = skb->len
		jmp(bpfJMP|bpfJLT|bpfK, r0, 0, 40, "pass"),
		ins(bpfLD|bpfABS|bpfB, 0, 0, 0, 0), // version and IHL
		ins(bpfALU64|bpfAND|bpfK, r0, 0, 0, 0xf0),
		jmp(bpfJMP|bpfJEQ|bpfK, r0, 0, 0x60, "v6"),
		jmp(bpfJMP|bpfJNE|bpfK, r0, 0, 0x40, "pass"),
		ins(bpfLD|bpfABS|bpfB, 0, 0, 0, 9), // protocol
		jmp(bpfJMP|bpfJNE|bpfK, r0, 0, unix.IPPROTO_TCP, "pass"),
		ins(bpfLD|bpfABS|bpfB, 0, 0, 0, 0),
		ins(bpfALU64|bpfAND|bpfK, r0, 0, 0, 0x0f),
		ins(bpfALU64|bpfLSH|bpfK, r0, 0, 0, 2), // header length
		ins(bpfALU64|bpfMOV|bpfX, r7, r0, 0, 0),
		ins(bpfLD|bpfIND|bpfB, 0, r7, 0, 13), // TCP flags
		ins(bpfALU64|bpfAND|bpfK, r0, 0, 0, 0x12),
		jmp(bpfJMP|bpfJNE|bpfK, r0, 0, 0x02, "pass"), // SYN without ACK only
		ins(bpfLD|bpfABS|bpfW, 0, 0, 0, 12),          // source address
		ins(bpfSTX|bpfMEM|bpfW, r10, r0, -4, 0),
		ins(bpfLD|bpfIMM|bpfDW, r1, bpfPseudoMapFD, 0, int32(map4)),
		ins(0, 0, 0, 0, 0), // second half of the 64-bit immediate
		ins(bpfALU64|bpfMOV|bpfX, r2, r10, 0, 0),
		ins(bpfALU64|bpfADD|bpfK, r2, 0, 0, -4),
		ins(bpfJMP|bpfCALL, 0, 0, 0, bpfFuncMapLookupElem),
		jmp(bpfJMP|bpfJA, 0, 0, 0, "found"),
		{target: "v6:"},
		ins(bpfLDX|bpfMEM|bpfW, r0, r6, 0, 0), // r0 = skb->len
		jmp(bpfJMP|bpfJLT|bpfK, r0, 0, 60, "pass"),
		ins(bpfLD|bpfABS|bpfB, 0, 0, 0, 6), // next header
		jmp(bpfJMP|bpfJNE|bpfK, r0, 0, unix.IPPROTO_TCP, "pass"),
		ins(bpfLD|bpfABS|bpfB, 0, 0, 0, 40+13), // TCP flags
		ins(bpfALU64|bpfAND|bpfK, r0, 0, 0, 0x12),
		jmp(bpfJMP|bpfJNE|bpfK, r0, 0, 0x02, "pass"),
		ins(bpfLD|bpfABS|bpfW, 0, 0, 0, 8), // source address, first half (the /64)
		ins(bpfSTX|bpfMEM|bpfW, r10, r0, -8, 0),
		ins(bpfLD|bpfABS|bpfW, 0, 0, 0, 12),
		ins(bpfSTX|bpfMEM|bpfW, r10, r0, -4, 0),
		ins(bpfLD|bpfIMM|bpfDW, r1, bpfPseudoMapFD, 0, int32(map6)),
		ins(0, 0, 0, 0, 0),
		ins(bpfALU64|bpfMOV|bpfX, r2, r10, 0, 0),
		ins(bpfALU64|bpfADD|bpfK, r2, 0, 0, -8),
		ins(bpfJMP|bpfCALL, 0, 0, 0, bpfFuncMapLookupElem),
		{target: "found:"},
		jmp(bpfJMP|bpfJEQ|bpfK, r0, 0, 0, "pass"),
		ins(bpfLDX|bpfMEM|bpfDW, r7, r0, 0, 0), // the block's deadline
		ins(bpfJMP|bpfCALL, 0, 0, 0, bpfFuncKtimeGetNs),
		jmp(bpfJMP|bpfJGT|bpfX, r0, r7, 0, "pass"),
		ins(bpfALU64|bpfMOV|bpfK, r0, 0, 0, 0), // drop
		ins(bpfJMP|bpfEXIT, 0, 0, 0, 0),
		{target: "pass:"},
		ins(bpfLDX|bpfMEM|bpfW, r0, r6, 0, 0), // keep the whole packet
		ins(bpfJMP|bpfEXIT, 0, 0, 0, 0),
	}
}

// assemble resolves the jump labels and encodes the program.
func assemble(prog []bpfInsn) []byte {
	labels := map[string]int{}
	n := 0
	for _, i := range prog {
		if len(i.target) > 0 && i.target[len(i.target)-1] == ':' {
			labels[i.target[:len(i.target)-1]] = n
			continue
		}
		n++
	}
	out := make([]byte, 0, 8*n)
	pc := 0
	for _, i := range prog {
		if len(i.target) > 0 && i.target[len(i.target)-1] == ':' {
			continue
		}
		if i.target != "" {
			i.off = int16(labels[i.target] - pc - 1)
		}
		out = append(out, i.code, i.regs)
		out = binary.LittleEndian.AppendUint16(out, uint16(i.off))
		out = binary.LittleEndian.AppendUint32(out, uint32(i.imm))
		pc++
	}
	return out
}

func bpf(cmd int, attr []byte) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(unsafe.Pointer(&attr[0])), uintptr(len(attr)))
	runtime.KeepAlive(attr)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// EnableSYNFilter loads the SYN filter and attaches it to the device; then
// BlockSYNs works. It needs CAP_BPF (or root) and Linux 4.16. The filter
// is the device's: on any queue of a multi-queue device it is queue 0's,
// and covers every queue.
func (t *TUN) EnableSYNFilter() error {
	if t.first != nil {
		return t.first.EnableSYNFilter()
	}
	newMap := func(keySize uint32) (int, error) {
		attr := make([]byte, 128)
		binary.NativeEndian.PutUint32(attr[0:], unix.BPF_MAP_TYPE_LRU_HASH)
		binary.NativeEndian.PutUint32(attr[4:], keySize)
		binary.NativeEndian.PutUint32(attr[8:], 8) // value: deadline, ns
		binary.NativeEndian.PutUint32(attr[12:], synFilterMaxSources)
		return bpf(unix.BPF_MAP_CREATE, attr)
	}
	map4, err := newMap(4)
	if err != nil {
		return fmt.Errorf("tun %s: SYN filter map: %w", t.name, err)
	}
	map6, err := newMap(8)
	if err != nil {
		unix.Close(map4)
		return fmt.Errorf("tun %s: SYN filter map: %w", t.name, err)
	}
	code := assemble(synFilterProgram(map4, map6))
	license := []byte("GPL\x00")
	logBuf := make([]byte, 16<<10)
	attr := make([]byte, 128)
	binary.NativeEndian.PutUint32(attr[0:], unix.BPF_PROG_TYPE_SOCKET_FILTER)
	binary.NativeEndian.PutUint32(attr[4:], uint32(len(code)/8))
	binary.NativeEndian.PutUint64(attr[8:], uint64(uintptr(unsafe.Pointer(&code[0]))))
	binary.NativeEndian.PutUint64(attr[16:], uint64(uintptr(unsafe.Pointer(&license[0]))))
	binary.NativeEndian.PutUint32(attr[24:], 1) // log_level
	binary.NativeEndian.PutUint32(attr[28:], uint32(len(logBuf)))
	binary.NativeEndian.PutUint64(attr[32:], uint64(uintptr(unsafe.Pointer(&logBuf[0]))))
	progFD, err := bpf(unix.BPF_PROG_LOAD, attr)
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	runtime.KeepAlive(logBuf)
	if err != nil {
		unix.Close(map4)
		unix.Close(map6)
		log := string(logBuf)
		if i := indexNUL(logBuf); i >= 0 {
			log = string(logBuf[:i])
		}
		return fmt.Errorf("tun %s: loading the SYN filter: %w\n%s", t.name, err, log)
	}
	sc, err := t.file.SyscallConn()
	if err == nil {
		cerr := sc.Control(func(fd uintptr) {
			err = unix.IoctlSetPointerInt(int(fd), unix.TUNSETFILTEREBPF, progFD)
		})
		if cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		unix.Close(progFD)
		unix.Close(map4)
		unix.Close(map6)
		return fmt.Errorf("tun %s: attaching the SYN filter: %w", t.name, err)
	}
	t.synFilter = &synFilter{map4: map4, map6: map6, progFD: progFD}
	return nil
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// BlockSYNs makes the kernel drop the SYNs of src for d: of the address for
// IPv4, of its /64 for IPv6 (a no-op without EnableSYNFilter). It reports
// whether the block is in place. Any queue of a multi-queue device blocks
// for the whole device.
func (t *TUN) BlockSYNs(src netip.Addr, d time.Duration) bool {
	if t.first != nil {
		return t.first.BlockSYNs(src, d)
	}
	f := t.synFilter
	if f == nil || !src.IsValid() {
		return false
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return false
	}
	var key []byte
	mapFD := f.map4
	if src.Is4() || src.Is4In6() {
		a := src.Unmap().As4()
		key = binary.NativeEndian.AppendUint32(nil, binary.BigEndian.Uint32(a[:]))
	} else {
		a := src.As16()
		key = binary.NativeEndian.AppendUint32(nil, binary.BigEndian.Uint32(a[0:4]))
		key = binary.NativeEndian.AppendUint32(key, binary.BigEndian.Uint32(a[4:8]))
		mapFD = f.map6
	}
	val := make([]byte, 8)
	binary.NativeEndian.PutUint64(val, uint64(ts.Nano()+d.Nanoseconds()))
	attr := make([]byte, 32)
	f.mu.Lock()
	defer f.mu.Unlock()
	binary.NativeEndian.PutUint32(attr[0:], uint32(mapFD))
	binary.NativeEndian.PutUint64(attr[8:], uint64(uintptr(unsafe.Pointer(&key[0]))))
	binary.NativeEndian.PutUint64(attr[16:], uint64(uintptr(unsafe.Pointer(&val[0]))))
	_, err := bpf(unix.BPF_MAP_UPDATE_ELEM, attr)
	runtime.KeepAlive(key)
	runtime.KeepAlive(val)
	return err == nil
}

// closeSYNFilter releases the program and its map.
func (t *TUN) closeSYNFilter() {
	if f := t.synFilter; f != nil {
		unix.Close(f.progFD)
		unix.Close(f.map4)
		unix.Close(f.map6)
	}
}
