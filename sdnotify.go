// sdnotify.go tells systemd about readiness, reloads and stopping through
// the NOTIFY_SOCKET datagram of Type=notify services.
package main

import (
	"fmt"
	"net"
	"os"
)

// sdNotify sends state ("READY=1", "RELOADING=1", "STOPPING=1", lines
// joined by "\n") to the socket named by NOTIFY_SOCKET. Without that
// variable (not under systemd) it does nothing. A name starting with "@"
// is an abstract socket.
func sdNotify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}
