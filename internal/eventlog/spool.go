package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// The spool keeps events that record what already happened (EmitAfter) while
// Kafka cannot take them. It is one append-only log file and a head file that
// holds the offset of the first record not yet acknowledged by Kafka. Every
// append and every head move is fsync'd before it is reported, so a crash
// loses nothing that a caller was told is safe. A crash between Kafka's
// acknowledgement and the head move re-sends that record after restart: the
// event id is unchanged, so consumers collapse it (ingest deduplicates by
// event_id).
//
// Record framing: u32 length of body | u32 CRC-32C of body | body, where body
// is u16 topic length | topic | u32 key length | key | value.

var (
	// ErrSpoolFull is returned when an append would grow the spool past its
	// size bound. The event was not stored: the caller must treat it as lost
	// and report it, never ignore it.
	ErrSpoolFull = errors.New("eventlog: spool full")
	// ErrSpoolCorrupt is returned when the spool file holds a record whose
	// checksum or framing does not verify.
	ErrSpoolCorrupt = errors.New("eventlog: spool corrupt")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SpoolRecord is one spooled Kafka record.
type SpoolRecord struct {
	Topic string
	Key   []byte
	Value []byte
}

// Spool is a durable FIFO of records on local disk.
type Spool struct {
	mu       sync.Mutex
	dir      string
	maxBytes int64
	log      *os.File
	headFile string
	head     int64 // offset of the first unacknowledged record
	size     int64 // end of the last complete record
	count    int   // records between head and size
}

const (
	spoolLogName  = "spool.log"
	spoolHeadName = "spool.head"
	frameHeader   = 8
	maxRecordSize = 16 << 20
)

// OpenSpool opens or creates the spool in dir, bounded to maxBytes of
// pending records. A torn record at the end of the log (a crash during an
// append that was never acknowledged to its caller) is cut off.
func OpenSpool(dir string, maxBytes int64) (*Spool, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("eventlog: spool size bound must be positive, got %d", maxBytes)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("eventlog: spool dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, spoolLogName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("eventlog: open spool: %w", err)
	}
	s := &Spool{dir: dir, maxBytes: maxBytes, log: f, headFile: filepath.Join(dir, spoolHeadName)}
	if err := s.recover(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *Spool) recover() error {
	b, err := os.ReadFile(s.headFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		s.head = 0
	case err != nil:
		return fmt.Errorf("eventlog: read spool head: %w", err)
	case len(b) != 8:
		return fmt.Errorf("%w: head file has %d bytes, want 8", ErrSpoolCorrupt, len(b))
	default:
		s.head = int64(binary.BigEndian.Uint64(b))
	}
	st, err := s.log.Stat()
	if err != nil {
		return err
	}
	if s.head > st.Size() {
		// Only Ack's emptying step leaves the head past the end of the log
		// (a crash after the truncate, before the head reset): every record
		// had been acknowledged, so the spool is empty.
		if err := s.writeHead(0); err != nil {
			return err
		}
		s.head = 0
	}
	// Walk from head to find the end of the last complete record.
	off := s.head
	s.count = 0
	for {
		_, n, err := s.readAt(off)
		if err != nil {
			break // torn or absent tail: everything before off is whole
		}
		off += n
		s.count++
	}
	if off != st.Size() {
		if err := s.log.Truncate(off); err != nil {
			return fmt.Errorf("eventlog: cut torn spool tail: %w", err)
		}
		if err := s.log.Sync(); err != nil {
			return err
		}
	}
	s.size = off
	return nil
}

// readAt decodes the record at off and returns it with its framed length.
func (s *Spool) readAt(off int64) (SpoolRecord, int64, error) {
	var hdr [frameHeader]byte
	if _, err := s.log.ReadAt(hdr[:], off); err != nil {
		return SpoolRecord{}, 0, err
	}
	n := binary.BigEndian.Uint32(hdr[0:4])
	sum := binary.BigEndian.Uint32(hdr[4:8])
	if n > maxRecordSize {
		return SpoolRecord{}, 0, fmt.Errorf("%w: record at %d claims %d bytes", ErrSpoolCorrupt, off, n)
	}
	body := make([]byte, n)
	if _, err := s.log.ReadAt(body, off+frameHeader); err != nil {
		return SpoolRecord{}, 0, err
	}
	if crc32.Checksum(body, castagnoli) != sum {
		return SpoolRecord{}, 0, fmt.Errorf("%w: checksum mismatch at %d", ErrSpoolCorrupt, off)
	}
	rec, err := decodeSpoolBody(body)
	if err != nil {
		return SpoolRecord{}, 0, fmt.Errorf("%w: record at %d: %v", ErrSpoolCorrupt, off, err)
	}
	return rec, frameHeader + int64(n), nil
}

func decodeSpoolBody(b []byte) (SpoolRecord, error) {
	if len(b) < 2 {
		return SpoolRecord{}, io.ErrUnexpectedEOF
	}
	tl := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < tl+4 {
		return SpoolRecord{}, io.ErrUnexpectedEOF
	}
	topic := string(b[:tl])
	b = b[tl:]
	kl := int(binary.BigEndian.Uint32(b))
	b = b[4:]
	if kl > len(b) {
		return SpoolRecord{}, io.ErrUnexpectedEOF
	}
	key := append([]byte(nil), b[:kl]...)
	value := append([]byte(nil), b[kl:]...)
	return SpoolRecord{Topic: topic, Key: key, Value: value}, nil
}

// Append stores rec durably at the tail. It returns ErrSpoolFull when the
// pending records would exceed the bound.
func (s *Spool) Append(rec SpoolRecord) error {
	if len(rec.Topic) > 0xffff {
		return fmt.Errorf("eventlog: spool topic name too long")
	}
	bodyLen := 2 + len(rec.Topic) + 4 + len(rec.Key) + len(rec.Value)
	if bodyLen > maxRecordSize {
		return fmt.Errorf("eventlog: spool record of %d bytes exceeds %d", bodyLen, maxRecordSize)
	}
	frame := make([]byte, frameHeader+bodyLen)
	body := frame[frameHeader:]
	binary.BigEndian.PutUint16(body, uint16(len(rec.Topic)))
	copy(body[2:], rec.Topic)
	binary.BigEndian.PutUint32(body[2+len(rec.Topic):], uint32(len(rec.Key)))
	copy(body[6+len(rec.Topic):], rec.Key)
	copy(body[6+len(rec.Topic)+len(rec.Key):], rec.Value)
	binary.BigEndian.PutUint32(frame[0:4], uint32(bodyLen))
	binary.BigEndian.PutUint32(frame[4:8], crc32.Checksum(body, castagnoli))

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.size-s.head+int64(len(frame)) > s.maxBytes {
		return fmt.Errorf("%w: %d bytes pending, bound %d", ErrSpoolFull, s.size-s.head, s.maxBytes)
	}
	if _, err := s.log.WriteAt(frame, s.size); err != nil {
		return fmt.Errorf("eventlog: spool write: %w", err)
	}
	if err := s.log.Sync(); err != nil {
		return fmt.Errorf("eventlog: spool fsync: %w", err)
	}
	s.size += int64(len(frame))
	s.count++
	return nil
}

// Len returns the number of pending records.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Peek returns up to max pending records from the head, oldest first,
// without removing them. Pass the returned records, once Kafka has
// acknowledged them, to Ack.
func (s *Spool) Peek(max int) ([]SpoolRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SpoolRecord
	for off := s.head; off < s.size && len(out) < max; {
		rec, n, err := s.readAt(off)
		if err != nil {
			return out, err
		}
		out = append(out, rec)
		off += n
	}
	return out, nil
}

// Ack removes the n oldest records. Once the spool is empty, the log is
// truncated so that it does not grow without bound.
func (s *Spool) Ack(n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	off := s.head
	for i := 0; i < n; i++ {
		if off >= s.size {
			return fmt.Errorf("eventlog: ack of %d records, only %d pending", n, i)
		}
		_, m, err := s.readAt(off)
		if err != nil {
			return err
		}
		off += m
	}
	if off == s.size {
		// Crash-safe order: head to the end first (nothing pending), then
		// truncate, then head to 0. A crash after the truncate leaves the
		// head past the end, which recover reads as empty.
		if err := s.writeHead(off); err != nil {
			return err
		}
		if err := s.log.Truncate(0); err != nil {
			return err
		}
		if err := s.log.Sync(); err != nil {
			return err
		}
		s.size, off = 0, 0
	}
	if err := s.writeHead(off); err != nil {
		return err
	}
	s.head = off
	s.count -= n
	return nil
}

func (s *Spool) writeHead(off int64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(off))
	tmp := s.headFile + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("eventlog: spool head: %w", err)
	}
	if _, err := f.Write(b[:]); err != nil {
		f.Close()
		return fmt.Errorf("eventlog: spool head: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("eventlog: spool head fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.headFile); err != nil {
		return fmt.Errorf("eventlog: spool head: %w", err)
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Close closes the spool's files. Pending records stay on disk.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Close()
}
