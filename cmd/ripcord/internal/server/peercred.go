package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/user"
	"strconv"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Peer is who the kernel says is on the other end of a Unix socket.
type Peer struct {
	UID, GID uint32
	PID      int32
}

// AuthType names the credential kind to gRPC.
func (Peer) AuthType() string { return "peercred" }

// errNoPeer is returned when a call carries no kernel-vouched identity.
var errNoPeer = errors.New("the caller's identity is unknown: the server only accepts callers on its Unix socket")

// peerCreds is a gRPC transport credential that does no handshake on the
// wire: it asks the kernel for the connecting process's uid, gid and pid
// (SO_PEERCRED), which a client cannot forge.
type peerCreds struct{}

func (peerCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, nil, fmt.Errorf("peer credentials: %T is not a Unix socket", c)
	}
	p, err := peerOf(uc)
	if err != nil {
		return nil, nil, fmt.Errorf("peer credentials: %w", err)
	}
	return c, p, nil
}

func (peerCreds) ClientHandshake(_ context.Context, _ string, c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c, Peer{}, nil
}

func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}
func (p peerCreds) Clone() credentials.TransportCredentials { return p }
func (peerCreds) OverrideServerName(string) error           { return nil }

// PeerFrom returns the kernel's word on the caller of an RPC.
func PeerFrom(ctx context.Context) (Peer, error) {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return Peer{}, errNoPeer
	}
	p, ok := pr.AuthInfo.(Peer)
	if !ok {
		return Peer{}, errNoPeer
	}
	return p, nil
}

// accountName is the OS account of uid, or "uid N" when it has no name
// (a container without that user in its passwd).
func accountName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil && u.Username != "" {
		return u.Username
	}
	return "uid " + id
}
