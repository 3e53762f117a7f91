package record

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"
)

// agent talks to the guest's /init over the second serial port (a unix socket on the host).
type agent struct {
	conn  net.Conn
	lines chan string
	err   error
	// Ready is the release the guest announced in its @@READY line.
	Ready string
}

func newAgent(conn net.Conn) *agent {
	a := &agent{conn: conn, lines: make(chan string, 4096)}
	go func() {
		r := bufio.NewReaderSize(conn, 1<<16)
		for {
			l, err := r.ReadString('\n')
			if l != "" {
				a.lines <- strings.TrimRight(l, "\r\n")
			}
			if err != nil {
				a.err = err
				close(a.lines)
				return
			}
		}
	}()
	return a
}

func (a *agent) next(deadline time.Time) (string, error) {
	select {
	case l, ok := <-a.lines:
		if !ok {
			return "", fmt.Errorf("agent: connection closed (%v)", a.err)
		}
		return l, nil
	case <-time.After(time.Until(deadline)):
		return "", fmt.Errorf("agent: timed out")
	}
}

// WaitReady waits for the "@@READY <release>" banner.
func (a *agent) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		l, err := a.next(deadline)
		if err != nil {
			return fmt.Errorf("guest agent not ready within %v: %v", timeout, err)
		}
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "@@READY"); ok {
			a.Ready = strings.TrimSpace(rest)
			return nil
		}
	}
}

// Do sends one command line and collects the reply up to its @@END line.
func (a *agent) Do(cmd string, timeout time.Duration) (agentReply, error) {
	if _, err := a.conn.Write([]byte(cmd + "\n")); err != nil {
		return agentReply{}, fmt.Errorf("agent %s: %v", cmd, err)
	}
	name := strings.Fields(cmd)[0]
	deadline := time.Now().Add(timeout)
	rep := agentReply{Cmd: name}
	for {
		l, err := a.next(deadline)
		if err != nil {
			return rep, fmt.Errorf("agent %s: %v", cmd, err)
		}
		if c, rc, ok := parseEndLine(l); ok && c == name {
			rep.RC = rc
			return rep, nil
		}
		rep.Lines = append(rep.Lines, l)
	}
}
