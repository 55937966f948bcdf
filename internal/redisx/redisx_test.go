package redisx

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Password replaces the URL's password, so a password need not be
// percent-encoded into the URL (redis.password, redis.password_file).
func TestPasswordReplacesTheURLs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, url, password, want string }{
		{name: "url only", url: "redis://:in-url@127.0.0.1:6379/0", want: "in-url"},
		{name: "password wins", url: "redis://:in-url@127.0.0.1:6379/0", password: "p@ss/w:rd", want: "p@ss/w:rd"},
		{name: "password only", url: "redis://127.0.0.1:6379/0", password: "pw", want: "pw"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(Config{URL: tt.url, Password: tt.password, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.(*redis.Client).Options().Password; got != tt.want {
				t.Errorf("password = %q, want %q", got, tt.want)
			}
		})
	}
}

// A URL that does not parse is reported without the URL: it holds the
// password.
func TestBadURLErrorHidesThePassword(t *testing.T) {
	t.Parallel()
	_, err := New(Config{URL: "redis://:s3cret@127.0.0.1:bad port/0", Timeout: time.Second})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v", err)
	}
}
