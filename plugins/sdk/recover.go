package sdk

import (
	"context"
	"fmt"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A panic in a provider's call must not take the plugin process down with
// it (every call and stream in flight would die, and the host would only
// see "the connection is closing"): each call recovers, logs the stack
// and answers with the panic's text.

func recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer recovered(info.FullMethod, &err)
	return handler(ctx, req)
}

func recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer recovered(info.FullMethod, &err)
	return handler(srv, ss)
}

func recovered(method string, err *error) {
	p := recover()
	if p == nil {
		return
	}
	NewLogger("sdk").Error("a call panicked", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	*err = status.Errorf(codes.Internal, "the provider panicked in %s: %v", method, p)
}

// recoverOptions install the recovery on a plugin's gRPC server.
func recoverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(recoverUnary), grpc.ChainStreamInterceptor(recoverStream)}
}
