package hook

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Call sends one hook call to the runner at socket and waits for the
// answer until ctx ends.
func Call(ctx context.Context, socket string, req Request) (Response, error) {
	var resp Response
	req.Kind = KindHook
	f, err := encode(req)
	if err != nil {
		return resp, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return resp, fmt.Errorf("hook: connect to the runner: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.Write(f); err != nil {
		return resp, fmt.Errorf("hook: send: %w", errOr(ctx, err))
	}
	if err := readFrame(bufio.NewReader(c), &resp); err != nil {
		return resp, fmt.Errorf("hook: no answer from the runner: %w", errOr(ctx, err))
	}
	return resp, nil
}

func errOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Attach asks the runner for the agent's stdin, stdout and stderr and
// returns them, and whether they are a terminal.
func Attach(ctx context.Context, socket string) ([]*os.File, bool, error) {
	f, err := encode(Request{Kind: KindAttach})
	if err != nil {
		return nil, false, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, false, fmt.Errorf("hook: connect to the runner: %w", err)
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	if dl, ok := ctx.Deadline(); ok {
		uc.SetDeadline(dl)
	}
	if _, err := uc.Write(f); err != nil {
		return nil, false, fmt.Errorf("hook: attach: %w", err)
	}
	// The answer is one message: the frame with the descriptors.
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*8))
	n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, false, fmt.Errorf("hook: attach: %w", err)
	}
	var fds []int
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, false, fmt.Errorf("hook: attach: %w", err)
		}
		for _, m := range msgs {
			got, err := unix.ParseUnixRights(&m)
			if err == nil {
				fds = append(fds, got...)
			}
		}
	}
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	var resp Response
	if err := readFrame(bytes.NewReader(buf[:n]), &resp); err != nil {
		closeAll()
		return nil, false, fmt.Errorf("hook: attach answer: %w", err)
	}
	if resp.ExitCode != 0 {
		closeAll()
		return nil, false, fmt.Errorf("hook: attach refused: %s", resp.Stderr)
	}
	if len(fds) != 3 || resp.FDs != 3 {
		closeAll()
		return nil, false, errors.New("hook: attach: the runner sent no stdio descriptors")
	}
	files := make([]*os.File, 3)
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), []string{"stdin", "stdout", "stderr"}[i])
	}
	return files, resp.TTY, nil
}
