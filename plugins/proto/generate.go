// Package proto holds Ripcord's versioned provider plugin protocol and its
// generated Go code (ripcord/plugin/v1). The generated files are committed,
// so building Ripcord needs no protoc; check-generated.sh fails when they
// are stale.
//
// Regenerate with the pinned generators (protoc-gen-go v1.36.12,
// protoc-gen-go-grpc v1.6.2) on PATH and Debian's protoc 3.21.12:
//
//	go generate ./plugins/proto
package proto

//go:generate protoc -I . -I /usr/include --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative ripcord/plugin/v1/provider.proto
