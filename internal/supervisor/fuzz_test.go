package supervisor

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzReadFrame feeds the frame reader what a hostile sandbox could write
// on its socket: any bytes. It must return a message or an error, never
// panic, never allocate past MaxFrame, and a message it returns must
// survive a write and a read unchanged in type.
func FuzzReadFrame(f *testing.F) {
	frame := func(body string) []byte {
		b := make([]byte, 4+len(body))
		binary.BigEndian.PutUint32(b, uint32(len(body)))
		copy(b[4:], body)
		return b
	}
	for _, s := range []string{
		`{"t":"hello","hello":{"version":1,"pid":1,"uid":999}}`,
		`{"t":"check","check":{"id":1,"exec_id":1,"pid":7,"argv":["git","push"],"exe":"/usr/bin/git","cwd":"/workspace"}}`,
		`{"t":"exit","exit":{"id":1,"exit_code":0,"stdout":{"length":3,"sha256":"ab"}}}`,
		`{"t":"out","out":{"id":1,"stream":1,"data":"aGk="}}`,
		`{"t":""}`, `{}`, `[]`, `{"t":"check","check":null}`,
	} {
		f.Add(frame(s))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		w := newWire(&rw{r: bytes.NewReader(data)})
		for i := 0; i < 4; i++ {
			m, err := w.read()
			if err != nil {
				return
			}
			if m.Type == "" {
				t.Fatal("a message without a type was accepted")
			}
			var out bytes.Buffer
			if err := (&wire{w: &out}).write(m); err != nil {
				continue // over MaxFrame once re-encoded
			}
			back, err := newWire(&rw{r: &out}).read()
			if err != nil || back.Type != m.Type {
				t.Fatalf("round trip of %q: %v %+v", m.Type, err, back)
			}
		}
	})
}

type rw struct {
	r interface{ Read([]byte) (int, error) }
}

func (x *rw) Read(p []byte) (int, error)  { return x.r.Read(p) }
func (x *rw) Write(p []byte) (int, error) { return len(p), nil }
