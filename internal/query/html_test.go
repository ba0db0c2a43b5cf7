package query

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/testenv"
)

// TestHTMLReportInChromium renders reports as HTML, opens them in headless
// Chromium with the network off, and checks the screenshot. The PNGs are
// kept in .testenv/artifacts/ for people to look at.
func TestHTMLReportInChromium(t *testing.T) {
	db, _ := scenarioDB(t)
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("chromium not found at %s: run %s", chromium, testenv.StartCommand)
	}
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	artifacts := filepath.Join(root, ".testenv", "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"activity", "unapproved_actions"} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			out := Output{Format: FormatHTML, W: &b, Now: func() time.Time { return day.AddDate(0, 0, 1) }}
			if err := RunReport(context.Background(), readerConfig(t, db), ReportCommand{Name: name, Period: period}, out); err != nil {
				t.Fatal(err)
			}
			page := b.String()
			// Self-contained: no script, no external resource.
			for _, bad := range []string{"<script", "src=", "href=", "@import", "url("} {
				if strings.Contains(page, bad) {
					t.Errorf("page contains %q", bad)
				}
			}
			wants := []string{"2026-01-05T00:00:00Z", "<pre>", "<table>"}
			if name == "activity" {
				wants = append(wants, "<svg", "Events per day", "Decisions by type")
			} else {
				wants = append(wants, "3 findings")
			}
			for _, want := range wants {
				if !strings.Contains(page, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			dir := t.TempDir()
			file := filepath.Join(dir, name+".html")
			if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			shot := filepath.Join(dir, name+".png")
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
				"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--user-data-dir="+filepath.Join(dir, "profile"), "--screenshot="+shot, "--window-size=1280,2000",
				"file://"+file)
			if outb, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("chromium: %v\n%s", err, outb)
			}
			img, err := os.ReadFile(shot)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := png.DecodeConfig(bytes.NewReader(img))
			if err != nil {
				t.Fatalf("screenshot is not a PNG: %v", err)
			}
			if cfg.Width != 1280 || cfg.Height != 2000 || len(img) < 20_000 {
				t.Errorf("screenshot %dx%d, %d bytes; want 1280x2000 with content", cfg.Width, cfg.Height, len(img))
			}
			// Something was drawn: the image is not one flat colour.
			full, err := png.Decode(bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			colours := map[[4]uint32]bool{}
			for y := 0; y < 600; y += 3 {
				for x := 0; x < 1280; x += 3 {
					r, g, bl, a := full.At(x, y).RGBA()
					colours[[4]uint32{r, g, bl, a}] = true
				}
			}
			if len(colours) < 10 {
				t.Errorf("screenshot has %d colours in its top part; the page did not render", len(colours))
			}
			dst := filepath.Join(artifacts, "query-report-"+name+".png")
			if err := os.WriteFile(dst, img, 0o644); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(artifacts, "query-report-"+name+".html"), b.Bytes(), 0o644)
			t.Logf("screenshot %s (%d bytes)", dst, len(img))
		})
	}
}
