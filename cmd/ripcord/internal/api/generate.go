// Package api holds Ripcord's client API, protocol `ripcord.api.v1`
// (v1/api.proto), and its generated Go code (package apiv1). Consoles, CLI
// commands and the SSH bastion speak it to `ripcord serve` over the
// project's Unix socket; it is kept apart from the provider plugin protocol
// (plugins/proto), which is the server's conversation with its providers.
//
// The generated files are committed, so building Ripcord needs no protoc;
// check-generated.sh fails when they are stale. Regenerate with the pinned
// generators (protoc-gen-go v1.36.12, protoc-gen-go-grpc v1.6.2) on PATH
// and Debian's protoc 3.21.12:
//
//	go generate ./cmd/ripcord/internal/api
package api

//go:generate protoc -I . --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative v1/api.proto
