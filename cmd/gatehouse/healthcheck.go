package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"gatehouse/internal/config"
)

// healthcheck asks a running Gatehouse whether it is alive: GET /healthz on
// its admin listener, exit 0 on 200 and 1 otherwise. It exists for images
// without a shell or curl (distroless): Docker's HEALTHCHECK runs it inside
// the container. url, when set, is the address to ask; otherwise the admin
// listener is read from the config file.
//
// The config is read leniently, admin.listen only (no validation): a file
// that a reload has just rejected leaves the running process alive and
// healthy, and the check must still say so. Only a file that is not YAML
// at all fails the check (-url does not read the file).
func healthcheck(configPath, url string, timeout time.Duration, stdout, stderr io.Writer) int {
	if url == "" {
		listen, err := adminListen(configPath)
		if err != nil {
			fmt.Fprintln(stderr, "healthcheck:", err)
			return 1
		}
		url = "http://" + dialable(listen) + "/healthz"
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	// A transport of its own: no proxy from the environment, no keep-alive.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "healthcheck: %s: %s\n", url, resp.Status)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", url)
	return 0
}

// adminListen reads admin.listen from the config file, with the same
// default as config.Defaults.
func adminListen(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	var c struct {
		Admin struct {
			Listen string `yaml:"listen"`
		} `yaml:"admin"`
	}
	// Lenient: wrong types elsewhere in the file do not matter, but a file
	// that is not YAML says nothing about where the admin listener is.
	if err := yaml.Unmarshal(data, &c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return "", fmt.Errorf("config: %s: %w", path, err)
		}
	}
	switch c.Admin.Listen {
	case "":
		return config.DefaultAdminListen, nil
	case "off":
		return "", errors.New("admin.listen is off: nothing to ask (pass -url)")
	}
	return c.Admin.Listen, nil
}

// dialable turns a listen address into one to connect to: a wildcard host
// (":9901", "0.0.0.0:9901", "[::]:9901") becomes the loopback address of
// its family.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch {
	case host == "" || host == "0.0.0.0":
		host = "127.0.0.1"
	case host == "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
