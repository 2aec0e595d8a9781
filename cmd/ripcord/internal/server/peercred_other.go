//go:build !linux && !darwin

package server

import (
	"errors"
	"net"
)

func peerOf(*net.UnixConn) (Peer, error) {
	return Peer{}, errors.New("this system cannot tell who is on the other end of a Unix socket")
}
