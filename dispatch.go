package mcheck

// Ops is a machine seen op by op: one method per op of the alphabet. Dispatch maps an Op value
// onto it, so which fields each op passes is written once, for the model and the implementation.
type Ops interface {
	AddMemory(block, nr int, memmapOnMemory bool) Errno
	RemoveMemory(block, nr int) Errno
	Online(block int, t OnlineType) Errno
	Offline(block int) Errno
	Pin(block int) Errno
	Unpin(block int) Errno
	HugetlbAlloc(block int) Errno
	HugetlbOptimize(block int) Result // Val 1: optimized, 0: skipped (self-hosted vmemmap)
	HugetlbFree(block int) Errno
	Memremap(subsection, nr, reserve, free int) Errno
	Memunmap(subsection int) Errno
	AllocContig(pfn, nr int) Errno
	FailNext(k FaultKind)
	PfnValid(pfn int) bool
	PfnToOnlinePage(pfn int) bool
}

// Dispatch applies op to m.
func Dispatch(m Ops, op Op) Result {
	r := func(e Errno) Result { return Result{Errno: e} }
	switch op.Kind {
	case OpAddMemory:
		return r(m.AddMemory(op.Block, op.Nr, op.MMOM))
	case OpRemoveMemory:
		return r(m.RemoveMemory(op.Block, op.Nr))
	case OpOnline:
		return r(m.Online(op.Block, op.Type))
	case OpOffline:
		return r(m.Offline(op.Block))
	case OpPin:
		return r(m.Pin(op.Block))
	case OpUnpin:
		return r(m.Unpin(op.Block))
	case OpHugetlbAlloc:
		return r(m.HugetlbAlloc(op.Block))
	case OpHugetlbOptimize:
		return m.HugetlbOptimize(op.Block)
	case OpHugetlbFree:
		return r(m.HugetlbFree(op.Block))
	case OpMemremap:
		return r(m.Memremap(op.Subsection, op.Nr, op.Reserve, op.Free))
	case OpMemunmap:
		return r(m.Memunmap(op.Subsection))
	case OpAllocContig:
		return r(m.AllocContig(op.Pfn, op.Nr))
	case OpFailNext:
		m.FailNext(op.Fault)
		return Result{}
	case OpPfnValid:
		return Result{Val: b2i(m.PfnValid(op.Pfn))}
	case OpPfnToOnlinePage:
		return Result{Val: b2i(m.PfnToOnlinePage(op.Pfn))}
	}
	return r(EINVAL)
}
