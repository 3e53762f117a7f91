package mcheck

import "strconv"

// Errno is a kernel error number, positive; 0 is success.
type Errno int

const (
	OK         Errno = 0
	EPERM      Errno = 1
	ENOENT     Errno = 2
	EINTR      Errno = 4
	ENXIO      Errno = 6
	E2BIG      Errno = 7
	ENOMEM     Errno = 12
	EBUSY      Errno = 16
	EEXIST     Errno = 17
	EINVAL     Errno = 22
	ERANGE     Errno = 34
	EOPNOTSUPP Errno = 95
	EHWPOISON  Errno = 133
)

var errnoNames = map[Errno]string{
	OK: "0", EPERM: "EPERM", ENOENT: "ENOENT", EINTR: "EINTR", ENXIO: "ENXIO", E2BIG: "E2BIG",
	ENOMEM: "ENOMEM", EBUSY: "EBUSY", EEXIST: "EEXIST", EINVAL: "EINVAL", ERANGE: "ERANGE",
	EOPNOTSUPP: "EOPNOTSUPP", EHWPOISON: "EHWPOISON",
}

func (e Errno) String() string {
	if s, ok := errnoNames[e]; ok {
		return s
	}
	return "errno" + strconv.Itoa(int(e))
}

// ParseErrno reads a name as printed by String ("0", "EBUSY", ...).
func ParseErrno(s string) (Errno, bool) {
	for e, n := range errnoNames {
		if n == s {
			return e, true
		}
	}
	return 0, false
}

// Result is what an op returns: 0 or an errno, and the answer of a query (0/1).
type Result struct {
	Errno Errno
	Val   int
}

func (r Result) String() string {
	if r.Errno != OK {
		return "-" + r.Errno.String()
	}
	return "0 val=" + strconv.Itoa(r.Val)
}

// Machine is one executable memory-hotplug machine: the reference model or the implementation.
type Machine interface {
	// Apply runs one op to completion (ops are atomic under the hotplug lock).
	Apply(op Op) Result
	// Snapshot is the canonical observable state.
	Snapshot() *Snapshot
	// Clone is a deep copy.
	Clone() Machine
	// Fingerprint hashes the full state (equal states, equal fingerprints).
	Fingerprint() uint64
	// Check reports the machine's own consistency problems (e.g. counters against bitmaps, a
	// struct page touched after its backing was freed); nil when consistent.
	Check() []string
}
