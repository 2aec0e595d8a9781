// Package proto holds Ripcord's versioned provider plugin protocol,
// ripcord/plugin/v1/provider.proto: the contract a plugin in any language
// speaks. Its generated Go code lives in plugins/internal/pluginpb, where
// only the SDK, the host and the conformance kit use it (a Go plugin
// author writes against plugins/sdk). The generated files are committed,
// so building Ripcord needs no protoc; check-generated.sh fails when they
// are stale.
//
// Regenerate with the pinned generators (protoc-gen-go v1.36.12,
// protoc-gen-go-grpc v1.6.2) on PATH and Debian's protoc 3.21.12:
//
//	go generate ./plugins/proto
package proto

//go:generate protoc -I . -I /usr/include --go_out=.. --go_opt=module=github.com/ripcordhq/ripcord/plugins --go-grpc_out=.. --go-grpc_opt=module=github.com/ripcordhq/ripcord/plugins ripcord/plugin/v1/provider.proto
