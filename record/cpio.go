package record

import (
	"bufio"
	"fmt"
	"io"
)

// cpioWriter writes a "newc" (SVR4, no CRC) cpio archive, the format the kernel unpacks as an
// initramfs. Inode numbers are assigned sequentially; times are 0 so the archive is reproducible.
type cpioWriter struct {
	w     *bufio.Writer
	off   int64
	ino   uint32
	err   error
	ended bool
}

func newCpioWriter(w io.Writer) *cpioWriter { return &cpioWriter{w: bufio.NewWriter(w)} }

const (
	cpioModeDir  = 0o040000
	cpioModeFile = 0o100000
	cpioModeLink = 0o120000
)

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.off += int64(n)
	c.err = err
}

func (c *cpioWriter) pad() {
	if r := c.off % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *cpioWriter) entry(name string, mode uint32, data []byte) {
	c.ino++
	nlink := 1
	if mode&0o170000 == cpioModeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name))
	c.write([]byte{0})
	c.pad()
	c.write(data)
	c.pad()
}

// Dir adds a directory (perm e.g. 0755).
func (c *cpioWriter) Dir(name string, perm uint32) { c.entry(name, cpioModeDir|perm, nil) }

// File adds a regular file.
func (c *cpioWriter) File(name string, perm uint32, data []byte) {
	c.entry(name, cpioModeFile|perm, data)
}

// Symlink adds a symbolic link name -> target.
func (c *cpioWriter) Symlink(name, target string) {
	c.entry(name, cpioModeLink|0o777, []byte(target))
}

// Close writes the trailer and flushes.
func (c *cpioWriter) Close() error {
	if !c.ended {
		c.ended = true
		c.ino = 0
		c.entry("TRAILER!!!", 0, nil)
	}
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}
