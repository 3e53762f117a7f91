package record

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"
)

// qmpEvent is one asynchronous QMP event, kept verbatim for the recording.
type qmpEvent struct {
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// qmpResult is the answer to one command, as recorded: {"ok": true, "return": ...} or
// {"ok": false, "error": {...}}.
type qmpResult struct {
	OK     bool            `json:"ok"`
	Return json.RawMessage `json:"return,omitempty"`
	Error  json.RawMessage `json:"error,omitempty"`
}

type qmpMsg struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  json.RawMessage `json:"error"`
	Event  string          `json:"event"`
	ID     json.RawMessage `json:"id"`
	raw    []byte
}

// qmpClient speaks QMP over a unix socket: one command at a time, events queued.
type qmpClient struct {
	conn    net.Conn
	replies chan qmpMsg
	mu      sync.Mutex
	events  []qmpEvent
	evCond  *sync.Cond
	closed  bool
	readErr error
}

func dialQMP(path string, deadline time.Time) (*qmpClient, error) {
	var conn net.Conn
	var err error
	for {
		conn, err = net.Dial("unix", path)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("qmp: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c := &qmpClient{conn: conn, replies: make(chan qmpMsg, 16)}
	c.evCond = sync.NewCond(&c.mu)
	greeting := make(chan error, 1)
	go c.readLoop(greeting)
	select {
	case err := <-greeting:
		if err != nil {
			conn.Close()
			return nil, err
		}
	case <-time.After(time.Until(deadline)):
		conn.Close()
		return nil, fmt.Errorf("qmp: no greeting")
	}
	if r, err := c.Command("qmp_capabilities", nil, 10*time.Second); err != nil || !r.OK {
		conn.Close()
		return nil, fmt.Errorf("qmp_capabilities: %v %s", err, r.Error)
	}
	return c, nil
}

func (c *qmpClient) readLoop(greeting chan<- error) {
	sc := bufio.NewScanner(c.conn)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	first := true
	for sc.Scan() {
		var m qmpMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue
		}
		m.raw = append([]byte(nil), sc.Bytes()...)
		switch {
		case m.QMP != nil && first:
			first = false
			greeting <- nil
		case m.Event != "":
			var ev qmpEvent
			if json.Unmarshal(m.raw, &ev) == nil {
				c.mu.Lock()
				c.events = append(c.events, ev)
				c.evCond.Broadcast()
				c.mu.Unlock()
			}
		default:
			c.replies <- m
		}
	}
	c.mu.Lock()
	c.closed = true
	c.readErr = sc.Err()
	c.evCond.Broadcast()
	c.mu.Unlock()
	if first {
		greeting <- fmt.Errorf("qmp closed before greeting")
	}
	close(c.replies)
}

// Command runs one QMP command.
func (c *qmpClient) Command(name string, args any, timeout time.Duration) (qmpResult, error) {
	req := map[string]any{"execute": name}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return qmpResult{}, fmt.Errorf("qmp %s: %v", name, err)
	}
	select {
	case m, ok := <-c.replies:
		if !ok {
			return qmpResult{}, fmt.Errorf("qmp %s: connection closed", name)
		}
		if m.Error != nil {
			return qmpResult{OK: false, Error: m.Error}, nil
		}
		return qmpResult{OK: true, Return: m.Return}, nil
	case <-time.After(timeout):
		return qmpResult{}, fmt.Errorf("qmp %s: timed out after %v", name, timeout)
	}
}

// EventMark returns the number of events seen so far, for TakeEvents / WaitEvent.
func (c *qmpClient) EventMark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// EventsSince returns the events received after mark.
func (c *qmpClient) EventsSince(mark int) []qmpEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]qmpEvent{}, c.events[mark:]...)
}

// WaitEvent waits until an event after mark satisfies match, or the timeout passes.
func (c *qmpClient) WaitEvent(mark int, timeout time.Duration, match func(qmpEvent) bool) (qmpEvent, bool) {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.evCond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for _, ev := range c.events[mark:] {
			if match(ev) {
				return ev, true
			}
		}
		if c.closed || !time.Now().Before(deadline) {
			return qmpEvent{}, false
		}
		c.evCond.Wait()
	}
}

func (c *qmpClient) Close() error { return c.conn.Close() }
