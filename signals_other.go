//go:build !unix

// signals_other.go names the signals the server handles where there is no
// SIGHUP or SIGUSR1: only stopping.
package main

import (
	"os"
	"syscall"
)

var serveSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

func signalAction(os.Signal) string { return "stop" }
