package upgrade

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestReadPIDFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name    string
		body    *string // nil: no file
		want    int
		wantErr bool
	}{
		{name: "pid", body: ptr("1234"), want: 1234},
		{name: "trailing newline", body: ptr("1234\n"), want: 1234},
		{name: "no file", wantErr: true},
		{name: "empty", body: ptr(""), wantErr: true},
		{name: "not a number", body: ptr("gatehouse"), wantErr: true},
		{name: "zero", body: ptr("0"), wantErr: true},
		{name: "negative", body: ptr("-1"), wantErr: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, strconv.Itoa(i)+".pid")
			if tt.body != nil {
				if err := os.WriteFile(path, []byte(*tt.body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadPIDFile(path)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ReadPIDFile = %d, %v; want %d, error %t", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// TestSignal: `gatehouse upgrade` signals the process the PID file names
// (here this test process) and, with a wait, reports the PID that took
// over, or that none did in time.
func TestSignal(t *testing.T) {
	// Not parallel: SIGUSR2 goes to this whole process.
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	self := os.Getpid()
	tests := []struct {
		name     string
		pid      int
		wait     time.Duration
		takeover int // written to the PID file on SIGUSR2; 0: none
		wantCur  int
		wantErr  error
	}{
		{name: "no wait", pid: self, wantCur: self},
		{name: "wait for the new process", pid: self, wait: time.Minute, takeover: 777, wantCur: 777},
		{name: "no new process in time", pid: self, wait: 200 * time.Millisecond, wantCur: self, wantErr: context.DeadlineExceeded},
		{name: "no such process", pid: 1 << 30, wantErr: ErrNoProcess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gatehouse.pid")
			if err := os.WriteFile(path, []byte(strconv.Itoa(tt.pid)), 0o644); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				if tt.pid != self {
					return
				}
				<-usr2
				if tt.takeover != 0 {
					if err := os.WriteFile(path, []byte(strconv.Itoa(tt.takeover)), 0o644); err != nil {
						t.Error(err)
					}
				}
			}()
			old, cur, err := Signal(context.Background(), path, tt.wait)
			<-done
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && (old != tt.pid || cur != tt.wantCur)) {
				t.Fatalf("Signal = %d, %d, %v; want %d, %d, %v", old, cur, err, tt.pid, tt.wantCur, tt.wantErr)
			}
		})
	}
}
