//go:build unix

// signals_unix.go names the signals the server handles on Unix.
package main

import (
	"os"
	"syscall"
)

// serveSignals are caught while serving: INT and TERM stop, HUP reloads
// the config, USR1 reopens the log files.
var serveSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1}

// signalAction says what a caught signal asks for: "stop", "reload" or "reopen".
func signalAction(sig os.Signal) string {
	switch sig {
	case syscall.SIGHUP:
		return "reload"
	case syscall.SIGUSR1:
		return "reopen"
	}
	return "stop"
}
