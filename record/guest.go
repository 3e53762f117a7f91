package record

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// agentEnd starts the last line of every agent reply: "@@END <cmd> rc=<n>".
const agentEnd = "@@END"

// agentSection starts a section of an OBSERVE reply: "@@S <name>".
const agentSection = "@@S"

// initScript is the guest's /init: it mounts the pseudo file systems and then serves commands
// read line by line from the second serial port (/dev/ttyS1, QEMU's "agent" chardev). Every
// reply ends with "@@END <cmd> rc=<n>". Commands:
//
//	PING                  liveness
//	INFO                  uname -r / uname -v / /proc/cmdline
//	BLOCKS                names of /sys/devices/system/memory/memoryN
//	STATE <n> <value>     write value to memoryN/state; prints "err|<stderr of the write>"
//	OBSERVE               everything the recorder records (sections "@@S <name>")
//	EXIT                  power off
const initScript = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
AG=/dev/ttyS1
stty -F $AG raw -echo -onlcr 2>/dev/null
exec 0<$AG 1>$AG
M=/sys/devices/system/memory
end() { echo "@@END $1 rc=$2"; }
echo "@@READY $(uname -r)"
while read -r cmd a b; do
  case "$cmd" in
  PING) end PING 0 ;;
  INFO)
    echo "release|$(uname -r)"
    echo "version|$(uname -v)"
    echo "cmdline|$(cat /proc/cmdline)"
    end INFO 0 ;;
  BLOCKS)
    cd $M && ls -1d memory[0-9]* 2>/dev/null
    cd /
    end BLOCKS 0 ;;
  STATE)
    { echo "$b" > $M/memory$a/state; } 2>/tmp/err
    rc=$?
    echo "err|$(cat /tmp/err)"
    end STATE $rc ;;
  OBSERVE)
    cd $M
    echo "@@S block_size_bytes"; cat block_size_bytes
    echo "@@S auto_online_blocks"; cat auto_online_blocks
    echo "@@S params"; grep -H . /sys/module/memory_hotplug/parameters/* 2>/dev/null
    echo "@@S blockattrs"
    for f in state phys_index valid_zones removable phys_device online; do
      grep -H . memory[0-9]*/$f 2>/dev/null
    done
    echo "@@S blocknodes"; ls -1d memory[0-9]*/node[0-9]* 2>/dev/null
    cd /
    echo "@@S zoneinfo"; cat /proc/zoneinfo
    echo "@@S meminfo"; cat /proc/meminfo
    echo "@@S vmstat"; cat /proc/vmstat
    echo "@@S iomem"; cat /proc/iomem
    echo "@@S hugepages"
    cd /sys/kernel/mm/hugepages/hugepages-2048kB 2>/dev/null && grep -H . * 2>/dev/null
    cd /
    echo "hugetlb_optimize_vmemmap:$(cat /proc/sys/vm/hugetlb_optimize_vmemmap 2>/dev/null)"
    echo "@@S dmesg"; dmesg -c
    end OBSERVE 0 ;;
  EXIT) end EXIT 0; sync; poweroff -f ;;
  "") ;;
  *) echo "unknown command $cmd"; end "$cmd" 127 ;;
  esac
done
poweroff -f
`

// findBusybox returns the static busybox binary to put in the initramfs.
func findBusybox() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			out, _ := exec.Command("file", "-L", p).Output()
			if len(out) > 0 && !strings.Contains(string(out), "statically linked") {
				continue
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("no static busybox found (apt-get install -y busybox-static)")
}

// buildInitramfs returns a gzip'd newc archive holding busybox and the agent /init.
func buildInitramfs(busybox []byte) ([]byte, error) {
	var raw bytes.Buffer
	c := newCpioWriter(&raw)
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "sbin", "usr", "usr/bin", "usr/sbin"} {
		c.Dir(d, 0o755)
	}
	c.File("bin/busybox", 0o755, busybox)
	c.Symlink("bin/sh", "busybox")
	c.File("init", 0o755, []byte(initScript))
	if err := c.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return gz.Bytes(), nil
}

// writeInitramfs builds the initramfs into dir/initrd.gz (rewritten every run: it is cheap).
func writeInitramfs(dir string) (string, error) {
	bb, err := findBusybox()
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return "", err
	}
	img, err := buildInitramfs(data)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "initrd.gz")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, img, 0o644); err != nil {
		return "", err
	}
	return p, os.Rename(tmp, p)
}
