package netpol

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseIPLiteral(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means ErrNotIP
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0x7F.0x0.0x0.0x1", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"00000000000000177.1", "127.0.0.1"},
		{"0x", "0.0.0.0"},
		{"0x.0x.0x.0x", "0.0.0.0"},
		{"1.16777215", "1.255.255.255"},
		{"1.2.65535", "1.2.255.255"},
		{"4294967295", "255.255.255.255"},
		{"::1", "::1"},
		{"[::1]", "::1"},
		{"[::ffff:127.0.0.1]", "127.0.0.1"},
		{"::ffff:7f00:1", "127.0.0.1"},
		{"fe80::1%eth0", "fe80::1"},
		{"[fe80::1%25eth0]", "fe80::1"},
		{"64:ff9b::7f00:1", "64:ff9b::7f00:1"},

		{"", ""},
		{"4294967296", ""},
		{"0x100000000", ""},
		{"1.16777216", ""},
		{"1.2.65536", ""},
		{"256.1", ""},
		{"1.2.3.4.5", ""},
		{"1..2", ""},
		{".1.2.3", ""},
		{"1.2.3.", ""},
		{"08", ""},
		{"0x1g", ""},
		{"-1", ""},
		{"+1", ""},
		{" 1.2.3.4", ""},
		{"1.2.3.4 ", ""},
		{"[127.0.0.1]", ""},
		{"[::1", ""},
		{"fe80::1%", ""},
		{"1.2.3.4%eth0", ""},
		{"::ffff:0x7f.1", ""},
		{"example.com", ""},
		{"１２７.０.０.１", ""}, // full-width is mapped by ParseHost, not here
		{"99999999999999999999999", ""},
	}
	for _, tc := range tests {
		got, err := ParseIPLiteral(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrNotIP) {
				t.Errorf("ParseIPLiteral(%q) = %v, %v; want ErrNotIP", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != netip.MustParseAddr(tc.want) {
			t.Errorf("ParseIPLiteral(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestParseHost(t *testing.T) {
	tests := []struct {
		in      string
		want    string // Host.String(); "" when an error is expected
		isIP    bool
		wantErr error
	}{
		{in: "Example.COM", want: "example.com"},
		{in: "example.com.", want: "example.com"},
		{in: "bücher.example", want: "xn--bcher-kva.example"},
		{in: "ＥＸＡＭＰＬＥ．ｃｏｍ", want: "example.com"},
		{in: "faß.de", want: "xn--fa-hia.de"}, // non-transitional: ß is kept
		{in: "r3---sn-abc.googlevideo.com", want: "r3---sn-abc.googlevideo.com"},
		{in: "127.1", want: "127.0.0.1", isIP: true},
		{in: "127.0.0.1.", want: "127.0.0.1", isIP: true},
		{in: "０x7f.1", want: "127.0.0.1", isIP: true},
		{in: "[::1]", want: "::1", isIP: true},
		{in: "::1", want: "::1", isIP: true},
		{in: "", wantErr: ErrEmptyHost},
		{in: ".", wantErr: ErrEmptyHost},
		{in: "a@b", wantErr: ErrUserinfo},
		{in: "a b", wantErr: ErrBadHost},
		{in: "a\tb", wantErr: ErrBadHost},
		{in: "a/b", wantErr: ErrBadHost},
		{in: `a\b`, wantErr: ErrBadHost},
		{in: "%65xample.com", wantErr: ErrBadHost},
		{in: "example..com", wantErr: ErrBadHost},
		{in: ".example.com", wantErr: ErrBadHost},
		{in: "example.com..", wantErr: ErrBadHost},
		{in: "ex_ample.com", wantErr: ErrBadHost},
		{in: "xn--a.com", wantErr: ErrBadHost},
		{in: "xn--example-.com", wantErr: ErrBadHost},
		{in: "1.2.3.256", wantErr: ErrBadHost},
		{in: "example.0x10", wantErr: ErrBadHost},
		{in: strings.Repeat("a", 64) + ".com", wantErr: ErrBadHost},
		{in: strings.Repeat("a.", 127) + "com", wantErr: ErrBadHost},
		{in: "[1.2.3.4]", wantErr: ErrBadHost},
		{in: "a:b", wantErr: ErrBadHost},
	}
	for _, tc := range tests {
		h, err := ParseHost(tc.in)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("ParseHost(%q) = %+v, %v; want %v", tc.in, h, err, tc.wantErr)
			}
			continue
		}
		if err != nil || h.String() != tc.want || h.IsIP() != tc.isIP {
			t.Errorf("ParseHost(%q) = %+v (%q), %v; want %q ip=%v", tc.in, h, h.String(), err, tc.want, tc.isIP)
		}
	}
	if _, err := NormalizeHost("127.1"); !errors.Is(err, ErrBadHost) {
		t.Errorf("NormalizeHost(127.1) error = %v, want ErrBadHost", err)
	}
	if got, err := NormalizeHost("WWW.Example.com."); err != nil || got != "www.example.com" {
		t.Errorf("NormalizeHost = %q, %v", got, err)
	}
}

func TestParseAuthority(t *testing.T) {
	type result struct {
		Host string
		Port uint16
	}
	tests := []struct {
		in      string
		want    result
		wantErr error
	}{
		{in: "example.com:443", want: result{"example.com", 443}},
		{in: "EXAMPLE.com.:8443", want: result{"example.com", 8443}},
		{in: "[::1]:80", want: result{"::1", 80}},
		{in: "[fe80::1%eth0]:80", want: result{"fe80::1", 80}},
		{in: "0x7f.1:22", want: result{"127.0.0.1", 22}},
		{in: "[::ffff:10.0.0.1]:443", want: result{"10.0.0.1", 443}},
		{in: "example.com:00443", want: result{"example.com", 443}},
		{in: "", wantErr: ErrEmptyHost},
		{in: ":443", wantErr: ErrEmptyHost},
		{in: "example.com", wantErr: ErrBadPort},
		{in: "example.com:", wantErr: ErrBadPort},
		{in: "example.com:0", wantErr: ErrBadPort},
		{in: "example.com:65536", wantErr: ErrBadPort},
		{in: "example.com:-1", wantErr: ErrBadPort},
		{in: "example.com:+443", wantErr: ErrBadPort},
		{in: "example.com:443a", wantErr: ErrBadPort},
		{in: "example.com:0000443", wantErr: ErrBadPort},
		{in: "allowed.com@evil.com:443", wantErr: ErrUserinfo},
		{in: "user:pass@evil.com:443", wantErr: ErrUserinfo},
		{in: "::1:443", wantErr: ErrBadHost},
		{in: "[::1]", wantErr: ErrBadPort},
		{in: "[::1]:", wantErr: ErrBadPort},
		{in: "[::1]x:80", wantErr: ErrBadHost},
		{in: "[::1:80", wantErr: ErrBadHost},
		{in: "[127.0.0.1]:80", wantErr: ErrBadHost},
		{in: "exa mple.com:443", wantErr: ErrBadHost},
		{in: "example.com\r\n:443", wantErr: ErrBadHost},
		{in: "%65xample.com:443", wantErr: ErrBadHost},
	}
	for _, tc := range tests {
		h, port, err := ParseAuthority(tc.in)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("ParseAuthority(%q) = %v, %d, %v; want %v", tc.in, h, port, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAuthority(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, result{h.String(), port}); diff != "" {
			t.Errorf("ParseAuthority(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestParseTarget(t *testing.T) {
	type result struct {
		Scheme, Host string
		Port         uint16
		RequestURI   string
	}
	tests := []struct {
		in      string
		want    result
		wantErr error
	}{
		{in: "http://example.com/a?b=c", want: result{"http", "example.com", 80, "/a?b=c"}},
		{in: "HTTP://Example.COM", want: result{"http", "example.com", 80, "/"}},
		{in: "http://example.com?q", want: result{"http", "example.com", 80, "/?q"}},
		{in: "https://example.com:8443/x", want: result{"https", "example.com", 8443, "/x"}},
		{in: "http://[::1]:8080/", want: result{"http", "::1", 8080, "/"}},
		{in: "http://0x7f.1/", want: result{"http", "127.0.0.1", 80, "/"}},
		{in: "http://bücher.example/ü", want: result{"http", "xn--bcher-kva.example", 80, "/ü"}},
		{in: "http://example.com./", want: result{"http", "example.com", 80, "/"}},
		{in: "http://a.com/@evil.com", want: result{"http", "a.com", 80, "/@evil.com"}},
		{in: "http://allowed.com@evil.com/", wantErr: ErrUserinfo},
		{in: "http://allowed.com:443@evil.com/", wantErr: ErrUserinfo},
		{in: "http://@evil.com/", wantErr: ErrUserinfo},
		{in: `http://allowed.com\@evil.com/`, wantErr: ErrBadTarget},
		{in: "http://a.com/#frag", wantErr: ErrBadTarget},
		{in: "http://a.com/ x", wantErr: ErrBadTarget},
		{in: "http://a.com/\x00", wantErr: ErrBadTarget},
		{in: "ftp://a.com/", wantErr: ErrBadTarget},
		{in: "/relative", wantErr: ErrBadTarget},
		{in: "a.com:80", wantErr: ErrBadTarget},
		{in: "http:///path", wantErr: ErrEmptyHost},
		{in: "http://", wantErr: ErrEmptyHost},
		{in: "http://a.com:/", wantErr: ErrBadPort},
		{in: "http://a.com:99999/", wantErr: ErrBadPort},
		{in: "http://%31%32%37.0.0.1/", wantErr: ErrBadHost},
		{in: "http://[::1/", wantErr: ErrBadHost},
		{in: "http://1.2.3.4.5/", wantErr: ErrBadHost},
	}
	for _, tc := range tests {
		got, err := ParseTarget(tc.in)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("ParseTarget(%q) = %+v, %v; want %v", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTarget(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, result{got.Scheme, got.Host.String(), got.Port, got.RequestURI}); diff != "" {
			t.Errorf("ParseTarget(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		addr   string
		reason string
		rng    string
	}{
		{"8.8.8.8", "", ""},
		{"2606:4700::1111", "", ""},
		{"127.0.0.1", ReasonLoopbackAddress, "127.0.0.0/8"},
		{"::ffff:127.0.0.1", ReasonLoopbackAddress, "127.0.0.0/8"},
		{"169.254.169.254", ReasonMetadataAddress, "169.254.169.254/32"},
		{"169.254.169.253", ReasonLinkLocalAddress, "169.254.0.0/16"},
		{"64:ff9b::a9fe:a9fe", ReasonMetadataAddress, "64:ff9b::a9fe:a9fe/128"},
		{"64:ff9b::a00:1", ReasonPrivateAddress, "64:ff9b::a00:0/104"},
		{"2002:7f00:1::", ReasonLoopbackAddress, "2002:7f00::/24"},
		{"2002:c0a8:1::", ReasonPrivateAddress, "2002:c0a8::/32"},
		{"64:ff9b:1::1", ReasonReservedAddress, "64:ff9b:1::/48"},
		{"fec0::1", ReasonPrivateAddress, "fec0::/10"},
		{"3fff::1", ReasonReservedAddress, "3fff::/20"},
		{"100::1", ReasonReservedAddress, "100::/64"},
		{"4000::1", ReasonReservedAddress, "4000::/2"},
		{"fe80::1%eth0", ReasonLinkLocalAddress, "fe80::/10"},
		{"100.127.255.255", ReasonPrivateAddress, "100.64.0.0/10"},
		{"100.128.0.0", "", ""},
		{"192.0.0.9", ReasonReservedAddress, "192.0.0.0/24"},
		{"239.255.255.250", ReasonMulticastAddress, "224.0.0.0/4"},
	}
	for _, tc := range tests {
		got := Classify(netip.MustParseAddr(tc.addr))
		want := Class{Reason: tc.reason}
		if tc.rng != "" {
			want.Range = netip.MustParsePrefix(tc.rng)
		}
		if got != want {
			t.Errorf("Classify(%s) = %+v, want %+v", tc.addr, got, want)
		}
	}
	if got := Classify(netip.Addr{}); got.Reason != ReasonUnspecifiedAddress {
		t.Errorf("Classify(zero Addr) = %+v, want unspecified", got)
	}
}

// FuzzParseIPLiteral checks ParseIPLiteral against net/netip wherever
// netip accepts the input: both must agree on the address.
func FuzzParseIPLiteral(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1", "127.1", "0x7f.1", "2130706433", "0177.0.0.1", "0x7f000001",
		"::1", "[::1]", "::ffff:127.0.0.1", "::ffff:7f00:1", "fe80::1%eth0",
		"[fe80::1%25eth0]", "64:ff9b::a9fe:a9fe", "1.2.3.4.5", "0x", "", "256.1",
		"1::2::3", "::ffff:1.2.3.4%z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseIPLiteral(s)
		if err == nil {
			if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
				t.Fatalf("ParseIPLiteral(%q) = %v: want a valid, unzoned, unmapped address", s, got)
			}
		} else if !errors.Is(err, ErrNotIP) {
			t.Fatalf("ParseIPLiteral(%q) error %v does not wrap ErrNotIP", s, err)
		}
		if want, nerr := netip.ParseAddr(s); nerr == nil {
			want = want.WithZone("").Unmap()
			if err != nil || got != want {
				t.Fatalf("ParseIPLiteral(%q) = %v, %v; netip says %v", s, got, err, want)
			}
		}
		// Anything we accept, netip must accept in canonical form, and
		// re-parsing the canonical form is a fixed point.
		if err == nil {
			again, err := ParseIPLiteral(got.String())
			if err != nil || again != got {
				t.Fatalf("ParseIPLiteral(%q) = %v, but re-parsing gives %v, %v", s, got, again, err)
			}
		}
	})
}

// FuzzParseTarget feeds the same input to the authority and absolute-URI
// parsers and checks invariants of whatever they accept.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"example.com:443", "[::1]:80", "0x7f.1:22", "allowed.com@evil.com:443",
		"http://example.com/a?b", "https://[fe80::1%25eth0]:8443/", "http://a.com\\@evil/",
		"http://bücher.example/", "http://%31.0.0.1/", "HTTP://A.COM.:80", "http://1.2.3.4.5/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if h, port, err := ParseAuthority(s); err == nil {
			checkHost(t, s, h)
			if port == 0 {
				t.Fatalf("ParseAuthority(%q) accepted port 0", s)
			}
			if strings.Contains(s, "@") {
				t.Fatalf("ParseAuthority(%q) accepted userinfo", s)
			}
		}
		if tg, err := ParseTarget(s); err == nil {
			checkHost(t, s, tg.Host)
			if tg.Port == 0 || (tg.Scheme != "http" && tg.Scheme != "https") {
				t.Fatalf("ParseTarget(%q) = %+v", s, tg)
			}
			if !strings.HasPrefix(tg.RequestURI, "/") {
				t.Fatalf("ParseTarget(%q) request URI %q", s, tg.RequestURI)
			}
			authority := s[strings.Index(s, "://")+3:]
			if end := strings.IndexAny(authority, "/?"); end >= 0 {
				authority = authority[:end]
			}
			if strings.Contains(authority, "@") {
				t.Fatalf("ParseTarget(%q) accepted userinfo", s)
			}
		}
	})
}

// checkHost asserts a parsed host is canonical: re-parsing its string form
// gives the same host, and a name is plain lower-case LDH ASCII.
func checkHost(t *testing.T, in string, h Host) {
	t.Helper()
	if h.IsIP() == (h.Name != "") {
		t.Fatalf("%q: host %+v must have exactly one of Name and Addr", in, h)
	}
	if !h.IsIP() {
		for i := 0; i < len(h.Name); i++ {
			c := h.Name[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				t.Fatalf("%q: name %q has byte %q", in, h.Name, c)
			}
		}
		if strings.HasSuffix(h.Name, ".") || len(h.Name) > 253 {
			t.Fatalf("%q: name %q not canonical", in, h.Name)
		}
	}
	again, err := ParseHost(h.String())
	if err != nil || again != h {
		t.Fatalf("%q: host %+v re-parses as %+v, %v", in, h, again, err)
	}
}
